#!/usr/bin/env bash
# Installs what ctprobe needs on a Debian/Ubuntu machine, only what is missing:
# the system tools (apt-get, as root) and the npm packages; then builds dist/.
# Called by `npm run lab`, `npm test` and .ci/run; safe to run again. `--guests` adds what
# `ctprobe lab --kernel` needs (qemu, busybox-static for the initramfs, kmod, dpkg, xz, apt).
set -euo pipefail
cd "$(dirname "$0")/.."

# tool → Debian package
declare -A PKG=([ip]=iproute2 [ss]=iproute2 [iptables]=iptables [nft]=nftables [conntrack]=conntrack
                [tcpdump]=tcpdump [nc]=netcat-openbsd [nsenter]=util-linux [sysctl]=procps [bc]=bc)
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
  pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages: $pkgs— run as root, or: sudo apt-get install -y $pkgs" >&2
    exit 2
  fi
  echo "setup: installing $pkgs" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
  echo "setup: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
if [ ! -f dist/cli/main.js ] || [ -n "$(find src -newer dist/cli/main.js -name '*.ts' -print -quit)" ]; then
  npx tsc -p tsconfig.build.json
fi
