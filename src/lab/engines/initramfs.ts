/**
 * The pieces of a lab guest that need no guest to build or test: which modules the initramfs
 * loads and in which order (from modules.dep), the initramfs (a newc cpio: busybox-static, the
 * modules, /init), the init script, the kernel command line and qemu's arguments.
 *
 * The guest's root is the host's `/` shared read-only over 9p with a tmpfs overlay on top, so the
 * guest runs this host's node, ctprobe (dist/) and tools; /init must switch_root as PID 1 so the
 * kernel's own modprobe calls (veth, nf_conntrack, …) find the real root's modprobe and the
 * kernel's modules, linked into /lib/modules/RELEASE.
 */

/** Modules the initramfs loads before it can mount the host's root (their dependencies are added). */
export const INITRAMFS_MODULES = ['virtio_pci', 'virtio_rng', '9pnet_virtio', '9p', 'overlay'] as const;

/** 9p mount tags the host exports. */
export const TAG = { root: 'ctproot', run: 'ctprun', capture: 'ctpcap' } as const;

/** Where the guest sees the run directory (results, events, its script). */
export const GUEST_RUN_DIR = '/run/ctprobe-guest';

/** A module's name as the kernel knows it: basename, no .ko(.xz|.zst|.gz), '-' → '_'. */
export function moduleName(path: string): string {
  return path.split('/').at(-1)!.replace(/\.ko(\.(xz|zst|gz))?$/, '').replace(/-/g, '_');
}

/**
 * The module files to insmod, dependencies first, for `wanted` (names), from modules.dep and
 * modules.builtin. A wanted module that is built in needs nothing; one that is neither is an error
 * the caller reports (returned in `missing`).
 */
export function moduleLoadOrder(modulesDep: string, modulesBuiltin: string, wanted: readonly string[]): { files: string[]; missing: string[] } {
  const deps = new Map<string, { file: string; deps: string[] }>();
  for (const line of modulesDep.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const file = line.slice(0, colon).trim();
    deps.set(moduleName(file), { file, deps: line.slice(colon + 1).trim().split(/\s+/).filter(Boolean) });
  }
  const builtin = new Set(modulesBuiltin.split('\n').filter(Boolean).map(moduleName));
  const files: string[] = [];
  const seen = new Set<string>();
  const missing: string[] = [];
  const visit = (name: string, depth: number) => {
    if (seen.has(name) || depth > 64) return;
    seen.add(name);
    const e = deps.get(name);
    if (!e) {
      if (!builtin.has(name)) missing.push(name);
      return;
    }
    for (const d of e.deps) visit(moduleName(d), depth + 1);
    files.push(e.file);
  };
  for (const w of wanted) visit(w.replace(/-/g, '_'), 0);
  return { files, missing };
}

export interface CpioEntry {
  name: string;
  /** Full st_mode: 0o100755 file, 0o040755 dir, 0o120777 symlink, 0o020600 char device. */
  mode: number;
  data?: Buffer;
  /** Character devices: major, minor. */
  rdev?: [number, number];
}

/** A newc ("070701") cpio archive, as the kernel unpacks an initramfs. */
export function cpioNewc(entries: CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  const pad4 = (n: number) => Buffer.alloc((4 - (n % 4)) % 4);
  const hex = (n: number) => n.toString(16).padStart(8, '0');
  let ino = 1;
  const push = (e: CpioEntry) => {
    const data = e.data ?? Buffer.alloc(0);
    const name = Buffer.from(e.name + '\0');
    const fields = [ino++, e.mode, 0, 0, 1, 0, data.length, 0, 0, e.rdev?.[0] ?? 0, e.rdev?.[1] ?? 0, name.length, 0];
    const header = Buffer.from('070701' + fields.map(hex).join(''), 'ascii');
    parts.push(header, name, pad4(header.length + name.length), data, pad4(data.length));
  };
  for (const e of entries) push(e);
  push({ name: 'TRAILER!!!', mode: 0 });
  return Buffer.concat(parts);
}

