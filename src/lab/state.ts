/**
 * What a lab run owns, written down so that a killed run (SIGKILL) can be cleaned up later:
 * /run/ctprobe/lab-<run>.json names the run's pid; every namespace is `ctp-lab-<run>-…`.
 * `nf_log_all_netns` (the one root-namespace sysctl the lab may touch) is restored by the last
 * run to finish, from /run/ctprobe/nf_log_all_netns.orig.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { runSync } from '../host/exec.js';

export const LAB_PREFIX = 'ctp-lab-';
export { STATE_DIR } from '../host/statedir.js';
import { STATE_DIR } from '../host/statedir.js';
const LOG_ALL = '/proc/sys/net/netfilter/nf_log_all_netns';
const LOG_ALL_ORIG = `${STATE_DIR}/nf_log_all_netns.orig`;

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
    return true;
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

/** Read nf_log_all_netns; null when the kernel has none. */
export function readLogAllNetns(): number | null {
  try {
    return Number(readFileSync(LOG_ALL, 'utf8').trim());
  } catch {
    return null;
  }
}

/** Make sure kernel log lines from other namespaces are emitted; remember the original value. */
export function enableLogAllNetns(): { changed: boolean; value: number | null } {
  const v = readLogAllNetns();
  if (v === null || v === 1) return { changed: false, value: v };
  mkdirSync(STATE_DIR, { recursive: true });
  if (!existsSync(LOG_ALL_ORIG)) writeFileSync(LOG_ALL_ORIG, `${v}\n`);
  try {
    writeFileSync(LOG_ALL, '1\n');
  } catch {
    return { changed: false, value: v };
  }
  return { changed: true, value: 1 };
}

/** Restore nf_log_all_netns when no other lab run is alive. Returns the value restored, if any. */
export function restoreLogAllNetns(exceptRun?: string): number | null {
  if (!existsSync(LOG_ALL_ORIG) || liveRuns(exceptRun).length > 0) return null;
  const orig = Number(readFileSync(LOG_ALL_ORIG, 'utf8').trim());
  try {
    writeFileSync(LOG_ALL, `${orig}\n`);
  } catch {
    return null;
  }
  rmSync(LOG_ALL_ORIG, { force: true });
  return orig;
}

export interface CleanReport {
  removed: string[];
  skippedLive: string[];
  restoredLogAllNetns: number | null;
}

/** Remove what dead (or kept) lab runs left: namespaces, state files; restore the root sysctl. */
export function cleanLeftovers(): CleanReport {
  const live = new Set(liveRuns().map((s) => s.run));
  const removed: string[] = [];
  const skippedLive: string[] = [];
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
  for (const m of links.matchAll(/^\d+: (ct[abuv][0-9a-f]{6}\d{2})[@:]/gm)) {
    runSync('ip', ['link', 'del', m[1]!], { allowFail: true });
    removed.push(`link ${m[1]}`);
  }
  for (const s of readRunStates()) if (!live.has(s.run)) removeRunState(s.run);
  return { removed, skippedLive, restoredLogAllNetns: restoreLogAllNetns() };
}
