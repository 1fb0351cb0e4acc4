/**
 * OutOfWindowProbe — the reproducer server.
 *
 * A normal TCP listener accepts connections on its port; a raw socket watches every segment
 * sent to that port. When a connection both (a) completed its handshake on the wire and (b) was
 * accepted by our listener, we forge `count` PSH|ACK segments far outside the client's window
 * (seq = server next + offset + i·payload) into it — never into anything else.
 *
 * Classification per connection: `reset` when the peer sends RST after the handshake, at any
 * time until `linger` after our own close completed (on 6.1+ kernels the NAT host's RST arrives
 * only after the client's FIN — a verdict that stops at the peer's FIN misses it); `clean` when
 * the close completed and no RST came; `open` otherwise.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { SystemError, UsageError } from '../errors.js';
import type { ConnPhase, ProbeSummary, ServerEvent, Verdict } from '../events.js';
import { isPacketError, IPPROTO_TCP } from '../packet/ip.js';
import { decodeTcp, encodeTcp, TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN } from '../packet/tcp.js';
import { ipv6ToString, parseIP } from '../packet/address.js';
import { seqAdd } from '../packet/seq.js';
import { RawTcpSocket } from '../rawsock/index.js';
import { DEFAULT_SERVER_OPTIONS } from './defaults.js';

export type { ServerEvent as ProbeEvent, Verdict, ProbeSummary } from '../events.js';

export interface ProbeServerOptions {
  port: number;
  /** Listen address; its family chooses IPv4 or IPv6. Default 0.0.0.0. */
  bind: string;
  /** Added to the server's next sequence number (mod 2^32); may be negative. */
  offset: number;
  /** Forged segments per connection. */
  count: number;
  /** Payload bytes per forged segment. */
  payload: number;
  /** How long accepted connections are held open before the server closes them. */
  holdMs: number;
  /** How long after our close completed an RST still counts. */
  lingerMs: number;
  /** Connection table cap; the oldest finished (then oldest) entries are evicted past it. */
  maxConnections: number;
}

export { DEFAULT_SERVER_OPTIONS };


interface Conn {
  /** The table key: compact for IPv4 (see v4Id), the text key for IPv6. */
  id: string;
  /** The text key events name (connKey); built when the connection first has something to say. */
  key: string;
  phase: ConnPhase;
  /** From the handshake ACK: the server's next seq (its ack field) and the client's (its seq). */
  serverNext: number | null;
  clientNext: number;
  window: number;
  accepted: boolean;
  injected: boolean;
  verdict: Verdict | null;
  startedAt: number;
  finalizeTimer: NodeJS.Timeout | null;
  /** Addresses as bytes (4 or 16), made when needed (injection, IPv6 lookups): a flood of SYNs copies none. */
  local: Uint8Array | null;
  remote: Uint8Array | null;
  /** IPv4 addresses as u32 (0 for IPv6). */
  localV4: number;
  remoteV4: number;
  localPort: number;
  remotePort: number;
  /** Removed from the table (evicted, or its port reused): the eviction queues skip it. */
  gone: boolean;
}

/**
 * A first-in first-out queue: an array and a head index, compacted as the head advances. A Map's
 * first entry is not O(1) to reach once many entries were deleted from its front (V8 leaves holes
 * until it rehashes: a full 65,536-entry table under a flood fell to ~20k SYN/s); this is.
 */
