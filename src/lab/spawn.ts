/** Processes the lab starts inside its namespaces, tracked so teardown can kill them first. */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { LabError } from '../errors.js';
import { decodeEvent, type WireEvent } from '../events.js';
import { requireTool, run } from '../host/exec.js';
import { parseConntrackStatsText } from '../inspect/conntrack.js';

export const CLI_PATH = fileURLToPath(new URL('../cli/main.js', import.meta.url));
export const PEERS_PATH = fileURLToPath(new URL('./peers.js', import.meta.url));

export const liveChildren = new Set<ChildProcess>();

import { STARTUP_MS, TIME_SCALE } from './timing.js';

export { STARTUP_MS, TIME_SCALE };

/** Run `node SCRIPT args…` inside a namespace, optionally as another uid (via setpriv). */
export function spawnNode(ns: string, script: string, args: string[], uid?: number): ChildProcess {
  const pre = uid === undefined ? [] : [requireTool('setpriv'), `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups'];
  const p = spawn(requireTool('ip'), ['netns', 'exec', ns, ...pre, process.execPath, script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  liveChildren.add(p);
  p.on('close', () => liveChildren.delete(p));
  return p;
}

/** Feed each stdout line of `p` that is an event of the contract (src/events.ts) to `onEvent`; resolves with the exit code. */
export function jsonLines(p: ChildProcess, onEvent: (e: WireEvent) => void): Promise<number | null> {
  let buf = '';
  p.stdout?.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      const e = decodeEvent(line);
      if (e) onEvent(e);
    }
  });
  return new Promise((resolve) => p.on('close', (code) => resolve(code)));
}

/** Wait for the first event matching `pred`, or for the process to end (false). */
export function waitFor(p: ChildProcess, events: WireEvent[], pred: (e: WireEvent) => boolean, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const tick = () => {
      if (events.some(pred)) return resolve(true);
      if (p.exitCode !== null || p.signalCode !== null || Date.now() - t0 > timeoutMs) return resolve(false);
      setTimeout(tick, 20);
    };
    tick();
  });
}

/** conntrack's `invalid` counter in a namespace, summed over CPUs; null when unreadable. */
export async function invalidCounter(ns: string): Promise<number | null> {
  const r = await run('conntrack', ['-S'], { netns: ns, allowFail: true }).catch(() => null);
  if (!r || r.status !== 0) return null;
  try {
    return parseConntrackStatsText(r.stdout).totals.invalid ?? 0;
  } catch {
    return null;
  }
}

/**
 * tcpdump on every interface of a namespace, written to `file`; resolves once it is capturing.
 * Call the returned stop() to end it and wait until the file is complete.
 */
export async function startCapture(ns: string, file: string, filter: string): Promise<() => Promise<number | null>> {
  const p = spawn(requireTool('ip'), ['netns', 'exec', ns, requireTool('tcpdump'), '-i', 'any', '-n', '-U', '--immediate-mode', '-B', '16384', // ten captures at once on 2 cores drop packets with the default buffer
     '-s', '262144', '-w', file, filter], { stdio: ['ignore', 'ignore', 'pipe'] });
  liveChildren.add(p);
  const closed = new Promise<void>((resolve) => p.on('close', () => {
    liveChildren.delete(p);
    resolve();
  }));
  let err = '';
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new LabError(`tcpdump did not start in ${ns}: ${err.trim()}`)), STARTUP_MS);
    p.stderr?.setEncoding('utf8').on('data', (d: string) => {
      err += d;
      if (/listening on/.test(err)) {
        clearTimeout(t);
        resolve();
      }
    });
    p.on('close', () => {
      clearTimeout(t);
      reject(new LabError(`tcpdump exited in ${ns}: ${err.trim().split('\n').pop() ?? ''}`));
    });
  });
  return async () => {
    p.kill('SIGINT');
    await closed;
    // tcpdump's own count of packets the kernel could not hand it: a replay of a lossy capture lies.
    const dropped = /(\d+) packets? dropped by kernel/.exec(err);
    return dropped ? Number(dropped[1]) : null;
  };
}

/** ifindex → interface name inside a namespace (captures with -i any record the ifindex). */
export async function interfaceIndex(ns: string): Promise<Record<string, string>> {
  const r = await run('ip', ['-n', ns, '-o', 'link', 'show'], { allowFail: true });
  const out: Record<string, string> = {};
  for (const m of r.stdout.matchAll(/^(\d+): ([^:@\s]+)/gm)) out[m[1]!] = m[2]!;
  return out;
}
