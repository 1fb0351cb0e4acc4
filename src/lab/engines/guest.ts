/**
 * The guest engine: `ctprobe lab SCENARIO --kernel REL` boots a Debian kernel (fetched and cached
 * by src/host/kernels.ts) in qemu, with this host's `/` shared read-only over 9p under a tmpfs
 * overlay, and runs the same lab there with this host's ctprobe, one cell at a time. Progress
 * (kernel, boot, cells) streams from the guest's events file in a read-write run share; the
 * guest's typed report comes back the same way, with the guest's kernel in it.
 *
 * Nothing is left behind: qemu is killed and the run directory removed on success, failure,
 * SIGINT and SIGTERM; a state file names qemu's pid so `lab clean` can end a SIGKILLed run's guest.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, closeSync, constants, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { GuestError, PrivilegeError } from '../../errors.js';
import { isRoot, requireTool } from '../../host/exec.js';
import { fetchDebianKernel, localKernel, type GuestKernel } from '../../host/kernels.js';
import type { LabProgress, LabReport } from '../runner.js';
import { scenarioByName } from '../scenarios.js';
import { guestStatePath, newRunId, removeGuest, STATE_DIR, type GuestState } from '../state.js';
import {
  cpioNewc, GUEST_RUN_DIR, guestScript, INITRAMFS_MODULES, initScript, isStaticElf, kernelCmdline, kvmVerdict, moduleLoadOrder, qemuArgs,
  type Accel, type CpioEntry,
} from './initramfs.js';

/** What the guest agent runs: the lab's options, as the CLI parsed them. */
export interface GuestSpec {
  scenario: string;
  offsets: number[];
  mitigations: string[] | null;
  control: boolean;
  /** IP families of the cells (oow-rst, k8s-service). */
  families: Array<4 | 6>;
  concurrency: number;
  captureDir: string | null;
}

export interface GuestInfo {
  /** How the guest ran: KVM or qemu's software emulation (TCG), and why. */
  accel: Accel;
  accelWhy: string;
  release: string;
  package: string | null;
  version: string | null;
  /** From qemu's start to the guest agent's first event. */
  bootMs: number;
  /** The whole guest run: start of qemu to its exit. */
  guestMs: number;
}

export interface GuestLabOptions {
  spec: Omit<GuestSpec, 'concurrency'>;
  /** `--kernel REL` or `--kernel-image PATH` (+ `--kernel-modules DIR`). */
  kernel: { release: string } | { image: string; modules: string | null };
  onProgress?: (ev: LabProgress) => void;
  /** Bounds the whole guest run (boot + cells); default scales with the cells. */
  timeoutMs?: number;
}

export const AGENT_PATH = fileURLToPath(new URL('./guest-agent.js', import.meta.url));

/** Probe how a guest can run here. */
export function probeAccel(): { accel: Accel; why: string } {
  if (process.env.CTPROBE_GUEST_ACCEL === 'tcg') return { accel: 'tcg', why: 'software emulation (TCG), as CTPROBE_GUEST_ACCEL asks' };
  let devKvmRw = false;
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    devKvmRw = true;
  } catch {
    /* no KVM */
  }
  let cpuFlags = '';
  try {
    cpuFlags = /^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '';
  } catch {
    /* unknown: no vmx/svm */
  }
  return kvmVerdict({ devKvmRw, cpuFlags, kvmPvm: existsSync('/sys/module/kvm_pvm') });
}

/** Read a module file, decompressed (the kernel's insmod in busybox takes plain .ko). */
function moduleBytes(path: string): Buffer {
  if (path.endsWith('.ko')) return readFileSync(path);
  if (path.endsWith('.gz')) return gunzipSync(readFileSync(path));
  const tool = path.endsWith('.xz') ? 'xz' : 'zstd';
  const r = spawnSync(requireTool(tool), ['-dc', path], { maxBuffer: 256 * 1024 * 1024 });
  if (r.status !== 0 || !r.stdout) throw new GuestError(`cannot decompress ${path} with ${tool}`);
  return r.stdout;
}

/** Build the initramfs (busybox-static, the modules to reach the host's root, /init) as a cpio. */
export async function buildInitramfs(k: GuestKernel, captureDir: string | null, script: string): Promise<Buffer> {
  const busyboxPath = ['/usr/bin/busybox', '/bin/busybox'].find(existsSync);
  if (!busyboxPath) throw new GuestError("'busybox' not found: install it with 'apt-get install -y busybox-static'");
  const busybox = readFileSync(busyboxPath);
  if (!isStaticElf(busybox)) throw new GuestError(`${busyboxPath} is not statically linked: install it with 'apt-get install -y busybox-static'`);
  const dep = readFileSync(join(k.modulesDir, 'modules.dep'), 'utf8');
  const builtinPath = join(k.modulesDir, 'modules.builtin');
  const builtin = existsSync(builtinPath) ? readFileSync(builtinPath, 'utf8') : '';
  const { files, missing } = moduleLoadOrder(dep, builtin, INITRAMFS_MODULES);
  if (missing.length) throw new GuestError(`kernel ${k.release} lacks ${missing.join(', ')} (neither a module nor built in): it cannot mount the host's root over 9p`);
  const entries: CpioEntry[] = [
    ...['bin', 'dev', 'modules', 'proc', 'sys'].map((d) => ({ name: d, mode: 0o040755 })),
    { name: 'dev/console', mode: 0o020600, rdev: [5, 1] },
    { name: 'bin/busybox', mode: 0o100755, data: busybox },
    { name: 'bin/sh', mode: 0o120777, data: Buffer.from('busybox') },
  ];
  for (const f of files) entries.push({ name: `modules/${f.split('/').at(-1)!.replace(/\.(xz|zst|gz)$/, '')}`, mode: 0o100644, data: moduleBytes(join(k.modulesDir, f)) });
  const init = initScript({ release: k.release, modulesDir: k.modulesDir, modules: files.map((f) => f.replace(/\.(xz|zst|gz)$/, '')), captureDir, script });
  entries.push({ name: 'init', mode: 0o100755, data: Buffer.from(init) });
  return cpioNewc(entries);
}

