/**
 * Where a host command looks or acts: this namespace, a named one (`--netns NAME`, as
 * `ip netns exec`), the one of a process (`--pid PID`, as `nsenter -t PID -n`), or the one of a
 * pod (`--pod NAME`: the process whose UTS hostname is the pod name, as the seed found Envoy).
 */
import { readdirSync, readlinkSync } from 'node:fs';
import { NamespaceError, UsageError } from '../errors.js';
import { requireTool, runSync, type RunOptions, type RunResult } from './exec.js';

export type Target = { kind: 'host' } | { kind: 'netns'; name: string } | { kind: 'pid'; pid: number; pod?: string };

export function describeTarget(t: Target): string {
  if (t.kind === 'host') return 'this network namespace';
  if (t.kind === 'netns') return `network namespace ${t.name}`;
  return t.pod ? `pod ${t.pod} (pid ${t.pid})` : `network namespace of pid ${t.pid}`;
}

/** The target's network-namespace inode: identifies it across runs (for undo state). */
export function targetNetnsId(t: Target): string {
  const r = runInTarget(t, 'readlink', ['/proc/self/ns/net'], { allowFail: true });
  return (r.stdout.match(/\d+/) ?? ['unknown'])[0];
}

/** Run a tool inside the target's network namespace. */
export function runInTarget(t: Target, tool: string, args: string[], opts: RunOptions = {}): RunResult {
  if (t.kind === 'host') return runSync(tool, args, opts);
  if (t.kind === 'netns') return runSync(tool, args, { ...opts, netns: t.name });
  return runSync('nsenter', ['-t', String(t.pid), '-n', requireTool(tool), ...args], opts);
}

function nsInode(pid: string, kind: 'uts' | 'net'): string | null {
  try {
    return readlinkSync(`/proc/${pid}/ns/${kind}`);
  } catch {
    return null;
  }
}

/** The process(es) whose UTS hostname is `pod`; one network namespace or a clear error. */
export function findPod(pod: string): Target {
  const byUts = new Map<string, string>(); // uts inode → a pid in it
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    const uts = nsInode(pid, 'uts');
    if (uts && !byUts.has(uts)) byUts.set(uts, pid);
  }
  const nets = new Map<string, number>(); // net inode → pid
  for (const [uts, pid] of byUts) {
    const r = runSync('nsenter', ['-t', pid, '-u', 'hostname'], { allowFail: true });
    if (r.status !== 0 || r.stdout.trim() !== pod) continue;
    for (const p of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
      if (nsInode(p, 'uts') !== uts) continue;
      const net = nsInode(p, 'net');
      if (net && !nets.has(net)) nets.set(net, Number(p));
    }
  }
  if (nets.size === 0) throw new NamespaceError(`no process has the hostname '${pod}' (is the pod on this node? 'crictl pods' lists them)`);
  if (nets.size > 1) throw new NamespaceError(`hostname '${pod}' is used in ${nets.size} network namespaces (pids ${[...nets.values()].join(', ')}): use --pid to choose one`);
  return { kind: 'pid', pid: [...nets.values()][0]!, pod };
}

/** From --netns / --pid / --pod (at most one). */
export function targetFromFlags(v: { netns?: string; pid?: string; pod?: string }): Target {
  const given = [v.netns, v.pid, v.pod].filter((x) => x !== undefined).length;
  if (given > 1) throw new UsageError('give at most one of --netns, --pid, --pod');
  if (v.netns !== undefined) {
    const list = runSync('ip', ['netns', 'list'], { allowFail: true }).stdout.split('\n').map((l) => l.split(' ')[0]);
    if (!list.includes(v.netns)) throw new NamespaceError(`no network namespace named '${v.netns}' ('ip netns list' shows them)`);
    return { kind: 'netns', name: v.netns };
  }
  if (v.pid !== undefined) {
    if (!/^\d+$/.test(v.pid)) throw new UsageError(`--pid: '${v.pid}' is not a process id`);
    if (!nsInode(v.pid, 'net')) throw new NamespaceError(`no process ${v.pid} (or its namespaces cannot be read: run as root)`);
    return { kind: 'pid', pid: Number(v.pid) };
  }
  if (v.pod !== undefined) return findPod(v.pod);
  return { kind: 'host' };
}