/** True when an ELF executable has no program interpreter (a static binary runs in an initramfs). */
export function isStaticElf(b: Buffer): boolean {
  if (b.length < 64 || b.readUInt32BE(0) !== 0x7f454c46 || b[4] !== 2) return false;
  const phoff = Number(b.readBigUInt64LE(32));
  const phentsize = b.readUInt16LE(54);
  const phnum = b.readUInt16LE(56);
  for (let i = 0; i < phnum; i++) {
    const off = phoff + i * phentsize;
    if (off + 4 > b.length) return false;
    if (b.readUInt32LE(off) === 3) return false; // PT_INTERP
  }
  return true;
}

export interface InitOptions {
  /** Kernel release: /lib/modules/RELEASE in the guest links to `modulesDir`. */
  release: string;
  /** The unpacked modules directory, a host path (seen in the guest through the root share). */
  modulesDir: string;
  /** Module files in the initramfs, load order, relative to /modules. */
  modules: string[];
  /** Host directory shared read-write at the same path (lab --capture DIR), or null. */
  captureDir: string | null;
  /** Script the guest runs after switch_root (a path in the guest). */
  script: string;
}

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * /init: mount the host's root read-only over 9p under a tmpfs overlay, fresh /proc /sys /dev
 * /run, the kernel's modules at /lib/modules/RELEASE, the run share (and the capture share),
 * then switch_root into it and run the guest script as PID 1. Any failure powers the guest off
 * with a line on the console naming the step.
 */
export function initScript(o: InitOptions): string {
  const p9 = 'trans=virtio,version=9p2000.L,msize=262144';
  const lines = [
    '#!/bin/busybox sh',
    '/bin/busybox --install -s /bin',
    'export PATH=/bin',
    'fail() { echo "ctprobe-guest: init: $*" >/dev/console; sync; echo o >/proc/sysrq-trigger; sleep 5; exit 1; }',
    'mkdir -p /proc /sys /dev /ro /rw /newroot',
    'mount -t proc proc /proc && mount -t sysfs sysfs /sys || fail "proc/sys"',
    'mount -t devtmpfs devtmpfs /dev 2>/dev/null',
    'echo 1 >/proc/sys/kernel/sysrq',
    `for m in ${o.modules.map((m) => q(m.split('/').at(-1)!)).join(' ')}; do insmod /modules/$m || fail "insmod $m"; done`,
    `mount -t 9p -o ${p9},ro ${TAG.root} /ro || fail "mount the host root (9p ${TAG.root})"`,
    'mount -t tmpfs -o mode=0755 tmpfs /rw && mkdir -p /rw/upper /rw/work || fail "tmpfs"',
    'mount -t overlay overlay -o lowerdir=/ro,upperdir=/rw/upper,workdir=/rw/work /newroot || fail "overlay"',
    'for d in proc sys dev run tmp; do mkdir -p /newroot/$d; done',
    'mount -t proc proc /newroot/proc && mount -t sysfs sysfs /newroot/sys && mount -t devtmpfs devtmpfs /newroot/dev || fail "guest /proc /sys /dev"',
    'mkdir -p /newroot/dev/pts /newroot/dev/shm && mount -t devpts devpts /newroot/dev/pts && mount -t tmpfs tmpfs /newroot/dev/shm',
    // A fresh /run (the host's netns mounts and lab state are not the guest's); /tmp stays the
    // overlay's, so a ctprobe or node installed under the host's /tmp is still found.
    'mount -t tmpfs -o mode=0755 tmpfs /newroot/run || fail "tmpfs /run"',
    `mkdir -p /newroot/lib/modules && rm -rf /newroot/lib/modules/${q(o.release)} && ln -s ${q(o.modulesDir)} /newroot/lib/modules/${q(o.release)} || fail "/lib/modules"`,
    `mkdir -p /newroot${GUEST_RUN_DIR} && mount -t 9p -o ${p9} ${TAG.run} /newroot${GUEST_RUN_DIR} || fail "mount the run share"`,
    ...(o.captureDir ? [`mkdir -p /newroot${q(o.captureDir)} && mount -t 9p -o ${p9} ${TAG.capture} /newroot${q(o.captureDir)} || fail "mount the capture share"`] : []),
    `exec switch_root /newroot /bin/sh ${q(o.script)}`,
    '',
  ];
  return lines.join('\n');
}