export async function resolveKernel(kernel: GuestLabOptions['kernel'], progress: (s: string) => void): Promise<GuestKernel> {
  return 'release' in kernel ? fetchDebianKernel(kernel.release, progress) : localKernel(kernel.image, kernel.modules);
}

/** Run a lab scenario in a guest; returns the guest's report with `guest` filled in. */
export async function runLabInGuest(o: GuestLabOptions): Promise<LabReport> {
  if (!isRoot()) throw new PrivilegeError('lab --kernel boots a guest that runs the lab as root: run it as root');
  const qemu = requireTool('qemu-system-x86_64');
  const t0 = performance.now();
  const say = (text: string) => o.onProgress?.({ type: 'guest', text });
  const kernel = await resolveKernel(o.kernel, say);
  say(`kernel: ${kernel.release}${kernel.package ? ` (${kernel.package} ${kernel.version})` : ` (${kernel.vmlinuz})`}`);
  const accel = probeAccel();

  const runId = newRunId();
  const dir = mkdtempSync(join(tmpdir(), `ctprobe-guest-${runId}-`));
  const state: GuestState = { run: runId, pid: process.pid, qemuPid: null, dir };
  mkdirSync(STATE_DIR, { recursive: true });
  const saveState = () => writeFileSync(guestStatePath(runId), JSON.stringify(state) + '\n');
  saveState();
  let child: ChildProcess | null = null;
  let cleaned = false;
  const cleanup = () => {
    if (cleaned) return;
    cleaned = true;
    child?.kill('SIGKILL');
    // CTPROBE_GUEST_LOGS=DIR keeps the guest's console and agent log (for a guest that misbehaves).
    const keep = process.env.CTPROBE_GUEST_LOGS;
    if (keep) {
      mkdirSync(keep, { recursive: true });
      for (const f of ['console.log', 'agent.log', 'events.jsonl']) if (existsSync(join(dir, f))) writeFileSync(join(keep, `${runId}-${f}`), readFileSync(join(dir, f)));
    }
    removeGuest(state);
  };
  const onSignal = (sig: NodeJS.Signals) => {
    cleanup();
    process.exit(sig === 'SIGINT' ? 130 : 143);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', cleanup);
  try {
    if (o.spec.captureDir) mkdirSync(o.spec.captureDir, { recursive: true });
    const spec: GuestSpec = { ...o.spec, concurrency: 1 };
    writeFileSync(join(dir, 'spec.json'), JSON.stringify(spec) + '\n');
    const script = `${GUEST_RUN_DIR}/guest.sh`;
    writeFileSync(join(dir, 'guest.sh'), guestScript({ node: process.execPath, agent: AGENT_PATH, spec: `${GUEST_RUN_DIR}/spec.json`, timeScale: accel.accel === 'tcg' ? 4 : 1 }), { mode: 0o755 });
    const initramfs = join(dir, 'initramfs.cpio');
    writeFileSync(initramfs, await buildInitramfs(kernel, o.spec.captureDir, script));
    const consoleLog = join(dir, 'console.log');
    const args = qemuArgs({ accel: accel.accel, vmlinuz: kernel.vmlinuz, initramfs, cmdline: kernelCmdline(), runDir: dir, captureDir: o.spec.captureDir, consoleLog, memoryMiB: 3072, cpus: 2 });
    let tBoot = 0;
    let bootMs: number | null = null;
    let guestError: { code: string; exit: number; message: string } | null = null;
    let qemuErr = '';
    const events = join(dir, 'events.jsonl');
    let offset = 0;
    let partial = '';
    const poll = () => {
      if (!existsSync(events)) return;
      const size = statSync(events).size;
      if (size <= offset) return;
      const buf = Buffer.alloc(size - offset);
      readFrom(events, buf, offset);
      offset = size;
      partial += buf.toString('utf8');
      let i: number;
      while ((i = partial.indexOf('\n')) >= 0) {
        const line = partial.slice(0, i);
        partial = partial.slice(i + 1);
        let ev: Record<string, unknown>;
        try {
          ev = JSON.parse(line) as Record<string, unknown>;
        } catch {
          continue;
        }
        if (ev.type === 'guest-up') {
          bootMs = Math.round(performance.now() - tBoot);
          say(`boot: guest up on ${String(ev.kernel)} in ${(bootMs / 1000).toFixed(1)}s`);
        } else if (ev.type === 'guest-error') guestError = ev as unknown as typeof guestError;
        else if (ev.type === 'start' || ev.type === 'cell') o.onProgress?.(ev as unknown as LabProgress);
      }
    };
    const cells = (await scenarioByName(o.spec.scenario)?.build({ ...o.spec, engine: 'netns', swarm: false }))?.cells ?? 20;
    const limit = o.timeoutMs ?? 300_000 + cells * (accel.accel === 'tcg' ? 180_000 : 60_000);
    // An emulated boot that has not reached the agent by then is stuck (or panicked without exiting).
    const bootLimit = accel.accel === 'tcg' ? 240_000 : 90_000;
    let code: number | null = null;
    // A guest that never comes up (a boot hiccup of an emulated machine on a loaded host) is booted
    // once more; a guest that came up is never re-run.
    for (let attempt = 1; attempt <= 2; attempt++) {
      say(`boot: ${kernel.release} in qemu, ${accel.why}${attempt > 1 ? ' (second attempt)' : ''}`);
      for (const f of ['events.jsonl', 'console.log', 'status', 'agent.log']) rmSync(join(dir, f), { force: true });
      offset = 0;
      partial = '';
      qemuErr = '';
      tBoot = performance.now();
      const proc = spawn(qemu, args, { stdio: ['ignore', 'ignore', 'pipe'] });
      child = proc;
      state.qemuPid = proc.pid ?? null;
      saveState();
      proc.stderr?.setEncoding('utf8').on('data', (d: string) => (qemuErr += d));
      const exited = new Promise<number | null>((resolve) => proc.on('close', (c) => resolve(c)));
      const timer = setInterval(poll, 250);
      const deadline = setTimeout(() => proc.kill('SIGKILL'), limit);
      const bootWatch = setTimeout(() => {
        if (bootMs === null && !existsSync(join(dir, 'status'))) proc.kill('SIGKILL');
      }, bootLimit);
      code = await exited;
      clearInterval(timer);
      clearTimeout(deadline);
      clearTimeout(bootWatch);
      poll();
      // qemu's own error (a bad image, a missing device) will not go away: only a guest's hiccup is retried.
      if (bootMs !== null || existsSync(join(dir, 'status')) || qemuErr.trim() || attempt === 2) break;
      say(`boot: the guest did not come up (${consoleTailOf(consoleLog) || `qemu exit ${code}`}); booting once more`);
    }
    const guestMs = Math.round(performance.now() - tBoot);
    const consoleTail = () => consoleTailOf(consoleLog);
    if (guestError) {
      const ge = guestError as { code: string; exit: number; message: string };
      throw new GuestError(`in the guest (${kernel.release}): ${ge.message}`, ge.exit);
    }
    const reportPath = join(dir, 'report.json');
    if (!existsSync(reportPath)) {
      const status = existsSync(join(dir, 'status')) ? readFileSync(join(dir, 'status'), 'utf8').trim() : null;
      const agentLines = existsSync(join(dir, 'agent.log')) ? readFileSync(join(dir, 'agent.log'), 'utf8').trim().split('\n') : [];
      const agentLog = (agentLines.find((l) => /\b\w*Error\b|error:/i.test(l)) ?? agentLines.at(-1) ?? '').trim();
      const why =
        performance.now() - tBoot >= limit - 1000
          ? `no result within ${Math.round(limit / 1000)}s`
          : status !== null
            ? `the guest agent ended without a report (exit ${status})`
            : bootMs === null
              ? `the guest did not come up (qemu exit ${code}${qemuErr ? `: ${qemuErr.trim().split('\n')[0]}` : ''})`
              : 'the guest stopped before the agent finished';
      throw new GuestError(`guest ${kernel.release}: ${why}${agentLog ? `; agent: ${agentLog}` : ''}${consoleTail() ? `; console: ${consoleTail()}` : ''}`);
    }
    const report = JSON.parse(readFileSync(reportPath, 'utf8')) as LabReport;
    report.guest = { accel: accel.accel, accelWhy: accel.why, release: kernel.release, package: kernel.package, version: kernel.version, bootMs: bootMs ?? guestMs, guestMs };
    report.ms = Math.round(performance.now() - t0);
    return report;
  } finally {
    cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('exit', cleanup);
  }
}

/** The last lines of the guest's console, on one line (what a failed boot said). */
function consoleTailOf(path: string): string {
  return existsSync(path) ? readFileSync(path, 'utf8').trim().split('\n').slice(-6).join(' | ') : '';
}

/** Bytes of a file from `pos` (the events file grows while the guest runs). */
function readFrom(path: string, buf: Buffer, pos: number): void {
  const fd = openSync(path, 'r');
  try {
    let got = 0;
    while (got < buf.length) {
      const n = readSync(fd, buf, got, buf.length - got, pos + got);
      if (n <= 0) break;
      got += n;
    }
  } finally {
    closeSync(fd);
  }
}
