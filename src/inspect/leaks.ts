/**
 * The half-closed leak of a sidecar TCP proxy (Istio 43297): the proxy holds a FIN-WAIT-2 socket
 * on its port towards the application (the app's FIN never arrived: conntrack's CLOSE_WAIT entry
 * had expired, so the FIN was INVALID and not redirected) and its CLOSE-WAIT partner towards the
 * upstream, and conntrack has no entry left for the application's connection.
 *
 * Pairing: ss does not say which upstream socket belongs to which downstream one. A proxy such as
 * Envoy creates the upstream socket right after accepting the downstream one, so of the same
 * process's CLOSE-WAIT sockets the one with the nearest inode number is taken (each used once).
 */
import { InternalError } from '../errors.js';
import type { CtEntry } from './conntrack.js';
import type { SsProcess, SsSocket } from './ss.js';

export interface Leak {
  app: string;
  appPort: number;
  proxy: string;
  process: SsProcess | null;
  finWait2: SsSocket;
  closeWait: SsSocket | null;
  upstream: string | null;
  /** The proxy keeps both until its idle timeout: at most this long from the last data. */
  maxRemainingS: number;
  /** The app's port is free again (no socket of the app uses it) and in the ephemeral range. */
  portReuseRisk: boolean;
}

export interface LeakOptions {
  proxyPort: number;
  idleTimeoutS: number;
  ephemeral: [number, number];
}

export const DEFAULT_LEAK_OPTIONS: LeakOptions = { proxyPort: 15001, idleTimeoutS: 3600, ephemeral: [32768, 60999] };

const ep = (a: string, p: number | null) => `${a.includes(':') ? `[${a}]` : a}:${p ?? '*'}`;

/**
 * An endpoint as a set/map key: IPv4 address and port as one number (cheap to hash and to keep
 * by the million), anything else as text.
 */
export function endpointKey(addr: string, port: number): number | string {
  let v = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < addr.length; i++) {
    const c = addr.charCodeAt(i);
    if (c === 46) {
      if (!digits || ++dots > 3) return `${addr}|${port}`;
      v = v * 256 + part;
      part = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57 && digits < 3) {
      // a leading zero would give one address two spellings: those stay text (compared as text)
      if (digits === 1 && part === 0) return `${addr}|${port}`;
      part = part * 10 + c - 48;
      digits++;
      if (part > 255) return `${addr}|${port}`;
    } else return `${addr}|${port}`;
  }
  if (dots !== 3 || !digits || port > 65535) return `${addr}|${port}`;
  return (v * 256 + part) * 65536 + port;
}

export function findLeaks(sockets: SsSocket[], conntrack: CtEntry[] | null, opts: Partial<LeakOptions> = {}): { leaks: Leak[]; halfLeaks: Leak[] } {
  const d = new LeakDetector(opts, conntrack !== null);
  for (const e of conntrack ?? []) d.addConntrack(e);
  for (const s of sockets) d.addSocket(s);
  return d.result();
}

/**
 * The detector fed one socket and one conntrack entry at a time (a million-line file is parsed
 * and judged as it streams): it keeps only what the verdict needs — the tracked app endpoints,
 * counts of local endpoints in use, and the proxy's FIN-WAIT-2 and CLOSE-WAIT sockets.
 */
export class LeakDetector {
  private readonly o: LeakOptions;
  /** App endpoints (src|sport) with a live conntrack entry: their FIN will still be tracked and redirected. */
  private readonly tracked = new Set<number | string>();
  /** Local endpoints in use, to tell whether the app's port is free again. */
  private readonly used = new Set<number | string>();
  /** The proxy's CLOSE-WAIT sockets per pid, for the nearest-inode pairing. */
  private readonly closeWaitByPid = new Map<number, SsSocket[]>();
  private readonly finWait2: SsSocket[] = [];
  sockets = 0;
  conntrackEntries = 0;

