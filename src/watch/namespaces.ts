/**
 * The network namespaces `watch` looks at, and how to read each one without entering it where
 * possible: through a process in it (`/proc/PID/net/…`, no spawn) or, for a namespace that only
 * `ip netns` holds, by `nsenter --net=/run/netns/NAME` (one spawn). Each is labelled by its
 * `ip netns` name, "host" (pid 1's), or its inode; its pod is the UTS hostname of a process in it
 * when that hostname is not the node's (as --pod finds a pod).
 */
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { run, requireTool, type RunResult } from '../host/exec.js';
import type { SsProcess } from '../inspect/ss.js';
import type { Target } from '../host/target.js';

export interface NetnsRef {
  inode: string;
  /** A path that names it for nsenter --net=. */
  path: string;
  /** A process in it, when one is known. */
  pid: number | null;
  /** Processes in it (at most 256: whose sockets the leak detector may look at). */
  pids: number[];
  label: string;
  pod: string | null;
  /** This process's own namespace: tools run here directly (no nsenter, no privilege needed). */
  self: boolean;
}

const NETNS_DIR = '/run/netns';

function inodeOf(link: string): string | null {
  try {
    return /\[(\d+)\]/.exec(readlinkSync(link))?.[1] ?? null;
  } catch {
    return null;
  }
}

/** `ip netns` names by inode. */
function namedNetns(): Map<string, string> {
  const out = new Map<string, string>();
  let names: string[] = [];
  try {
    names = readdirSync(NETNS_DIR);
  } catch {
    return out;
  }
  for (const n of names)
    try {
      const ino = String(statSync(`${NETNS_DIR}/${n}`).ino);
      if (!out.has(ino)) out.set(ino, n);
    } catch {
      /* removed meanwhile */
    }
  return out;
}

const MAX_PIDS = 256;

/** Per network namespace: one process per UTS namespace in it, and up to MAX_PIDS of its processes. */
interface Processes {
  /** net inode → one process per UTS namespace in it */
  byUts: Map<string, { pid: number; uts: string | null }[]>;
  /** net inode → its processes */
  all: Map<string, number[]>;
}

function processesByNetns(): Processes {
  const out = new Map<string, { pid: number; uts: string | null }[]>();
  const all = new Map<string, number[]>();
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return { byUts: out, all };
  }
  for (const p of pids) {
    const net = inodeOf(`/proc/${p}/ns/net`);
    if (!net) continue;
    const pids = all.get(net);
    if (!pids) all.set(net, [Number(p)]);
    else if (pids.length < MAX_PIDS) pids.push(Number(p));
    const uts = inodeOf(`/proc/${p}/ns/uts`);
    const list = out.get(net);
    if (!list) out.set(net, [{ pid: Number(p), uts }]);
    else if (!list.some((x) => x.uts === uts)) list.push({ pid: Number(p), uts });
  }
  return { byUts: out, all };
}

export class NetnsDirectory {
  private readonly hostnames = new Map<string, string | null>(); // uts inode → hostname
  readonly selfNet = inodeOf('/proc/self/ns/net');
  /** The node's namespaces: pid 1's, or (pid 1 out of reach) this process's own. */
  private readonly hostNet = inodeOf('/proc/1/ns/net') ?? this.selfNet;
  /** UTS namespaces that are the node's, not a pod's: pid 1's and this process's. */
  private readonly nodeUts = new Set([inodeOf('/proc/1/ns/uts'), inodeOf('/proc/self/ns/uts')].filter((x): x is string => x !== null));

  /** Every network namespace on the node (--all-netns). */
  async all(): Promise<NetnsRef[]> {
    const named = namedNetns();
    const procs = processesByNetns();
    const inodes = new Set([...procs.byUts.keys(), ...named.keys()]);
    const out: NetnsRef[] = [];
    for (const inode of inodes) out.push(await this.ref(inode, named, procs));
    return out;
  }

