#!/usr/bin/env bash
# CI: build ctprobe's container image from the Dockerfile with no image registry, then run
# `ctprobe --version`, `ctprobe audit` and the oow-rst lab inside it (privileged).
#   - the base is a minimal Debian trixie (nodejs 20) made here from Debian packages with
#     mmdebstrap and `docker import`ed; the Dockerfile installs only what a base lacks, so nothing
#     is fetched during the build;
#   - npm packages come from this machine's npm cache (filled by .ci/run's `npm ci`), copied into
#     the build context and installed with `npm ci --offline`;
#   - dockerd is Debian's docker.io, private to this script: its own network namespace (entered
#     with nsenter --net, as the lab does), data root, exec root, socket, pidfile and cgroup
#     parent, all removed on every path (success, failure, Ctrl-C, SIGTERM).
# The base rootfs is kept in /var/cache/ctprobe (keyed by suite and package list) and reused by
# later runs on the same machine; CTPROBE_CI_BASE_TAR=FILE names another place for it.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "image.sh: run as root (it starts a private dockerd)" >&2; exit 2; }
for t in mmdebstrap /usr/sbin/dockerd /usr/bin/docker nsenter ip; do
  command -v "$t" >/dev/null || { echo "image.sh: '$t' missing: apt-get install -y mmdebstrap docker.io util-linux iproute2" >&2; exit 2; }
done