/**
 * The script the guest runs as PID 1 in the host's root: loopback up, the agent (which runs the
 * lab and writes events and the report into the run share), its exit status, power off.
 */
export function guestScript(o: { node: string; agent: string; spec: string; timeScale: number }): string {
  return [
    '#!/bin/sh',
    'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8',
    `export CTPROBE_LAB_TIME_SCALE=${o.timeScale}`,
    `cd / && ip link set lo up 2>/dev/null`,
    `${q(o.node)} ${q(o.agent)} ${q(o.spec)} >>${GUEST_RUN_DIR}/agent.log 2>&1`,
    `echo $? >${GUEST_RUN_DIR}/status`,
    'sync',
    'echo o >/proc/sysrq-trigger',
    'sleep 30',
    '',
  ].join('\n');
}

/** The kernel command line: serial console, quiet (kernel log lines stay in /dev/kmsg), no reboot loop. */
export function kernelCmdline(extra: string[] = []): string {
  return ['console=ttyS0', 'loglevel=4', 'panic=-1', 'rdinit=/init', 'mitigations=off', 'random.trust_cpu=on', 'tsc=reliable', 'no_timer_check', ...extra].join(' ');
}

export type Accel = 'kvm' | 'tcg';

export interface QemuOptions {
  accel: Accel;
  vmlinuz: string;
  initramfs: string;
  cmdline: string;
  runDir: string;
  captureDir: string | null;
  consoleLog: string;
  memoryMiB: number;
  cpus: number;
}

/** qemu-system-x86_64's arguments: no display, serial to a file, the shares, an RNG, no reboot. */
export function qemuArgs(o: QemuOptions): string[] {
  const share = (path: string, tag: string, ro: boolean) => ['-virtfs', `local,path=${path},mount_tag=${tag},security_model=none,multidevs=remap${ro ? ',readonly=on' : ''}`];
  return [
    '-nodefaults', '-no-user-config', '-no-reboot', '-display', 'none', '-monitor', 'none',
    ...(o.accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg,thread=multi', '-cpu', 'max']),
    '-smp', String(o.cpus), '-m', String(o.memoryMiB),
    '-kernel', o.vmlinuz, '-initrd', o.initramfs, '-append', o.cmdline,
    '-serial', `file:${o.consoleLog}`,
    '-device', 'virtio-rng-pci',
    ...share('/', TAG.root, true),
    ...share(o.runDir, TAG.run, false),
    ...(o.captureDir ? share(o.captureDir, TAG.capture, false) : []),
  ];
}

/**
 * Can KVM run a stock kernel here? Only with /dev/kvm usable and real VT-x/AMD-V (vmx/svm in
 * cpuinfo), and not under kvm_pvm (a pagetable-based VM where stock kernels hang at boot).
 */
export function kvmVerdict(f: { devKvmRw: boolean; cpuFlags: string; kvmPvm: boolean }): { accel: Accel; why: string } {
  if (!f.devKvmRw) return { accel: 'tcg', why: '/dev/kvm is missing or not writable: software emulation (TCG)' };
  if (f.kvmPvm) return { accel: 'tcg', why: '/dev/kvm is kvm_pvm, which cannot boot a stock kernel: software emulation (TCG)' };
  if (!/\b(vmx|svm)\b/.test(f.cpuFlags)) return { accel: 'tcg', why: 'no vmx/svm CPU flag: software emulation (TCG)' };
  return { accel: 'kvm', why: 'KVM (hardware virtualisation)' };
}
