/**
 * What a lab run owns, written down so that a killed run (SIGKILL) can be cleaned up later:
 * /run/ctprobe/lab-<run>.json names the run's pid; every namespace is `ctp-lab-<run>-…`.
 * `nf_log_all_netns` (the one root-namespace sysctl the lab may touch) is restored by the last
 * run to finish, from /run/ctprobe/nf_log_all_netns.orig.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { runSync } from '../host/exec.js';
import { restoreLogAllNetnsNow } from '../host/sysctl.js';
import { dockerRunsPresent, labDockerds, removeDockerd, removeRunFiles } from './docker.js';
export { enableLogAllNetns, readLogAllNetns } from '../host/sysctl.js';

export const LAB_PREFIX = 'ctp-lab-';
export { STATE_DIR } from '../host/statedir.js';
import { STATE_DIR } from '../host/statedir.js';

export function newRunId(): string {
  return randomBytes(3).toString('hex');
}

export interface RunState {
  run: string;
  pid: number;
  startedAt: string;
  scenario: string;
  keep: boolean;
}

function statePath(run: string): string {
  return `${STATE_DIR}/lab-${run}.json`;
}

export function writeRunState(s: RunState): void {
  mkdirSync(STATE_DIR, { recursive: true });
  writeFileSync(statePath(s.run), JSON.stringify(s) + '\n');
}

export function removeRunState(run: string): void {
  rmSync(statePath(run), { force: true });
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // A killed process not yet reaped by its parent is a zombie: dead for our purposes.
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function readRunStates(): RunState[] {
  if (!existsSync(STATE_DIR)) return [];
  const out: RunState[] = [];
  for (const f of readdirSync(STATE_DIR)) {
    if (!/^lab-[0-9a-f]+\.json$/.test(f)) continue;
    try {
      out.push(JSON.parse(readFileSync(`${STATE_DIR}/${f}`, 'utf8')) as RunState);
    } catch {
      /* half-written: treat as absent */
    }
  }
  return out;
}

/** Runs whose process is still alive (kept runs count as not alive: their owner exited). */
export function liveRuns(exceptRun?: string): RunState[] {
  return readRunStates().filter((s) => s.run !== exceptRun && s.pid !== process.pid && pidAlive(s.pid));
}

export function labNamespaces(): string[] {
  const r = runSync('ip', ['netns', 'list'], { allowFail: true });
  return r.stdout
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.startsWith(LAB_PREFIX));
}

export function runOfNamespace(ns: string): string | null {
  return /^ctp-lab-([0-9a-f]+)-/.exec(ns)?.[1] ?? null;
}

/** Restore nf_log_all_netns when no other lab run is alive. Returns the value restored, if any. */
export function restoreLogAllNetns(exceptRun?: string): number | null {
  return liveRuns(exceptRun).length > 0 ? null : restoreLogAllNetnsNow();
}

export interface CleanReport {
  removed: string[];
  skippedLive: string[];
  restoredLogAllNetns: number | null;
}

/**
 * Remove what dead (or kept) lab runs left: dockerds (with their containers, images, data dirs,
 * mounts and cgroups), namespaces, state files; restore the root sysctl.
 */
export async function cleanLeftovers(): Promise<CleanReport> {
  const live = new Set(liveRuns().map((s) => s.run));
  const removed: string[] = [];
  const skippedLive: string[] = [];
  // Daemons before namespaces: dockerd is in a lab namespace, and stops its containers itself.
  for (const d of labDockerds()) {
    if (live.has(d.run)) {
      skippedLive.push(`dockerd ${d.paths.dir}`);
      continue;
    }
    await removeDockerd(d.paths);
    removed.push(`dockerd ${d.paths.dir}`);
  }
  for (const run of dockerRunsPresent()) if (!live.has(run)) removed.push(...removeRunFiles(run));
  for (const ns of labNamespaces()) {
    const run = runOfNamespace(ns);
    if (run && live.has(run)) {
      skippedLive.push(ns);
      continue;
    }
    runSync('ip', ['netns', 'pids', ns], { allowFail: true })
      .stdout.split('\n')
      .filter(Boolean)
      .forEach((pid) => {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          /* gone */
        }
      });
    runSync('ip', ['netns', 'del', ns], { allowFail: true });
    removed.push(ns);
  }
  // Links in the root namespace never carry our names, but a crash mid-creation could leave one.
  const links = runSync('ip', ['-o', 'link', 'show'], { allowFail: true }).stdout;
  for (const m of links.matchAll(/^\d+: (ct[abudvwy][0-9a-f]{6}\d{2})[@:]/gm)) {
    runSync('ip', ['link', 'del', m[1]!], { allowFail: true });
    removed.push(`link ${m[1]}`);
  }
  for (const s of readRunStates()) if (!live.has(s.run)) removeRunState(s.run);
  for (const g of leftoverGuests()) {
    removeGuest(g);
    removed.push(`guest ${g.run}${g.qemuPid ? ` (qemu pid ${g.qemuPid})` : ''} ${g.dir}`);
  }
  return { removed, skippedLive, restoredLogAllNetns: restoreLogAllNetns() };
}

/** A lab guest (`lab --kernel`): its owner, its qemu and its run directory, for `lab clean`. */
export interface GuestState {
  run: string;
  pid: number;
  qemuPid: number | null;
  dir: string;
}

export const guestStatePath = (run: string) => `${STATE_DIR}/guest-${run}.json`;

/** Kill a guest's qemu and remove its run directory and state file. */
export function removeGuest(s: GuestState): void {
  if (s.qemuPid) {
    try {
      // Only a qemu that still serves this run's directory: a recycled pid is someone else's.
      const cmd = readFileSync(`/proc/${s.qemuPid}/cmdline`, 'utf8');
      if (cmd.includes('qemu-system') && cmd.includes(s.dir)) process.kill(s.qemuPid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  rmSync(s.dir, { recursive: true, force: true });
  rmSync(guestStatePath(s.run), { force: true });
}

/** Guests whose owning ctprobe is gone (SIGKILLed). */
export function leftoverGuests(): GuestState[] {
  if (!existsSync(STATE_DIR)) return [];
  const out: GuestState[] = [];
  for (const f of readdirSync(STATE_DIR)) {
    if (!/^guest-[0-9a-f]+\.json$/.test(f)) continue;
    try {
      const s = JSON.parse(readFileSync(`${STATE_DIR}/${f}`, 'utf8')) as GuestState;
      if (!pidAlive(s.pid)) out.push(s);
    } catch {
      /* half-written: its run is still starting or was killed before qemu; nothing to kill */
    }
  }
  return out;
}