  /** The one namespace of a target (--netns/--pid/--pod, or this process's own). */
  async ofTarget(t: Target): Promise<NetnsRef | null> {
    const named = namedNetns();
    const procs = processesByNetns();
    const inode = t.kind === 'host' ? this.selfNet : t.kind === 'pid' ? inodeOf(`/proc/${t.pid}/ns/net`) : [...named].find(([, n]) => n === t.name)?.[0] ?? null;
    if (!inode) return null;
    // this process is in its own namespace even when /proc hides the others (not root)
    if (inode === this.selfNet && !procs.byUts.has(inode)) procs.byUts.set(inode, [{ pid: process.pid, uts: inodeOf('/proc/self/ns/uts') }]);
    if (!procs.byUts.has(inode) && !named.has(inode)) return null;
    const ref = await this.ref(inode, named, procs);
    if (t.kind === 'pid' && t.pod) ref.pod = t.pod;
    return ref;
  }

  private async ref(inode: string, named: Map<string, string>, procs: Processes): Promise<NetnsRef> {
    const list = procs.byUts.get(inode) ?? [];
    const pid = list[0]?.pid ?? null;
    const name = named.get(inode);
    const label = name ?? (inode === this.hostNet ? 'host' : inode);
    // A pod: a process here whose UTS namespace is not the node's.
    let pod: string | null = null;
    for (const p of list)
      if (p.uts && !this.nodeUts.has(p.uts)) {
        pod = await this.hostname(p.uts, p.pid);
        if (pod) break;
      }
    // an `ip netns` name outlives any one process in it
    return { inode, path: name !== undefined ? `${NETNS_DIR}/${name}` : `/proc/${pid}/ns/net`, pid, pids: procs.all.get(inode) ?? [], label, pod, self: inode === this.selfNet };
  }

  private async hostname(uts: string, pid: number): Promise<string | null> {
    if (this.hostnames.has(uts)) return this.hostnames.get(uts)!;
    const r = await run('nsenter', ['-t', String(pid), '-u', requireTool('hostname')], { allowFail: true, timeoutMs: 5000 }).catch(() => null);
    const h = r && r.status === 0 ? r.stdout.trim() || null : null;
    this.hostnames.set(uts, h);
    return h;
  }

  /** Forget hostnames of UTS namespaces that are gone (bounded cache). */
  prune(): void {
    if (this.hostnames.size < 4096) return;
    this.hostnames.clear();
  }
}

/** What a cycle reads of each namespace; null: unreadable (no conntrack loaded, namespace gone). */
export interface NetSnapshot {
  conntrackStat: string | null;
  tcp: string | null;
  tcp6: string | null;
}

const MARK = '@@ctprobe-netns ';

/** Which socket tables to read besides the statistics: each read walks the kernel's whole (global) TCP hash, ~2-4 ms here. */
export interface TcpTables {
  tcp: boolean;
  tcp6: boolean;
}

function readSnapshot(dir: string, want: TcpTables): NetSnapshot | null {
  const read = (f: string) => {
    try {
      return readFileSync(`${dir}/${f}`, 'utf8');
    } catch {
      return null;
    }
  };
  const conntrackStat = read('stat/nf_conntrack');
  const tcp = want.tcp ? read('tcp') : null;
  const tcp6 = want.tcp6 ? read('tcp6') : null;
  return tcp === null && conntrackStat === null && tcp6 === null ? null : { conntrackStat, tcp, tcp6 };
}

/** Split `cat stat/nf_conntrack tcp tcp6` output at the files' own header lines. */
function splitConcatenated(text: string): NetSnapshot {
  const out: NetSnapshot = { conntrackStat: null, tcp: null, tcp6: null };
  let cur: keyof NetSnapshot | null = null;
  const parts: Record<keyof NetSnapshot, string[]> = { conntrackStat: [], tcp: [], tcp6: [] };
  for (const line of text.split('\n')) {
    if (line.startsWith('entries ')) cur = 'conntrackStat';
    else if (/^\s*sl\s+local_address/.test(line)) cur = cur === 'tcp' || cur === 'tcp6' ? 'tcp6' : 'tcp';
    if (cur) parts[cur].push(line);
  }
  for (const k of Object.keys(parts) as (keyof NetSnapshot)[]) if (parts[k].length) out[k] = parts[k].join('\n');
  return out;
}

