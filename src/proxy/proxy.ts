/**
 * TransparentProxy — an Envoy-TCPProxy-like sidecar. It accepts connections that an iptables nat
 * OUTPUT REDIRECT sent to its port, recovers the original destination (SO_ORIGINAL_DST), connects
 * there, pipes both ways, and propagates half-close the way Envoy does: a FIN from one side
 * becomes shutdown(SHUT_WR) on the other, and the pair is closed only when both directions have
 * ended — or when nothing moved for `idleTimeoutMs` (Envoy's TCPProxy idle_timeout, 1 h default).
 *
 * That faithfulness is the point: when the application's FIN never arrives (conntrack marked it
 * INVALID), this proxy keeps FIN-WAIT-2 towards the app and CLOSE-WAIT towards the upstream,
 * exactly like the seed's Envoy.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { SystemError } from '../errors.js';
import type { ProxyEvent } from '../events.js';
import { originalDestination } from '../rawsock/index.js';

export interface ProxyOptions {
  port: number;
  bind: string;
  idleTimeoutMs: number;
}

export const DEFAULT_PROXY_OPTIONS: ProxyOptions = { port: 15001, bind: '0.0.0.0', idleTimeoutMs: 3_600_000 };

export type { ProxyEvent } from '../events.js';

function socketFd(s: net.Socket): number {
  const fd = (s as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new SystemError('cannot read the accepted socket’s file descriptor');
  return fd;
}

interface Pair {
  id: number;
  app: net.Socket;
  upstream: net.Socket;
  appEnded: boolean;
  upstreamEnded: boolean;
  lastActivity: number;
  startedAt: number;
  timer: NodeJS.Timeout | null;
  closed: boolean;
}

export class TransparentProxy extends EventEmitter {
  readonly opts: ProxyOptions;
  private server: net.Server | null = null;
  private readonly pairs = new Set<Pair>();
  private nextId = 1;

  constructor(opts: Partial<ProxyOptions> = {}) {
    super();
    this.opts = { ...DEFAULT_PROXY_OPTIONS, ...opts };
  }

  private emitEvent(e: ProxyEvent): void {
    this.emit('event', e);
  }

  async start(): Promise<void> {
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => this.onAccept(s));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e) => reject(new SystemError(`proxy cannot listen on ${this.opts.bind}:${this.opts.port}: ${e.message}`)));
      server.listen({ port: this.opts.port, host: this.opts.bind }, () => resolve());
    });
    this.emitEvent({ type: 'proxy-listening', ts: Date.now(), port: this.opts.port, idleTimeoutMs: this.opts.idleTimeoutMs });
  }

  private onAccept(app: net.Socket): void {
    let dst: { address: string; port: number };
    try {
      dst = originalDestination(socketFd(app));
    } catch (e) {
      app.destroy();
      this.emitEvent({ type: 'proxy-error', ts: Date.now(), id: 0, side: 'app', message: (e as Error).message });
      return;
    }
    const upstream = net.connect({ host: dst.address, port: dst.port, allowHalfOpen: true });
    const p: Pair = { id: this.nextId++, app, upstream, appEnded: false, upstreamEnded: false, lastActivity: Date.now(), startedAt: Date.now(), timer: null, closed: false };
    this.pairs.add(p);
    this.emitEvent({ type: 'accepted', ts: Date.now(), id: p.id, app: `${app.remoteAddress}:${app.remotePort}`, upstream: `${dst.address}:${dst.port}` });
    const touch = () => (p.lastActivity = Date.now());
    upstream.on('connect', () => app.resume());
    app.on('data', (d: Buffer) => {
      touch();
      upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => {
      touch();
      app.write(d);
    });
    // Half-close propagation: FIN in → shutdown(SHUT_WR) out.
    app.on('end', () => {
      p.appEnded = true;
      this.emitEvent({ type: 'half-close', ts: Date.now(), id: p.id, from: 'app' });
      upstream.end();
      this.maybeClose(p);
    });
    upstream.on('end', () => {
      p.upstreamEnded = true;
      this.emitEvent({ type: 'half-close', ts: Date.now(), id: p.id, from: 'upstream' });
      app.end();
      this.maybeClose(p);
    });
    for (const [side, s] of [['app', app], ['upstream', upstream]] as const) {
      s.on('error', (e) => {
        this.emitEvent({ type: 'proxy-error', ts: Date.now(), id: p.id, side, message: e.message });
        this.close(p, 'error');
      });
    }
    this.armIdle(p);
  }

  private armIdle(p: Pair): void {
    const check = () => {
      const idle = Date.now() - p.lastActivity;
      if (idle >= this.opts.idleTimeoutMs) {
        this.emitEvent({ type: 'idle-timeout', ts: Date.now(), id: p.id, idleMs: idle });
        this.close(p, 'idle-timeout');
      } else p.timer = setTimeout(check, this.opts.idleTimeoutMs - idle);
    };
    p.timer = setTimeout(check, this.opts.idleTimeoutMs);
  }

  private maybeClose(p: Pair): void {
    if (p.appEnded && p.upstreamEnded) this.close(p, 'both-ended');
  }

  private close(p: Pair, reason: 'both-ended' | 'idle-timeout' | 'error' | 'stopped'): void {
    if (p.closed) return;
    p.closed = true;
    if (p.timer) clearTimeout(p.timer);
    p.app.destroy();
    p.upstream.destroy();
    this.pairs.delete(p);
    this.emitEvent({ type: 'pair-closed', ts: Date.now(), id: p.id, reason, ms: Date.now() - p.startedAt });
  }

  /** Open pairs right now. */
  get open(): number {
    return this.pairs.size;
  }

  stop(): void {
    for (const p of [...this.pairs]) this.close(p, 'stopped');
    this.server?.close();
    this.server = null;
  }
}
