/**
 * `ctprobe watch`: a long-running agent. Each interval, per network namespace it watches, it reads
 * conntrack's statistics (invalid, insert_failed, drop, early_drop summed over CPUs) and looks for
 * the half-close leak; all the time, it follows the kernel log and attributes each invalid-packet
 * line to a namespace and pod. What it finds goes out as events (the caller renders them) and into
 * the metrics (metrics.ts).
 *
 * Bounded: at most --max-netns namespaces; the kernel log is read up to a budget per tick (the
 * kernel overwrites the rest: counted); events for lines are rate-limited (the rest counted);
 * the full leak scan (ss + conntrack -L) runs only where a FIN-WAIT-2 socket sits on the proxy
 * port (/proc/net/tcp, no spawn), and takes at most ~5% of the time; namespaces' interface tables
 * are re-read on a miss at most once a second.
 */
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { CommandError, errorText } from '../errors.js';
import { requireTool } from '../host/exec.js';
import { KernelLog } from '../host/kmsg.js';
import type { Target } from '../host/target.js';
import { attributeLine, reasonLabel, type AttributedBy, type IfaceView, type NetnsView } from '../inspect/attribute.js';
import { parseConntrack } from '../inspect/conntrack.js';
import { parseKernelLogLine, type InvalidLogEvent } from '../inspect/kernlog.js';
import { findLeaks, type Leak } from '../inspect/leaks.js';
import { parseProcConntrackStat, parseProcTcp, procTcpAsSs, PROC_TCP_STATE } from '../inspect/procnet.js';
import { parseSs, type SsSocket } from '../inspect/ss.js';
import { hostLimits, type Limit } from './limits.js';
import { CONNTRACK_COUNTERS, type ConntrackCounter, type WatchMetrics } from './metrics.js';
import { conntrackTableThroughPid, inNetns, NetnsDirectory, snapshotsByEntering, snapshotThroughPid, socketOwners, type NetnsRef, type NetSnapshot, type TcpTables } from './namespaces.js';

export interface WatchOptions {
  scope: { kind: 'all' } | { kind: 'target'; target: Target };
  intervalMs: number;
  proxyPort: number;
  /** Invalid-packet events per second (lines beyond are counted, not emitted). */
  maxEventsPerS: number;
  maxNetns: number;
  /** Epoch ms to stop at (Infinity: until the signal). */
  untilMs: number;
  signal: AbortSignal;
  /** How the user started it, for fixes that say "run it as root". */
  command: string;
  listen: string | null;
}

interface Who {
  netns: string;
  pod: string | null;
}

export interface LeakInfo extends Who {
  proxyPort: number;
  app: string;
  proxy: string;
  upstream: string | null;
  process: string | null;
  pid: number | null;
}

export type WatchEvent =
  | { type: 'watch-start'; scope: 'all-netns' | 'target'; watching: (Who & { invalidLog: boolean | null })[]; unwatched: number; intervalMs: number; listen: string | null; limits: Limit[] }
  | ({ type: 'invalid'; attributedBy: AttributedBy; peerNetns: string | null; reasonLabel: string; usec: number | null; netns: string | null; pod: string | null } & Omit<InvalidLogEvent, 'time'>)
  | ({ type: 'counter'; counter: ConntrackCounter; delta: number; total: number } & Who)
  | ({ type: 'leak-appeared' } & LeakInfo)
  | ({ type: 'leak-gone'; ageS: number; why: 'closed' | 'netns-gone' } & LeakInfo)
  | ({ type: 'netns-appeared'; invalidLog: boolean | null } & Who)
  | ({ type: 'netns-gone' } & Who)
  | { type: 'lines-suppressed'; count: number; missed: number }
  | { type: 'watch-error'; netns: string | null; message: string }
  | { type: 'watch-stop'; cycles: number; lines: number; suppressed: number; missed: number };

