#!/usr/bin/env bash
# Installs what ctprobe needs on a Debian/Ubuntu machine, only what is missing:
# the system tools (apt-get, as root) and the npm packages; then builds dist/.
# Called by `npm run lab`, `npm test` and .ci/run; safe to run again. `setup.sh --test` also
# installs what only the tests need (headless Chromium for the pictures, a real Prometheus
# toolchain for `watch`); `--guests` what `ctprobe lab --kernel` needs (qemu, busybox-static for
# the initramfs, kmod, dpkg, xz, apt).
set -euo pipefail
cd "$(dirname "$0")/.."

# tool → Debian package
declare -A PKG=([ip]=iproute2 [ss]=iproute2 [iptables]=iptables [nft]=nftables [conntrack]=conntrack
                [tcpdump]=tcpdump [zstd]=zstd [nc]=netcat-openbsd [nsenter]=util-linux [sysctl]=procps [bc]=bc)
if [ "${1:-}" = "--test" ]; then PKG+=([chromium]=chromium [promtool]=prometheus [prometheus]=prometheus [curl]=curl); fi
if [ "${1:-}" = "--guests" ]; then
  PKG+=([qemu-system-x86_64]=qemu-system-x86 [busybox]=busybox-static [depmod]=kmod [modprobe]=kmod
        [dpkg-deb]=dpkg [xz]=xz-utils [apt-get]=apt)
  # The initramfs needs a static busybox: the dynamic `busybox` package does not do.
  dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || PKG[busybox-static-pkg]=busybox-static
fi
missing=()
for tool in "${!PKG[@]}"; do
  [ "$tool" = busybox-static-pkg ] && { missing+=("${PKG[$tool]}"); continue; }
  command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || [ -x "/sbin/$tool" ] || missing+=("${PKG[$tool]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  # Chromium draws text with whatever fonts are installed; the pictures name DejaVu Sans.
  if printf '%s\n' "${missing[@]}" | grep -qx chromium; then missing+=(fonts-dejavu-core); fi
  pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages: $pkgs— run as root, or: sudo apt-get install -y $pkgs" >&2
    exit 2
  fi
  echo "setup: installing $pkgs" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  # The tests start their own short-lived prometheus: keep the package from starting (or enabling)
  # its service on a machine with an init system (policy-rc.d is honoured by invoke-rc.d and
  # deb-systemd-invoke).
  had_policy=0; [ -e /usr/sbin/policy-rc.d ] && had_policy=1
  [ $had_policy -eq 1 ] || { printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $pkgs >/dev/null || { [ $had_policy -eq 1 ] || rm -f /usr/sbin/policy-rc.d; exit 1; }
  [ $had_policy -eq 1 ] || rm -f /usr/sbin/policy-rc.d
  case " $pkgs " in *" prometheus "*) command -v systemctl >/dev/null && systemctl disable --now prometheus >/dev/null 2>&1 || true ;; esac
fi
# `npm run bench` compares explain with tshark: install it when asked (CTPROBE_BENCH=1), never
# interactively (no setuid dumpcap question).
if [ "${CTPROBE_BENCH:-}" = 1 ] && ! command -v tshark >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "setup: installing tshark (for the benchmark's comparison)" >&2
    export DEBIAN_FRONTEND=noninteractive
    echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends tshark >/dev/null || echo "setup: tshark not installed: the benchmark skips its comparison" >&2
  else
    echo "setup: tshark missing (sudo apt-get install -y tshark): the benchmark skips its comparison" >&2
  fi
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
  echo "setup: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
if [ ! -f dist/cli/main.js ] || [ -n "$(find src -newer dist/cli/main.js -name '*.ts' -print -quit)" ]; then
  npx tsc -p tsconfig.build.json
fi