/** Through a process in the namespace (/proc/PID/net): no spawn. Null without one. */
export function snapshotThroughPid(r: NetnsRef, want: TcpTables): NetSnapshot | null {
  // any process still in it will do: the one found first may have ended since
  for (const pid of r.pid !== null ? [r.pid, ...r.pids.slice(0, 8)] : []) {
    const s = readSnapshot(`/proc/${pid}/net`, want);
    if (s) {
      r.pid = pid;
      return s;
    }
  }
  return null;
}

/**
 * Statistics of namespaces that no process is in (only `ip netns` holds them; no process, no
 * socket a proxy holds, so no socket table): one shell for all of them, entering each by path (a
 * spawn per namespace from Node would take most of a cycle on a small, loaded machine; setns from
 * Node measured no faster here, ~11 ms a switch).
 */
export async function snapshotsByEntering(refs: NetnsRef[]): Promise<Map<string, NetSnapshot | null>> {
  const out = new Map<string, NetSnapshot | null>();
  const enter = refs;
  for (let i = 0; i < enter.length; i += 64) {
    const batch = enter.slice(i, i + 64);
    const script = `for p in "$@"; do echo "${MARK}$p"; ${requireTool('nsenter')} --net="$p" ${requireTool('cat')} /proc/net/stat/nf_conntrack 2>/dev/null; done`;
    const r = await run('sh', ['-c', script, 'sh', ...batch.map((b) => b.path)], { allowFail: true, timeoutMs: 30_000 }).catch(() => null);
    const byPath = new Map<string, string>();
    for (const chunk of (r?.stdout ?? '').split(MARK).slice(1)) {
      const nl = chunk.indexOf('\n');
      byPath.set(chunk.slice(0, nl < 0 ? undefined : nl), nl < 0 ? '' : chunk.slice(nl + 1));
    }
    for (const b of batch) {
      const text = byPath.get(b.path);
      out.set(b.inode, text ? splitConcatenated(text) : null);
    }
  }
  return out;
}

/** Run a tool inside the namespace (nsenter --net=PATH), never throwing on its exit status. */
export function inNetns(ref: NetnsRef, tool: string, args: string[], timeoutMs = 15_000): Promise<RunResult> {
  if (ref.self) return run(tool, args, { allowFail: true, timeoutMs });
  return run('nsenter', [`--net=${ref.path}`, requireTool(tool), ...args], { allowFail: true, timeoutMs });
}

/** Owners of the wanted socket inodes, from the fd tables of the namespace's processes (no spawn). */
export function socketOwners(pids: number[], wanted: ReadonlySet<number>): Map<number, SsProcess[]> {
  const out = new Map<number, SsProcess[]>();
  if (!wanted.size) return out;
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // ended, or not ours to read
    }
    let name: string | null = null;
    for (const fd of fds) {
      let link: string;
      try {
        link = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      if (!link.startsWith('socket:[')) continue;
      const ino = Number(link.slice(8, -1));
      if (!wanted.has(ino)) continue;
      name ??= readFileSafe(`/proc/${pid}/comm`)?.trim() ?? '?';
      const list = out.get(ino);
      const owner = { name, pid, fd: Number(fd) };
      if (list) list.push(owner);
      else out.set(ino, [owner]);
    }
  }
  return out;
}

function readFileSafe(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** The namespace's conntrack table through a process in it (/proc/PID/net/nf_conntrack); null without. */
export function conntrackTableThroughPid(r: NetnsRef): string | null {
  return r.pid !== null ? readFileSafe(`/proc/${r.pid}/net/nf_conntrack`) : null;
}