interface Watched {
  ref: NetnsRef;
  since: number;
  ifaces: IfaceView[];
  ifacesAt: number;
  stats: Record<string, number> | null;
  invalidLog: boolean | null;
  leaks: Map<string, { info: LeakInfo; since: number; inode: number | null }>;
  nextFullScan: number;
  leakSignature: string;
  /** Socket tables to read for the leak detector: where a proxy listens on --proxy-port (IPv4, IPv6). */
  proxy: TcpTables;
  goneAt: number | null;
}

const KMSG_TICK_MS = 200;
const LEAK_HELD_MS = 100;
const KMSG_BUDGET = 2000; // records per tick: 10,000/s
const IFACE_REFRESH_MS = 60_000;
const PENDING_MAX = 5000;
const YOUNG_MS = 30_000; // a namespace this young may still be getting its interfaces and proxy
const YOUNG_LOOK_MS = 1500;

/**
 * A namespace's interfaces (`ip -j addr`), whether it logs INVALID packets, and whether a proxy
 * listens on the proxy port (then its socket tables are read each cycle): one spawn.
 */
async function lookAt(ref: NetnsRef, proxyPort: number): Promise<{ ifaces: IfaceView[] | null; invalidLog: boolean | null; proxy: TcpTables }> {
  const SEP = '@@ctprobe@@';
  const script = `cat /proc/sys/net/netfilter/nf_conntrack_log_invalid 2>/dev/null || echo -; echo ${SEP}; ${requireTool('ss')} -Htln 'sport = :${proxyPort}' 2>/dev/null; echo ${SEP}; ${requireTool('ip')} -j addr show`;
  const r = await inNetns(ref, 'sh', ['-c', script]).catch(() => null);
  const none = { tcp: false, tcp6: false };
  if (!r || r.status !== 0) return { ifaces: null, invalidLog: null, proxy: none };
  const [logText = '', listen = '', addrs = ''] = r.stdout.split(`${SEP}\n`);
  const v = logText.trim();
  const invalidLog = /^\d+$/.test(v) ? v === '6' || v === '255' : null;
  const locals = listen.split('\n').map((l) => l.trim().split(/\s+/)[3] ?? '').filter(Boolean);
  const proxy = { tcp: locals.some((l) => !l.startsWith('[') || l.startsWith('[::ffff:') || l.startsWith('*')), tcp6: locals.some((l) => l.startsWith('[') || l.startsWith('*')) };
  try {
    const list = JSON.parse(addrs) as Array<{ ifindex: number; ifname: string; link_index?: number; link_netnsid?: number; addr_info?: Array<{ local: string; prefixlen: number }> }>;
    return { invalidLog, proxy, ifaces: list.map((i) => ({ name: i.ifname, ifindex: i.ifindex, link: i.link_index ?? null, linkNetnsid: i.link_netnsid ?? null, addrs: (i.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`) })) };
  } catch {
    return { invalidLog, proxy, ifaces: null };
  }
}

export class WatchAgent {
  private readonly dir = new NetnsDirectory();
  private readonly watched = new Map<string, Watched>(); // inode → state
  private readonly pending: { usec: number | null; e: InvalidLogEvent }[] = [];
  private lastIfaceRefresh = 0;
  private tokens: number;
  private suppressed = 0;
  private lines = 0;
  private missedReported = 0;
  private cycles = 0;
  private lastCycleAt = 0;
  private unwatched = 0;
  private entering: Promise<void> | null = null;
  private readonly entered = new Map<string, NetSnapshot | null>();

  constructor(
    private readonly o: WatchOptions,
    private readonly metrics: WatchMetrics,
    private readonly emit: (e: WatchEvent) => void,
  ) {
    this.tokens = o.maxEventsPerS;
  }

  /** Ready: the first cycle is done and cycles keep completing. */
  healthy(): boolean {
    return this.cycles > 0 && Date.now() - this.lastCycleAt < 3 * this.o.intervalMs + 30_000;
  }

  async run(): Promise<void> {
    const klog = KernelLog.open();
    await this.cycle(true);
    const lim = hostLimits({ otherNetns: this.o.scope.kind === 'all' || [...this.watched.values()].some((w) => w.ref.label !== 'host'), command: this.o.command });
    if (!klog && !lim.some((l) => l.what === 'not-root' || l.what === 'no-kmsg')) lim.push({ what: 'no-kmsg', says: 'cannot read /dev/kmsg: no invalid-packet lines (counters and leaks only)', fix: 'run with CAP_SYSLOG and /dev/kmsg mounted' });
    const off = [...this.watched.values()].filter((w) => w.invalidLog === false);
    if (off.length) {
      const flagOf = (r: NetnsRef) => (r.inode === this.dir.selfNet ? '' : r.path.startsWith('/run/netns/') || r.pid === null ? ` --netns ${r.label}` : r.pod ? ` --pod ${r.pod}` : ` --pid ${r.pid}`);
      const fix = off.length === 1 ? `ctprobe invalid-log on${flagOf(off[0]!.ref)}` : `ctprobe invalid-log on --netns NAME | --pid PID | --pod NAME, for each (e.g. ctprobe invalid-log on${flagOf(off[0]!.ref)})`;
      lim.push({ what: 'log-invalid-off', says: `nf_conntrack_log_invalid is off in ${off.length} namespace(s) (${off.slice(0, 3).map((w) => w.ref.pod ?? w.ref.label).join(', ')}${off.length > 3 ? ', …' : ''}): their INVALID packets are counted, not explained`, fix });
    }
    if ([...this.watched.values()].some((w) => w.stats === null))
      lim.push({ what: 'no-conntrack-stats', says: "conntrack's statistics cannot be read (is nf_conntrack loaded?)", fix: 'modprobe nf_conntrack' });
    this.emit({
      type: 'watch-start',
      scope: this.o.scope.kind === 'all' ? 'all-netns' : 'target',
      watching: [...this.watched.values()].map((w) => ({ netns: w.ref.label, pod: w.ref.pod, invalidLog: w.invalidLog })),
      unwatched: this.unwatched,
      intervalMs: this.o.intervalMs,
      listen: this.o.listen,
      limits: lim,
    });
    this.metrics.setUp(true);
    const follow = klog ? this.follow(klog) : Promise.resolve();
    // its own timer: synchronous /proc reads, never held up by a cycle's or a look's spawns
    const held = setInterval(() => this.leaksStillHeld(), LEAK_HELD_MS);
    try {
      while (!this.stopped()) {
        await sleep(Math.max(0, Math.min(this.o.intervalMs, this.o.untilMs - Date.now())), undefined, { signal: this.o.signal }).catch(() => undefined);
        if (this.stopped()) break;
        await this.cycle(false);
      }
    } finally {
      clearInterval(held);
      await follow;
      await Promise.all([this.looking, this.entering]);
      klog?.close();
      this.metrics.setUp(false);
      this.emit({ type: 'watch-stop', cycles: this.cycles, lines: this.lines, suppressed: this.suppressed, missed: klog?.missed ?? 0 });
    }
  }

  private stopped(): boolean {
    return this.o.signal.aborted || Date.now() >= this.o.untilMs;
  }

  // ---- the interval: namespaces, statistics, leaks

  private async cycle(first: boolean): Promise<void> {
    const t0 = performance.now();
    let refs: NetnsRef[];
    if (this.o.scope.kind === 'all') refs = await this.dir.all();
    else {
      const r = await this.dir.ofTarget(this.o.scope.target);
      refs = r ? [r] : [];
    }
    this.unwatched = Math.max(0, refs.length - this.o.maxNetns);
    refs = refs.slice(0, this.o.maxNetns);
    const seen = new Set(refs.map((r) => r.inode));
    const now = Date.now();
    for (const [inode, w] of this.watched) {
      if (seen.has(inode)) continue;
      if (w.goneAt === null) {
        w.goneAt = now;
        for (const l of w.leaks.values()) this.emit({ type: 'leak-gone', ...l.info, ageS: Math.round((now - l.since) / 100) / 10, why: 'netns-gone' });
        w.leaks.clear();
        this.metrics.leakState(w.ref.label, w.ref.pod, this.o.proxyPort, 0, 0);
        this.emit({ type: 'netns-gone', netns: w.ref.label, pod: w.ref.pod });
      } else if (now - w.goneAt > Math.max(3 * this.o.intervalMs, 120_000)) {
        // kept a while so that a last scrape sees the final values
        this.metrics.forget(w.ref.label, w.ref.pod, this.o.proxyPort);
        this.watched.delete(inode);
      }
    }
    // Namespaces with a process in them are read now (no spawn); those without are read by one
    // shell in the background, and used when it is back: a node full of them does not slow the others.
    const snapshots = new Map<string, NetSnapshot | null>();
    const enter: NetnsRef[] = [];
    for (const r of refs) {
      const w = this.watched.get(r.inode);
      const s = snapshotThroughPid(r, w?.proxy ?? { tcp: false, tcp6: false });
      if (s) snapshots.set(r.inode, s);
      else enter.push(r);
    }
    if (enter.length && !this.entering)
      this.entering = snapshotsByEntering(enter)
        .then((m) => {
          for (const [k, v] of m) this.entered.set(k, v);
        })
        .finally(() => (this.entering = null));
    if (first) await this.entering;
    for (const r of enter)
      if (this.entered.has(r.inode)) {
        snapshots.set(r.inode, this.entered.get(r.inode)!);
        this.entered.delete(r.inode);
      }
    for (const k of this.entered.keys()) if (!seen.has(k)) this.entered.delete(k);
    // New namespaces (and due interface refreshes) are read in the background, one spawn each:
    // a burst of new pods does not delay the statistics and leak scans of the others.
    for (const ref of refs) {
      const w = this.watched.get(ref.inode);
      const age = w ? Date.now() - w.ifacesAt : 0;
      // a young namespace is still being set up (interfaces, a proxy starting to listen): look again soon
      if (!w || w.goneAt !== null || age > IFACE_REFRESH_MS || (Date.now() - w.since < YOUNG_MS && age > YOUNG_LOOK_MS)) this.queueLook(ref);
    }
    if (first) await this.looking;
    await eachLimited(refs, 4, async (ref) => {
      const w = this.watched.get(ref.inode);
      if (!w || w.goneAt !== null || !snapshots.has(ref.inode)) return; // not looked at yet, or still being read
      w.ref = { ...ref, pod: w.ref.pod ?? ref.pod };
      const snap = snapshots.get(ref.inode)!;
      this.readStats(w, snap?.conntrackStat ?? null, first);
      await this.scanLeaks(w, snap?.tcp ?? null, snap?.tcp6 ?? null).catch((e: unknown) => this.emit({ type: 'watch-error', netns: ref.label, message: `leak scan: ${errorText(e)}` }));
    });
    this.metrics.namespaces(refs.length, this.unwatched);
    this.dir.prune();
    this.cycles++;
    this.lastCycleAt = Date.now();
    this.metrics.cycle((performance.now() - t0) / 1000);
    this.reportSuppressed();
  }

  private readonly lookQueue = new Map<string, NetnsRef>();
  private looking: Promise<void> | null = null;

  /** Read a namespace's interfaces and nf_conntrack_log_invalid (new, or due a refresh), in the background. */
  private queueLook(ref: NetnsRef): void {
    this.lookQueue.set(ref.inode, ref);
    this.looking ??= (async () => {
      while (this.lookQueue.size && !this.stopped()) {
        const batch = [...this.lookQueue.values()].slice(0, 16);
        for (const r of batch) this.lookQueue.delete(r.inode);
        await eachLimited(batch, 3, (r) => this.look(r));
      }
    })().finally(() => (this.looking = null));
  }

  private async look(ref: NetnsRef): Promise<void> {
    const { ifaces, invalidLog, proxy } = await lookAt(ref, this.o.proxyPort);
    const w = this.watched.get(ref.inode);
    if (w && w.goneAt === null) {
      if (ifaces) [w.ifaces, w.ifacesAt, w.proxy] = [ifaces, Date.now(), proxy];
      return;
    }
    if (!ifaces && invalidLog === null && !ref.self) return; // could not enter it: gone already (the next cycle says so)
    if (w) this.metrics.forget(w.ref.label, w.ref.pod, this.o.proxyPort);
    if (this.watched.size >= this.o.maxNetns + 64) return; // gone ones are kept a while; never beyond this
    this.watched.set(ref.inode, { ref, since: Date.now(), ifaces: ifaces ?? [], ifacesAt: Date.now(), stats: null, invalidLog, leaks: new Map(), nextFullScan: 0, leakSignature: '', proxy, goneAt: null });
    this.metrics.invalidLogEnabled(ref.label, ref.pod, invalidLog);
    if (this.cycles > 0) this.emit({ type: 'netns-appeared', netns: ref.label, pod: ref.pod, invalidLog });
  }

  private suppressedReported = 0;
  private reportSuppressed(): void {
    if (this.suppressed === this.suppressedReported) return;
    this.emit({ type: 'lines-suppressed', count: this.suppressed - this.suppressedReported, missed: this.missedReported });
    this.suppressedReported = this.suppressed;
  }

  private readStats(w: Watched, text: string | null, first: boolean): void {
    let cur: Record<string, number> | null = null;
    try {
      cur = text === null ? null : parseProcConntrackStat(text);
    } catch {
      cur = null;
    }
    if (!cur) return;
    const prev = w.stats;
    w.stats = cur;
    for (const name of CONNTRACK_COUNTERS) {
      const total = cur[name];
      if (total === undefined) continue;
      const before = prev?.[name];
      // first reading: the counter starts at the kernel's value; a lower value: the namespace was recreated
      const delta = before === undefined ? total : total >= before ? total - before : total;
      this.metrics.conntrackCounter(w.ref.label, w.ref.pod, name, delta);
      if (!first && prev && delta > 0) this.emit({ type: 'counter', netns: w.ref.label, pod: w.ref.pod, counter: name, delta, total });
    }
  }

  private async scanLeaks(w: Watched, t4: string | null, t6: string | null): Promise<void> {
    const port = this.o.proxyPort;
    const tables = [t4, t6].filter((t): t is string => t !== null);
    // a process must still hold it: an orphan (inode 0) is the kernel's to reap, not a leak
    const candidates = tables.flatMap((t) => parseProcTcp(t, (state, lport) => state === PROC_TCP_STATE.FIN_WAIT2 && lport === port)).filter((c) => c.inode !== 0);
    let found: Leak[] = [];
    if (candidates.length > 0) {
      // The full scan (ss + conntrack -L) runs at most ~5% of the time, except when the picture
      // changed: a new half-closed proxy socket, or the application's end of one changed state
      // (its FIN went out: the moment a leak is born).
      const appPorts = new Set(candidates.map((c) => c.remotePort));
      const apps = tables.flatMap((t) => parseProcTcp(t, (_s, lport) => appPorts.has(lport)));
      const signature = candidates
        .map((c) => `${c.remote}:${c.remotePort}=${apps.find((a) => a.local === c.remote && a.localPort === c.remotePort)?.state ?? 'gone'}`)
        .sort()
        .join(',');
      if (signature === w.leakSignature && Date.now() < w.nextFullScan) return; // keep the last answer
      w.leakSignature = signature;
      const t0 = performance.now();
      // From /proc when a process is in the namespace (owners from the fd tables, conntrack from
      // /proc/PID/net/nf_conntrack): no spawn; else ss and conntrack -L in it.
      let sockets: SsSocket[];
      let ctText = conntrackTableThroughPid(w.ref);
      if (w.ref.pid !== null) {
        const all = tables.flatMap((t) => parseProcTcp(t));
        const wanted = new Set(all.filter((x) => x.inode && (x.state === PROC_TCP_STATE.FIN_WAIT2 || x.state === PROC_TCP_STATE.CLOSE_WAIT)).map((x) => x.inode));
        sockets = procTcpAsSs(all, socketOwners(w.ref.pids, wanted));
      } else {
        const ss = await inNetns(w.ref, 'ss', ['-tanoepi']);
        if (ss.status !== 0) throw new CommandError('ss -tanoepi', ss.stderr, ss.status);
        sockets = await parseSs(ss.stdout, { lenient: true });
      }
      if (ctText === null) {
        const ct = await inNetns(w.ref, 'conntrack', ['-L', '-p', 'tcp']);
        ctText = ct.status === 0 ? ct.stdout : null;
      }
      const entries = ctText !== null ? await parseConntrack(ctText, { lenient: true }) : null;
      if (entries === null) return; // without conntrack's table a tracked pair cannot be ruled out: unknown, not a leak
      const r = findLeaks(sockets, entries, { proxyPort: port });
      found = [...r.leaks, ...r.halfLeaks];
      w.nextFullScan = Date.now() + 20 * (performance.now() - t0);
    } else w.leakSignature = '';
    const now = Date.now();
    const present = new Set<string>();
    for (const l of found) {
      const key = `${l.finWait2.ino ?? ''}|${l.app}`;
      present.add(key);
      if (w.leaks.has(key)) continue;
      const info: LeakInfo = { netns: w.ref.label, pod: w.ref.pod, proxyPort: port, app: l.app, proxy: l.proxy, upstream: l.upstream, process: l.process?.name ?? null, pid: l.process?.pid ?? null };
      w.leaks.set(key, { info, since: now, inode: l.finWait2.ino });
      this.emit({ type: 'leak-appeared', ...info });
    }
    for (const [key, l] of w.leaks)
      if (!present.has(key)) {
        w.leaks.delete(key);
        this.emit({ type: 'leak-gone', ...l.info, ageS: Math.round((now - l.since) / 100) / 10, why: 'closed' });
      }
    this.leakMetrics(w, now);
  }

  /**
   * Between cycles, every LEAK_HELD_MS: a leak is over the moment the proxy lets go of its FIN-WAIT-2
   * socket (gone, or orphaned: inode 0). One /proc read per namespace that has leaks, no spawn.
   */
  private leaksStillHeld(): void {
    const port = this.o.proxyPort;
    for (const w of this.watched.values()) {
      if (!w.leaks.size || w.goneAt !== null) continue;
      const snap = snapshotThroughPid(w.ref, w.proxy);
      if (!snap) continue;
      const held = new Set<number>();
      for (const t of [snap.tcp, snap.tcp6]) if (t) for (const c of parseProcTcp(t, (st, lport) => st === PROC_TCP_STATE.FIN_WAIT2 && lport === port)) if (c.inode) held.add(c.inode);
      const now = Date.now();
      for (const [key, l] of w.leaks)
        if (l.inode !== null && !held.has(l.inode)) {
          w.leaks.delete(key);
          this.emit({ type: 'leak-gone', ...l.info, ageS: Math.round((now - l.since) / 100) / 10, why: 'closed' });
        }
      this.leakMetrics(w, now);
    }
  }

  private leakMetrics(w: Watched, now: number): void {
    let oldest = now;
    for (const l of w.leaks.values()) oldest = Math.min(oldest, l.since);
    this.metrics.leakState(w.ref.label, w.ref.pod, this.o.proxyPort, w.leaks.size, (now - oldest) / 1000);
  }

  // ---- the kernel log, as it comes

  private async follow(klog: KernelLog): Promise<void> {
    let lastRefill = Date.now();
    while (!this.stopped()) {
      const now = Date.now();
      this.tokens = Math.min(this.o.maxEventsPerS, this.tokens + ((now - lastRefill) / 1000) * this.o.maxEventsPerS);
      lastRefill = now;
      for (const r of klog.drain(KMSG_BUDGET)) {
        const e = parseKernelLogLine(r.text);
        if (e) this.line(r.usec, e);
      }
      if (klog.missed > this.missedReported) {
        this.metrics.missed(klog.missed - this.missedReported);
        this.missedReported = klog.missed;
      }
      if (this.pending.length && (now - this.lastIfaceRefresh > 1000 || this.pending.length > PENDING_MAX / 2)) await this.retryPending();
      await sleep(KMSG_TICK_MS, undefined, { signal: this.o.signal }).catch(() => undefined);
    }
  }

  private views(): NetnsView[] {
    const out: NetnsView[] = [];
    for (const w of this.watched.values()) if (w.goneAt === null || Date.now() - w.goneAt < 10_000) out.push({ netns: w.ref.label, pod: w.ref.pod, ifaces: w.ifaces });
    return out;
  }

  private line(usec: number | null, e: InvalidLogEvent, retried = false): void {
    const views = this.views();
    const confirm = this.o.scope.kind === 'target';
    let a = attributeLine(e, views, confirm);
    if (a.by === 'ambiguous') a = this.bySocket(e, a) ?? a;
    if (a.netns === null && !retried && a.by === 'none' && this.pending.length < PENDING_MAX) {
      // perhaps a namespace (or interface) that appeared since the last look: ask again soon
      this.pending.push({ usec, e });
      return;
    }
    if (a.netns === null && confirm) return; // not the watched namespace's line
    this.lines++;
    const reason = reasonLabel(e.reason);
    this.metrics.invalidLine(a.netns, a.pod, e.source, reason);
    if (this.tokens < 1) {
      this.suppressed++;
      this.metrics.suppressed(1);
      return;
    }
    this.tokens--;
    const { time: _time, ...rest } = e;
    this.emit({ type: 'invalid', netns: a.netns, pod: a.pod, attributedBy: a.by, peerNetns: a.peerNetns, reasonLabel: reason, usec, ...rest });
  }

  /** Several namespaces could have logged it: the one with a socket on SRC:SPT or DST:DPT. */
  private bySocket(e: InvalidLogEvent, a: ReturnType<typeof attributeLine>): ReturnType<typeof attributeLine> | null {
    const want = new Set([`${e.src}|${e.sport}`, `${e.dst}|${e.dport}`]);
    const hits = a.candidates.filter((v) => {
      const w = [...this.watched.values()].find((x) => x.ref.label === v.netns);
      if (!w || w.ref.pid === null) return false;
      for (const f of ['tcp', 'tcp6'])
        try {
          const text = readFileSyncSafe(`/proc/${w.ref.pid}/net/${f}`);
          if (text && parseProcTcp(text).some((s) => want.has(`${s.local}|${s.localPort}`))) return true;
        } catch {
          /* gone */
        }
      return false;
    });
    return hits.length === 1 ? { netns: hits[0]!.netns, pod: hits[0]!.pod, by: 'socket', candidates: hits, peerNetns: null } : null;
  }

  private async retryPending(): Promise<void> {
    this.lastIfaceRefresh = Date.now();
    // a namespace or interface that appeared since the last look: look again at the new and young ones
    const now = Date.now();
    const young = (inode: string) => {
      const w = this.watched.get(inode);
      return !w || w.goneAt !== null || now - w.since < YOUNG_MS || this.o.scope.kind === 'target';
    };
    const refs = this.o.scope.kind === 'all' ? await this.dir.all() : [...this.watched.values()].filter((w) => w.goneAt === null).map((w) => w.ref);
    await eachLimited(refs.filter((r) => young(r.inode)).slice(0, this.o.maxNetns), 4, (r) => this.look(r));
    const batch = this.pending.splice(0);
    for (const p of batch) this.line(p.usec, p.e, true);
  }
}

function readFileSyncSafe(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** Run `f` over `items`, at most `n` at a time (a node with hundreds of pods must not fork hundreds of tools at once). */
async function eachLimited<T>(items: T[], n: number, f: (x: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) await f(items[next++]!);
    }),
  );
}