  /** `withConntrack`: entries will be fed (offline without them, tracked pairs cannot be ruled out). */
  constructor(opts: Partial<LeakOptions> = {}, readonly withConntrack = true) {
    this.o = { ...DEFAULT_LEAK_OPTIONS, ...opts };
  }

  /** Set by socketsDone(): the app endpoints of the candidates, the only ones conntrack can clear. */
  private wanted: Set<number | string> | null = null;

  addConntrack(e: CtEntry): void {
    this.addConntrackOrigin(e.protocol, e.original.src, e.original.sport);
  }

  /** An entry by its protocol and original source endpoint: all the detector needs of it. */
  addConntrackOrigin(protocol: string, src: string, sport: number | null): void {
    this.conntrackEntries++;
    if (protocol !== 'tcp' || sport === null) return;
    const k = endpointKey(src, sport);
    if (!this.wanted || this.wanted.has(k)) this.tracked.add(k);
  }

  /**
   * Every socket was added: from now on conntrack entries are only checked against the
   * candidates (a million entries need not be kept to clear a handful of sockets).
   */
  socketsDone(): void {
    this.wanted = new Set(this.finWait2.map((s) => endpointKey(s.peer, s.peerPort!)));
  }

  /** Whether a socket in this state can matter beyond its local endpoint (else addEndpoint will do). */
  static needsWhole(state: string): boolean {
    return state === 'CLOSE-WAIT' || state === 'FIN-WAIT-2';
  }

  /** A socket of which only the local endpoint matters (any state but CLOSE-WAIT and FIN-WAIT-2). */
  addEndpoint(local: string, localPort: number | null): void {
    if (this.wanted) throw new InternalError('LeakDetector: a socket after socketsDone()');
    this.sockets++;
    if (localPort !== null) this.used.add(endpointKey(local, localPort));
  }

  addSocket(s: SsSocket): void {
    this.addEndpoint(s.local, s.localPort);
    if (s.state === 'CLOSE-WAIT' && s.peerPort !== this.o.proxyPort)
      for (const u of s.users) {
        const list = this.closeWaitByPid.get(u.pid);
        if (list) list.push(s);
        else this.closeWaitByPid.set(u.pid, [s]);
      }
    if (s.state === 'FIN-WAIT-2' && s.localPort === this.o.proxyPort && s.users.length > 0 && s.peerPort !== null) this.finWait2.push(s);
  }

  result(): { leaks: Leak[]; halfLeaks: Leak[] } {
    const o = this.o;
    const candidates = this.finWait2.filter((s) => !this.tracked.has(endpointKey(s.peer, s.peerPort!)));
    const takenCw = new Set<SsSocket>();
    const leaks: Leak[] = [];
    const halfLeaks: Leak[] = [];
    for (const fw of candidates) {
      const pid = fw.users[0]!.pid;
      let best: SsSocket | null = null;
      for (const s of this.closeWaitByPid.get(pid) ?? []) {
        if (takenCw.has(s)) continue;
        if (!best || Math.abs((s.ino ?? 0) - (fw.ino ?? 0)) < Math.abs((best.ino ?? 0) - (fw.ino ?? 0))) best = s;
      }
      if (best) takenCw.add(best);
      const appPort = fw.peerPort!;
      const appStillUses = this.used.has(endpointKey(fw.peer, appPort));
      const leak: Leak = {
        app: ep(fw.peer, appPort),
        appPort,
        proxy: ep(fw.local, fw.localPort),
        process: fw.users[0] ?? null,
        finWait2: fw,
        closeWait: best,
        upstream: best ? ep(best.peer, best.peerPort) : null,
        maxRemainingS: o.idleTimeoutS,
        portReuseRisk: !appStillUses && appPort >= o.ephemeral[0] && appPort <= o.ephemeral[1],
      };
      (best ? leaks : halfLeaks).push(leak);
    }
    return { leaks, halfLeaks };
  }
}