id=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
base_tar=
ns=ctp-ci-$id
dir=/run/ctprobe/ci-$id
cgroup=/ctp-ci-$id
work=$(mktemp -d /var/tmp/ctp-ci-XXXXXX)
docker=(/usr/bin/docker -H "unix://$dir/docker.sock")
t0=$(date +%s)
say() { echo "image.sh [$(($(date +%s) - t0))s] $*" >&2; }

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -S "$dir/docker.sock" ]; then
    ids=$("${docker[@]}" ps -aq 2>/dev/null || true)
    [ -z "$ids" ] || "${docker[@]}" rm -f $ids >/dev/null 2>&1 || true
  fi
  if [ -f "$dir/dockerd.pid" ]; then
    pid=$(cat "$dir/dockerd.pid")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  # containerd and its shims name the daemon's directory on their command line.
  for p in /proc/[0-9]*; do
    grep -qsF "$dir/" "$p/cmdline" && kill -KILL "${p#/proc/}" 2>/dev/null || true
  done
  for c in /sys/fs/cgroup/*"$cgroup" /sys/fs/cgroup"$cgroup"; do
    [ -d "$c" ] && find "$c" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
  done
  sleep 0.2
  awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print length($5) " " $5 }' /proc/self/mountinfo | sort -rn | cut -d' ' -f2- |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf "$dir" "$work" ${base_tar:+"$base_tar.part"}
  for c in /sys/fs/cgroup/*"$cgroup" /sys/fs/cgroup"$cgroup"; do
    [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
  ip netns del "$ns" 2>/dev/null || true
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# 1. The base image's rootfs, from Debian packages.
packages=nodejs,npm,iproute2,iptables,nftables,conntrack,tcpdump,procps,ca-certificates
base_tar=${CTPROBE_CI_BASE_TAR:-/var/cache/ctprobe/ci-base-trixie-$(echo "$packages" | sha256sum | cut -c1-12).tar}
if [ ! -s "$base_tar" ]; then
  say "mmdebstrap trixie ($packages)"
  mkdir -p "$(dirname "$base_tar")"
  mmdebstrap --quiet --format=tar --variant=apt --include="$packages" trixie "$base_tar.part" http://deb.debian.org/debian
  mv "$base_tar.part" "$base_tar"
else
  say "base rootfs $base_tar (made by an earlier run)"
fi

# 2. A private dockerd in a namespace of its own.
say "dockerd in netns $ns"
ip netns add "$ns"
ip -n "$ns" link set lo up
mkdir -p "$dir"
nsenter --net="/run/netns/$ns" /usr/sbin/dockerd --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/dockerd.pid" \
  -H "unix://$dir/docker.sock" --cgroup-parent "$cgroup" --bip 192.0.2.1/24 --log-level warn >"$dir/dockerd.log" 2>&1 &
for _ in $(seq 1 300); do "${docker[@]}" version >/dev/null 2>&1 && break; sleep 0.2; done
"${docker[@]}" version --format 'dockerd {{.Server.Version}}' >&2 || { tail -5 "$dir/dockerd.log" >&2; exit 1; }

say "docker import of the base"
"${docker[@]}" import "$base_tar" ctprobe-ci-base:trixie >/dev/null

# 3. The build context: the committed tree (what a user's `docker build .` sees) plus the npm cache.
say "docker build"
ctx=$work/context
mkdir -p "$ctx"
if git rev-parse --git-dir >/dev/null 2>&1; then
  git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -C "$ctx" -xf -
else
  tar --exclude=./node_modules --exclude=./dist -cf - . | tar -C "$ctx" -xf -
fi
# The lockfile names no tarball URLs (omit-lockfile-registry-resolved), so npm ci also needs the
# registry's metadata: fill a cache of its own with exactly what `npm ci` asks for, from the
# machine's cache where it can, then hand that cache to the build.
mkdir -p "$work/npm-warm"
cp package.json package-lock.json "$work/npm-warm/"
(cd "$work/npm-warm" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error --prefer-offline --cache "$ctx/.npm-cache" >/dev/null)
rm -rf "$work/npm-warm" "$ctx/.npm-cache/_logs"
"${docker[@]}" build -q --build-arg BASE=ctprobe-ci-base:trixie --build-arg NPM_FLAGS="--offline --cache /src/.npm-cache" \
  -t ctprobe:ci "$ctx" >/dev/null

# 4. Inside the image.
say "ctprobe --version"
want="ctprobe $(node -p 'require("./package.json").version')"
got=$("${docker[@]}" run --rm ctprobe:ci --version)
[ "$got" = "$want" ] || { echo "image.sh: --version says '$got', expected '$want'" >&2; exit 1; }

# --privileged asks for every capability; where this machine's bounding set lacks some (here:
# CAP_SYS_RESOURCE), runc refuses ("unable to apply caps"). Then grant the same minus those.
privileged=(--privileged)
caps=(CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP LINUX_IMMUTABLE NET_BIND_SERVICE
  NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN
  SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE
  MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF CHECKPOINT_RESTORE)
bnd=$((16#$(awk '/^CapBnd/ {print $2}' /proc/self/status)))
last=$(cat /proc/sys/kernel/cap_last_cap)
missing=()
for i in $(seq 0 "$last"); do (( (bnd >> i) & 1 )) || missing+=("${caps[$i]:-$i}"); done
if [ ${#missing[@]} -gt 0 ]; then
  say "this machine's capability bounding set lacks ${missing[*]}: privileged minus those"
  privileged=(--cap-add ALL --security-opt seccomp=unconfined --security-opt apparmor=unconfined
    --security-opt systempaths=unconfined --device /dev/kmsg)
  for c in "${missing[@]}"; do privileged+=(--cap-drop "$c"); done
fi

say "ctprobe audit"
set +e
"${docker[@]}" run --rm "${privileged[@]}" ctprobe:ci audit -o json >"$work/audit.json"
rc=$?
set -e
# 0 or 1 (a high-severity finding) are answers; anything else is a failure.
[ "$rc" -le 1 ] && node -e 'const a=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")); if(a.type!=="audit") process.exit(1); console.error(`audit in the image: kernel ${a.kernel.release}, ${a.findings.length} finding(s), unknown: ${a.unknown.map(u=>u.what).join(", ")||"none"}`)' "$work/audit.json" \
  || { echo "image.sh: audit in the image failed (exit $rc)" >&2; head -c 400 "$work/audit.json" >&2; exit 1; }

# Five cells at a time: ten node start-ups at once inside the container outran the lab's peer
# start-up bound on this 2-core machine while other jobs loaded it.
say "ctprobe lab oow-rst (privileged)"
set +e
"${docker[@]}" run --rm "${privileged[@]}" ctprobe:ci lab oow-rst --concurrency 5 -o json >"$work/lab.json"
rc=$?
set -e
node -e 'const r=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")); const m=r.cells.filter(c=>c.match).length; console.error(`lab in the image: ${m}/${r.cells.length} cells match (${r.ms} ms), nat/none/+100000 ${r.cells.find(c=>c.id==="nat/none/+100000")?.verdict}`); process.exit(m===r.cells.length && r.cells.length>0 ? 0 : 1)' "$work/lab.json" \
  && [ "$rc" -eq 0 ] || { echo "image.sh: the lab in the image failed (exit $rc)" >&2; exit 1; }

say "image built and checked"
