/**
 * The network namespaces `watch` looks at, and how to read each one without entering it where
 * possible: through a process in it (`/proc/PID/net/…`, no spawn) or, for a namespace that only
 * `ip netns` holds, by `nsenter --net=/run/netns/NAME` (one spawn). Each is labelled by its
 * `ip netns` name, "host" (pid 1's), or its inode; its pod is the UTS hostname of a process in it
 * when that hostname is not the node's (as --pod finds a pod).
 */
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { run, requireTool, type RunResult } from '../host/exec.js';
import type { Target } from '../host/target.js';

export interface NetnsRef {
  inode: string;
  /** A path that names it for nsenter --net=. */
  path: string;
  /** A process in it, when one is known. */
  pid: number | null;
  label: string;
  pod: string | null;
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

/** One process per (net, uts) namespace pair: the first found. */
function processesByNetns(): Map<string, { pid: number; uts: string | null }[]> {
  const out = new Map<string, { pid: number; uts: string | null }[]>();
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return out;
  }
  for (const p of pids) {
    const net = inodeOf(`/proc/${p}/ns/net`);
    if (!net) continue;
    const uts = inodeOf(`/proc/${p}/ns/uts`);
    const list = out.get(net);
    if (!list) out.set(net, [{ pid: Number(p), uts }]);
    else if (!list.some((x) => x.uts === uts)) list.push({ pid: Number(p), uts });
  }
  return out;
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
    const inodes = new Set([...procs.keys(), ...named.keys()]);
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
    if (!procs.has(inode) && !named.has(inode)) return null;
    const ref = await this.ref(inode, named, procs);
    if (t.kind === 'pid' && t.pod) ref.pod = t.pod;
    return ref;
  }

  private async ref(inode: string, named: Map<string, string>, procs: Map<string, { pid: number; uts: string | null }[]>): Promise<NetnsRef> {
    const list = procs.get(inode) ?? [];
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
    return { inode, path: pid !== null ? `/proc/${pid}/ns/net` : `${NETNS_DIR}/${name}`, pid, label, pod };
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

const SEPARATOR = '@@ctprobe@@';

/**
 * Read files of the namespace's /proc/net: through a process in it (no spawn) or, with none, by
 * entering it once for all of them. An unreadable file is null.
 */
export async function readNetFiles(ref: NetnsRef, files: string[]): Promise<(string | null)[]> {
  if (ref.pid !== null) {
    const out = files.map((f) => {
      try {
        return readFileSync(`/proc/${ref.pid}/net/${f}`, 'utf8');
      } catch {
        return null;
      }
    });
    if (out.some((x) => x !== null)) return out;
    // the process ended: enter by path below
  }
  const script = files.map((f) => `cat /proc/net/${f} 2>/dev/null || printf '${SEPARATOR}missing'`).join(`; echo ${SEPARATOR}; `);
  const r = await inNetns(ref, 'sh', ['-c', script]).catch(() => null);
  if (!r || r.status !== 0) return files.map(() => null);
  return r.stdout.split(`${SEPARATOR}\n`).map((t) => (t.startsWith(`${SEPARATOR}missing`) ? null : t));
}

/** Run a tool inside the namespace (nsenter --net=PATH), never throwing on its exit status. */
export function inNetns(ref: NetnsRef, tool: string, args: string[], timeoutMs = 15_000): Promise<RunResult> {
  return run('nsenter', [`--net=${ref.path}`, requireTool(tool), ...args], { allowFail: true, timeoutMs });
}