class Fifo<T> {
  private items: T[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(x: T): void {
    this.items.push(x);
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const x = this.items[this.head]!;
    this.items[this.head++] = undefined as T;
    if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return x;
  }

  /** Keep only the items `keep` accepts (drops queue entries of connections already gone). */
  retain(keep: (x: T) => boolean): void {
    this.items = this.items.slice(this.head).filter(keep);
    this.head = 0;
  }
}

/**
 * Table key of an IPv4 connection: local address, remote address and port as five UTF-16 units
 * (the local port is the one we watch). Cheap to build and hash for every segment of a flood.
 */
function v4Id(local: number, remote: number, remotePort: number): string {
  return String.fromCharCode(local >>> 16, local & 0xffff, remote >>> 16, remote & 0xffff, remotePort);
}

const u32At = (b: Uint8Array, o: number): number => ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
const v4Bytes = (a: number): Uint8Array => Uint8Array.of(a >>> 24, (a >>> 16) & 255, (a >>> 8) & 255, a & 255);
const v4Text = (a: number): string => `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;

/** Connection key: local addr:port-remote addr:port (IPv6 in brackets). */
export function connKey(localAddr: string, localPort: number, remoteAddr: string, remotePort: number): string {
  const a = (s: string) => (s.includes(':') ? `[${s}]` : s);
  return `${a(localAddr)}:${localPort}-${a(remoteAddr)}:${remotePort}`;
}

function normalizeAddr(a: string): string {
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

/**
 * The last ACK seen of connections the table does not hold: a half-open entry a SYN flood evicted
 * before its handshake ACK came. The ACK alone says what the forged segment needs (our next seq,
 * the client's next seq, its window) — as a SYN cookie lets a kernel do without the SYN's state —
 * so the connection the listener accepts is still tested, not judged clean untested. Bounded: a
 * ring of the last LATE_ACKS, each overwriting the oldest.
 */
const LATE_ACKS = 1024;
class LateAcks {
  private readonly byId = new Map<string, { seq: number; ack: number; window: number }>();
  private readonly ring: Array<string | undefined> = new Array<string | undefined>(LATE_ACKS).fill(undefined);
  private next = 0;

  note(id: string, seq: number, ack: number, window: number): void {
    const known = this.byId.get(id);
    if (known) {
      known.seq = seq;
      known.ack = ack;
      known.window = window;
      return;
    }
    const old = this.ring[this.next];
    if (old !== undefined) this.byId.delete(old);
    this.ring[this.next] = id;
    this.next = (this.next + 1) % LATE_ACKS;
    this.byId.set(id, { seq, ack, window });
  }

  take(id: string): { seq: number; ack: number; window: number } | undefined {
    const a = this.byId.get(id);
    if (a) this.byId.delete(id); // its ring slot is reused in turn (deleting a missing key is a no-op)
    return a;
  }
}

export class OutOfWindowProbe extends EventEmitter {
  readonly opts: ProbeServerOptions;
  private server: net.Server | null = null;
  private raw: RawTcpSocket | null = null;
  private readonly conns = new Map<string, Conn>();
  // Eviction tiers, oldest first: finished, then half-open, then any. A connection enters each
  // queue at most once and leaves it when it reaches the head, so eviction is O(1) amortized even
  // when a SYN flood keeps the table full; entries that left their tier are skipped there.
  private readonly finishedQ = new Fifo<Conn>();
  private readonly halfOpenQ = new Fifo<Conn>();
  private readonly allQ = new Fifo<Conn>();
  private readonly sockets = new Set<net.Socket>();
  private readonly lateAcks = new LateAcks();
  /**
   * Connections the listener accepted and has not closed, by id: what accepted them outlives a
   * table entry a flood evicts, so an entry made again (from a SYN the raw socket read after the
   * accept) knows it and the connection is still tested.
   */
  private readonly acceptedIds = new Set<string>();
  private readonly summary: ProbeSummary = { connections: 0, injected: 0, reset: 0, clean: 0, open: 0, evicted: 0, segments: 0 };
  private readonly family: 4 | 6;
  private readonly payloadBytes: Uint8Array;

  constructor(opts: Partial<ProbeServerOptions> = {}) {
    super();
    this.opts = { ...DEFAULT_SERVER_OPTIONS, ...opts };
    this.family = net.isIPv6(this.opts.bind) ? 6 : 4;
    const text = 'ctprobe!';
    this.payloadBytes = Uint8Array.from({ length: this.opts.payload }, (_, i) => text.charCodeAt(i % text.length));
  }

  private emitEvent(e: ServerEvent): void {
    this.emit('event', e);
  }

  /** Open the raw socket, then listen. Resolves once listening. */
  async start(): Promise<void> {
    if (!net.isIP(this.opts.bind)) throw new UsageError(`--bind: '${this.opts.bind}' is not an IP address (e.g. 0.0.0.0, 198.51.100.2 or ::)`);
    // Built to keep up with a SYN flood: headers are all the classifier reads (IPv4 ≤ 60 + TCP ≤ 60
    // bytes), trimmed in the kernel, so one recvmmsg call reads up to 256 segments; under load,
    // wake-ups are coalesced (1 ms) so each read finds a batch; 16 MB of buffer (~40k queued SYNs,
    // ~0.15 s of a 250k/s flood) rides out the moments a busy machine does not schedule us.
    this.raw = RawTcpSocket.open({ family: this.family, port: this.opts.port, snaplen: 128, coalesceMs: 1, rcvbuf: 16 * 1024 * 1024 });
    this.raw.onPacket((p) => this.onSegment(p.data, p.from));
    const server = net.createServer({ allowHalfOpen: false }, (s) => this.onAccept(s));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) => {
        const why = e.code === 'EADDRINUSE' ? 'address in use' : e.code === 'EADDRNOTAVAIL' ? 'address not on this host' : e.message;
        // Nothing may keep the process alive after a failed start: the raw socket's poller would.
        this.raw?.close();
        this.raw = null;
        this.server = null;
        reject(new SystemError(`cannot listen on ${this.opts.bind}:${this.opts.port}: ${why}`));
      });
      server.listen({ port: this.opts.port, host: this.opts.bind, exclusive: true }, () => resolve());
    });
    const { port, bind, offset, count } = this.opts;
    this.emitEvent({ type: 'listening', ts: Date.now(), port, bind, offset, count });
  }

  private onAccept(s: net.Socket): void {
    this.sockets.add(s);
    const localText = normalizeAddr(s.localAddress ?? '0.0.0.0');
    const remoteText = normalizeAddr(s.remoteAddress ?? '0.0.0.0');
    const key = connKey(localText, s.localPort ?? 0, remoteText, s.remotePort ?? 0);
    const local = parseIP(localText);
    const remote = parseIP(remoteText);
    const v4 = this.family === 4 && local.length === 4 && remote.length === 4;
    const id = v4 ? v4Id(u32At(local, 0), u32At(remote, 0), s.remotePort ?? 0) : key;
    let c = this.conns.get(id);
    if (!c) {
      // The listener can win the race against the raw socket; the handshake ACK fills in the rest.
      c = this.newConn(id, v4 ? u32At(local, 0) : 0, v4 ? u32At(remote, 0) : 0, s.localPort ?? 0, s.remotePort ?? 0, v4 ? null : local, v4 ? null : remote);
    }
    c.key = key;
    c.accepted = true;
    this.acceptedIds.add(id);
    // its handshake ACK came while the table did not hold it (evicted during a flood): take it up
    if (c.serverNext === null) {
      const a = this.lateAcks.take(id);
      if (a) this.established(c, a.seq, a.ack, a.window);
    }
    this.maybeInject(c);
    s.on('data', () => {
      /* discard */
    });
    s.on('error', () => {
      /* the raw socket is the witness; errors such as ECONNRESET are expected */
    });
    const hold = setTimeout(() => s.end(), this.opts.holdMs);
    s.on('close', () => {
      clearTimeout(hold);
      this.sockets.delete(s);
      this.acceptedIds.delete(id);
      const conn = this.conns.get(id);
      if (!conn || conn.verdict) return;
      conn.phase = 'closed';
      conn.finalizeTimer = setTimeout(() => this.lingerOver(conn), this.opts.lingerMs);
    });
  }

  private newConn(id: string, localV4: number, remoteV4: number, localPort: number, remotePort: number, local: Uint8Array | null, remote: Uint8Array | null): Conn {
    if (this.conns.size >= this.opts.maxConnections) this.evictOne();
    const c: Conn = {
      id,
      key: '',
      phase: 'handshake',
      serverNext: null,
      clientNext: 0,
      window: 0,
      accepted: false,
      injected: false,
      verdict: null,
      startedAt: Date.now(),
      finalizeTimer: null,
      local: local && Uint8Array.from(local),
      remote: remote && Uint8Array.from(remote),
      localV4,
      remoteV4,
      localPort,
      remotePort,
      gone: false,
    };
    this.conns.set(id, c);
    this.halfOpenQ.push(c);
    this.allQ.push(c);
    // Forgotten connections (port reuse) wait in the queues until they reach the head: bound them.
    if (this.allQ.length > 2 * this.conns.size + 1024) for (const q of [this.allQ, this.halfOpenQ, this.finishedQ]) q.retain((x) => !x.gone);
    return c;
  }

  /** Evict the oldest finished entry, else the oldest half-open one, else the oldest: O(1) amortized. */
  private evictOne(): void {
    const victim =
      this.oldest(this.finishedQ, () => true) ??
      this.oldest(this.halfOpenQ, (c) => c.serverNext === null && c.verdict === null) ??
      this.oldest(this.allQ, () => true);
    if (!victim) return;
    this.forget(victim);
    this.summary.evicted++;
  }

  /** The queue's oldest connection still in the table and still in the queue's tier. */
  private oldest(q: Fifo<Conn>, inTier: (c: Conn) => boolean): Conn | undefined {
    for (let c = q.shift(); c; c = q.shift()) if (!c.gone && inTier(c)) return c;
    return undefined;
  }

  private forget(c: Conn): void {
    if (c.finalizeTimer) clearTimeout(c.finalizeTimer);
    c.gone = true;
    this.conns.delete(c.id);
  }

  private onSegment(data: Uint8Array, from: Uint8Array | null): void {
    this.summary.segments++;
    if (this.family === 4) return this.onSegment4(data);
    if (!from) return;
    const tcp = decodeTcp(data, 0, data.length);
    if (isPacketError(tcp) || tcp.dstPort !== this.opts.port) return;
    // IPv6 raw sockets do not tell the destination; the listener does
    const remoteText = ipv6ToString(from);
    const localText = this.localAddressFor(remoteText, tcp.srcPort);
    if (localText === null) return;
    const key = connKey(localText, tcp.dstPort, remoteText, tcp.srcPort);
    this.classify(key, key, 0, 0, tcp.srcPort, tcp.flags, tcp.seq, tcp.ack, tcp.window, parseIP(localText), from);
  }

  /**
   * IPv4, read straight from the bytes (the checks of decodeIp/decodeTcp, no header objects): the
   * path a SYN flood takes, so it allocates nothing but the entry a new SYN needs.
   */
  private onSegment4(d: Uint8Array): void {
    const n = d.length;
    if (n < 20 || d[0]! >> 4 !== 4) return;
    const ihl = (d[0]! & 0x0f) * 4;
    const total = (d[2]! << 8) | d[3]!;
    if (ihl < 20 || n < ihl || total < ihl || d[9] !== IPPROTO_TCP || (((d[6]! << 8) | d[7]!) & 0x1fff) !== 0) return;
    const t = ihl;
    const end = Math.min(total, n);
    if (end - t < 20) return;
    const doff = (d[t + 12]! >> 4) * 4;
    if (doff < 20 || doff > end - t) return;
    if (((d[t + 2]! << 8) | d[t + 3]!) !== this.opts.port) return;
    const srcPort = (d[t]! << 8) | d[t + 1]!;
    const src = u32At(d, 12);
    const dst = u32At(d, 16);
    this.classify(v4Id(dst, src, srcPort), null, dst, src, srcPort, d[t + 13]!, u32At(d, t + 4), u32At(d, t + 8), (d[t + 14]! << 8) | d[t + 15]!, null, null);
  }

  /** The text key of a connection, built on first use (events name it). */
  private keyOf(c: Conn): string {
    if (!c.key) c.key = connKey(this.family === 4 ? v4Text(c.localV4) : ipv6ToString(c.local!), c.localPort, this.family === 4 ? v4Text(c.remoteV4) : ipv6ToString(c.remote!), c.remotePort);
    return c.key;
  }

  private classify(id: string, key: string | null, localV4: number, remoteV4: number, srcPort: number, f: number, seq: number, ack: number, window: number, local: Uint8Array | null, remote: Uint8Array | null): void {
    const c = this.conns.get(id);
    if (f & TCP_SYN) {
      if (f & TCP_ACK) return;
      if (c && !c.verdict) return; // retransmitted SYN
      if (c) this.forget(c); // port reuse after a finished connection
      const nc = this.newConn(id, localV4, remoteV4, this.opts.port, srcPort, local, remote);
      if (key) nc.key = key;
      nc.accepted = this.acceptedIds.has(id);
      return;
    }
    if (!c) {
      if (f & TCP_ACK && !(f & TCP_RST)) this.lateAcks.note(id, seq, ack, window);
      return;
    }
    if (c.verdict) return;
    if (f & TCP_RST) {
      if (c.phase === 'handshake' && c.serverNext === null) return;
      this.emitEvent({ type: 'reset', ts: Date.now(), conn: this.keyOf(c), seq, phase: c.phase });
      this.finalize(c, 'reset');
      return;
    }
    if (c.serverNext === null && f & TCP_ACK) {
      this.established(c, seq, ack, window);
      this.maybeInject(c);
    }
    if (f & TCP_FIN && c.phase === 'established') {
      c.phase = 'peer-fin';
      this.emitEvent({ type: 'fin', ts: Date.now(), conn: this.keyOf(c) });
    }
  }

  /** The handshake ACK: ack = our next seq, seq = the client's next seq. */
  private established(c: Conn, seq: number, ack: number, window: number): void {
    c.serverNext = ack;
    c.clientNext = seq;
    c.window = window;
    c.phase = 'established';
    this.summary.connections++;
    this.emitEvent({ type: 'established', ts: Date.now(), conn: this.keyOf(c) });
  }

  /** IPv6: the listener's socket knows our local address for a remote endpoint. */
  private localAddressFor(remote: string, remotePort: number): string | null {
    for (const s of this.sockets) if (normalizeAddr(s.remoteAddress ?? '') === remote && s.remotePort === remotePort) return normalizeAddr(s.localAddress ?? '');
    for (const c of this.conns.values()) if (c.remotePort === remotePort && c.remote && ipv6ToString(c.remote) === remote) return ipv6ToString(c.local!);
    return this.opts.bind === '::' ? null : this.opts.bind;
  }

  private maybeInject(c: Conn): void {
    if (c.injected || !c.accepted || c.serverNext === null || c.verdict || !this.raw) return;
    c.injected = true;
    const n = this.opts.count;
    const len = this.payloadBytes.length;
    const first = seqAdd(c.serverNext, this.opts.offset);
    c.local ??= v4Bytes(c.localV4);
    c.remote ??= v4Bytes(c.remoteV4);
    for (let i = 0; i < n; i++) {
      const seg = encodeTcp(
        {
          srcPort: c.localPort,
          dstPort: c.remotePort,
          seq: seqAdd(first, i * len),
          ack: c.clientNext,
          flags: TCP_PSH | TCP_ACK,
          window: c.window || 502,
          payload: this.payloadBytes,
        },
        c.local,
        c.remote,
      );
      this.raw.send(seg, c.remote);
    }
    this.summary.injected++;
    this.emitEvent({ type: 'injected', ts: Date.now(), conn: this.keyOf(c), seq: first, ack: c.clientNext, count: n, offset: this.opts.offset, bytes: len });
  }

  /**
   * No RST within the linger: the connection is clean — but first read what the raw socket already
   * holds. An RST that arrived in time, while this process was not running, would otherwise wait
   * behind this timer (libuv runs due timers before it polls) and a reset would be judged clean.
   */
  private lingerOver(c: Conn): void {
    c.finalizeTimer = null;
    this.raw?.readPending();
    if (!c.gone) this.finalize(c, 'clean');
  }

  private finalize(c: Conn, verdict: Verdict): void {
    if (c.verdict) return;
    if (c.finalizeTimer) clearTimeout(c.finalizeTimer);
    c.finalizeTimer = null;
    c.verdict = verdict;
    c.phase = 'closed';
    this.finishedQ.push(c);
    if (verdict === 'reset') this.summary.reset++;
    else if (verdict === 'clean') this.summary.clean++;
    this.emitEvent({ type: 'closed', ts: Date.now(), conn: this.keyOf(c), verdict, ms: Date.now() - c.startedAt });
    this.emit('verdict', this.keyOf(c), verdict);
  }

  /** Connections with a final verdict so far. */
  get finished(): number {
    return this.summary.reset + this.summary.clean;
  }

  /** Stop listening, close everything, emit and return the summary. */
  stop(): ProbeSummary {
    for (const c of this.conns.values()) if (c.finalizeTimer) clearTimeout(c.finalizeTimer);
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    this.server?.close();
    this.server = null;
    this.raw?.close();
    this.raw = null;
    let open = 0;
    for (const c of this.conns.values()) if (!c.verdict && c.serverNext !== null) open++;
    this.summary.open = open;
    const out = { ...this.summary };
    this.emitEvent({ type: 'server-summary', ts: Date.now(), ...out });
    return out;
  }
}
