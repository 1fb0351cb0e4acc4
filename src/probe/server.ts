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
import { decodeIp, isPacketError, IPPROTO_TCP } from '../packet/ip.js';
import { decodeTcp, encodeTcp, TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN } from '../packet/tcp.js';
import { ipv4ToString, ipv6ToString, parseIP } from '../packet/address.js';
import { seqAdd } from '../packet/seq.js';
import { RawTcpSocket } from '../rawsock/index.js';

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

export const DEFAULT_SERVER_OPTIONS: ProbeServerOptions = {
  port: 9000,
  bind: '0.0.0.0',
  offset: 100000,
  count: 1,
  payload: 9,
  holdMs: 10_000,
  lingerMs: 1000,
  maxConnections: 65536,
};


interface Conn {
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
  local: Uint8Array;
  remote: Uint8Array;
  localPort: number;
  remotePort: number;
}

/** Connection key: local addr:port-remote addr:port (IPv6 in brackets). */
export function connKey(localAddr: string, localPort: number, remoteAddr: string, remotePort: number): string {
  const a = (s: string) => (s.includes(':') ? `[${s}]` : s);
  return `${a(localAddr)}:${localPort}-${a(remoteAddr)}:${remotePort}`;
}

function normalizeAddr(a: string): string {
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

export class OutOfWindowProbe extends EventEmitter {
  readonly opts: ProbeServerOptions;
  private server: net.Server | null = null;
  private raw: RawTcpSocket | null = null;
  private readonly conns = new Map<string, Conn>();
  // Eviction tiers, each in insertion order so the oldest is the first key: O(1) per eviction
  // even when a SYN flood keeps the table full (finished first, then half-open, then the rest).
  private readonly finishedConns = new Map<string, Conn>();
  private readonly halfOpen = new Map<string, Conn>();
  private readonly sockets = new Set<net.Socket>();
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
    this.raw = RawTcpSocket.open({ family: this.family, port: this.opts.port });
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
    const key = connKey(normalizeAddr(s.localAddress ?? ''), s.localPort ?? 0, normalizeAddr(s.remoteAddress ?? ''), s.remotePort ?? 0);
    let c = this.conns.get(key);
    if (!c) {
      // The listener can win the race against the raw socket; the handshake ACK fills in the rest.
      c = this.newConn(key, parseIP(normalizeAddr(s.localAddress ?? '0.0.0.0')), parseIP(normalizeAddr(s.remoteAddress ?? '0.0.0.0')), s.localPort ?? 0, s.remotePort ?? 0);
    }
    c.accepted = true;
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
      const conn = this.conns.get(key);
      if (!conn || conn.verdict) return;
      conn.phase = 'closed';
      conn.finalizeTimer = setTimeout(() => this.finalize(conn, 'clean'), this.opts.lingerMs);
    });
  }

  private newConn(key: string, local: Uint8Array, remote: Uint8Array, localPort: number, remotePort: number): Conn {
    if (this.conns.size >= this.opts.maxConnections) this.evictOne();
    const c: Conn = {
      key,
      phase: 'handshake',
      serverNext: null,
      clientNext: 0,
      window: 0,
      accepted: false,
      injected: false,
      verdict: null,
      startedAt: Date.now(),
      finalizeTimer: null,
      local: Uint8Array.from(local),
      remote: Uint8Array.from(remote),
      localPort,
      remotePort,
    };
    this.conns.set(key, c);
    this.halfOpen.set(key, c);
    return c;
  }

  /** Evict the oldest finished entry, else the oldest half-open one, else the oldest: O(1). */
  private evictOne(): void {
    const first = (m: Map<string, Conn>) => m.values().next().value as Conn | undefined;
    const victim = first(this.finishedConns) ?? first(this.halfOpen) ?? first(this.conns);
    if (!victim) return;
    this.forget(victim);
    this.summary.evicted++;
  }

  private forget(c: Conn): void {
    if (c.finalizeTimer) clearTimeout(c.finalizeTimer);
    this.conns.delete(c.key);
    this.finishedConns.delete(c.key);
    this.halfOpen.delete(c.key);
  }

  private onSegment(data: Uint8Array, from: Uint8Array | null): void {
    this.summary.segments++;
    let tcpOff = 0;
    let tcpEnd = data.length;
    let src: Uint8Array;
    let dst: Uint8Array;
    if (this.family === 4) {
      const ip = decodeIp(data, 0, data.length);
      if (isPacketError(ip) || ip.protocol !== IPPROTO_TCP || ip.fragment) return;
      tcpOff = ip.payloadOffset;
      tcpEnd = ip.payloadOffset + ip.payloadLength;
      src = ip.src;
      dst = ip.dst;
    } else {
      if (!from) return;
      src = from;
      dst = new Uint8Array(16); // IPv6 raw sockets do not tell the destination; the listener does
    }
    const tcp = decodeTcp(data, tcpOff, tcpEnd);
    if (isPacketError(tcp) || tcp.dstPort !== this.opts.port) return;
    const remoteText = this.family === 4 ? ipv4ToString(src) : ipv6ToString(src);
    const localText = this.family === 4 ? ipv4ToString(dst) : this.localAddressFor(remoteText, tcp.srcPort);
    if (localText === null) return;
    const key = connKey(localText, tcp.dstPort, remoteText, tcp.srcPort);
    const f = tcp.flags;
    const c = this.conns.get(key);

    if (f & TCP_SYN) {
      if (f & TCP_ACK) return;
      if (c && !c.verdict) return; // retransmitted SYN
      if (c) this.forget(c); // port reuse after a finished connection
      this.newConn(key, this.family === 4 ? dst : parseIP(localText), src, tcp.dstPort, tcp.srcPort);
      return;
    }
    if (!c || c.verdict) return;
    if (f & TCP_RST) {
      if (c.phase === 'handshake' && c.serverNext === null) return;
      this.emitEvent({ type: 'reset', ts: Date.now(), conn: key, seq: tcp.seq, phase: c.phase });
      this.finalize(c, 'reset');
      return;
    }
    if (c.serverNext === null && f & TCP_ACK) {
      // The handshake ACK: ack = our next seq, seq = the client's next seq.
      c.serverNext = tcp.ack;
      c.clientNext = tcp.seq;
      c.window = tcp.window;
      c.phase = 'established';
      this.halfOpen.delete(key);
      this.summary.connections++;
      this.emitEvent({ type: 'established', ts: Date.now(), conn: key });
      this.maybeInject(c);
    }
    if (f & TCP_FIN && c.phase === 'established') {
      c.phase = 'peer-fin';
      this.emitEvent({ type: 'fin', ts: Date.now(), conn: key });
    }
  }

  /** IPv6: the listener's socket knows our local address for a remote endpoint. */
  private localAddressFor(remote: string, remotePort: number): string | null {
    for (const s of this.sockets) if (normalizeAddr(s.remoteAddress ?? '') === remote && s.remotePort === remotePort) return normalizeAddr(s.localAddress ?? '');
    for (const c of this.conns.values()) if (c.remotePort === remotePort && ipv6ToString(c.remote) === remote) return ipv6ToString(c.local);
    return this.opts.bind === '::' ? null : this.opts.bind;
  }

  private maybeInject(c: Conn): void {
    if (c.injected || !c.accepted || c.serverNext === null || c.verdict || !this.raw) return;
    c.injected = true;
    const n = this.opts.count;
    const len = this.payloadBytes.length;
    const first = seqAdd(c.serverNext, this.opts.offset);
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
    this.emitEvent({ type: 'injected', ts: Date.now(), conn: c.key, seq: first, ack: c.clientNext, count: n, offset: this.opts.offset, bytes: len });
  }

  private finalize(c: Conn, verdict: Verdict): void {
    if (c.verdict) return;
    if (c.finalizeTimer) clearTimeout(c.finalizeTimer);
    c.finalizeTimer = null;
    c.verdict = verdict;
    c.phase = 'closed';
    this.halfOpen.delete(c.key);
    this.finishedConns.set(c.key, c);
    if (verdict === 'reset') this.summary.reset++;
    else if (verdict === 'clean') this.summary.clean++;
    this.emitEvent({ type: 'closed', ts: Date.now(), conn: c.key, verdict, ms: Date.now() - c.startedAt });
    this.emit('verdict', c.key, verdict);
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
