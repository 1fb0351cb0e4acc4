/**
 * The probe server's connection table under a SYN flood: with a small table, half-open entries
 * are evicted before established connections, so a legitimate connection keeps its verdict.
 * Segments are fed straight into the classifier (no sockets): this tests the table, not the wire.
 */
import { describe, expect, it } from 'vitest';
import { parseIP } from '../packet/address.js';
import { encodeIPv4, IPPROTO_TCP } from '../packet/ip.js';
import { encodeTcp, TCP_ACK, TCP_RST, TCP_SYN } from '../packet/tcp.js';
import type { ServerEvent } from '../events.js';
import { OutOfWindowProbe } from './server.js';

const server = parseIP('198.51.100.2');
function segment(srcIp: string, srcPort: number, flags: number, seq: number, ack: number): Uint8Array {
  const src = parseIP(srcIp);
  return encodeIPv4({ src, dst: server, protocol: IPPROTO_TCP }, encodeTcp({ srcPort, dstPort: 9000, seq, ack, flags, window: 1000 }, src, server));
}

describe('connection table under a SYN flood', () => {
  it('evicts half-open entries first; the established connection is still judged', () => {
    const probe = new OutOfWindowProbe({ port: 9000, bind: '198.51.100.2', maxConnections: 8 });
    const events: ServerEvent[] = [];
    probe.on('event', (e: ServerEvent) => events.push(e));
    const feed = (b: Uint8Array) => (probe as unknown as { onSegment(d: Uint8Array, f: null): void }).onSegment(b, null);
    // A legitimate connection: SYN, then the handshake ACK.
    feed(segment('192.0.2.2', 40000, TCP_SYN, 1000, 0));
    feed(segment('192.0.2.2', 40000, TCP_ACK, 1001, 5001));
    expect(events.filter((e) => e.type === 'established')).toHaveLength(1);
    // 10,000 spoofed SYNs (bounded) from other ports: each needs an eviction once the table is full.
    for (let i = 0; i < 10_000; i++) feed(segment('203.0.113.9', 1024 + (i % 60000), TCP_SYN, i, 0));
    // The legitimate connection survived: its peer's RST is still classified as a reset.
    feed(segment('192.0.2.2', 40000, TCP_RST | TCP_ACK, 1001, 5001));
    expect(events.filter((e) => e.type === 'reset').map((e) => (e as { conn: string }).conn)).toEqual(['198.51.100.2:9000-192.0.2.2:40000']);
    const summary = probe.stop();
    expect(summary.evicted).toBe(10_000 - 8 + 1);
    expect(summary.reset).toBe(1);
  });

  it('under a long flood: finished entries go first, then half-open; established ones keep being judged', () => {
    const probe = new OutOfWindowProbe({ port: 9000, bind: '198.51.100.2', maxConnections: 64 });
    const events: ServerEvent[] = [];
    probe.on('event', (e: ServerEvent) => events.push(e));
    const feed = (b: Uint8Array) => (probe as unknown as { onSegment(d: Uint8Array, f: null): void }).onSegment(b, null);
    const legit = [40001, 40002, 40003];
    for (const p of legit) {
      feed(segment('192.0.2.2', p, TCP_SYN, 1000, 0));
      feed(segment('192.0.2.2', p, TCP_ACK, 1001, 5001));
    }
    // one finished connection (reset), then its port reused: the old entry is forgotten
    feed(segment('192.0.2.3', 50000, TCP_SYN, 1, 0));
    feed(segment('192.0.2.3', 50000, TCP_ACK, 2, 9));
    feed(segment('192.0.2.3', 50000, TCP_RST | TCP_ACK, 2, 9));
    feed(segment('192.0.2.3', 50000, TCP_SYN, 100, 0));
    // a bounded flood, in waves from many sources, some SYNs retransmitted
    for (let i = 0; i < 50_000; i++) feed(segment(`203.0.113.${1 + (i % 200)}`, 1024 + ((i * 7) % 60000), TCP_SYN, i, 0));
    const estab = new Set(events.filter((e) => e.type === 'established').map((e) => (e as { conn: string }).conn));
    expect(estab.size).toBe(4);
    // every legitimate connection is still tracked: its reset is classified
    for (const p of legit) feed(segment('192.0.2.2', p, TCP_RST | TCP_ACK, 1001, 5001));
    const resets = events.filter((e) => e.type === 'reset').map((e) => (e as { conn: string }).conn);
    expect(resets).toEqual(['198.51.100.2:9000-192.0.2.3:50000', ...legit.map((p) => `198.51.100.2:9000-192.0.2.2:${p}`)]);
    const summary = probe.stop();
    expect(summary.reset).toBe(4);
    expect(summary.open).toBe(0);
    expect(summary.segments).toBe(3 * 2 + 4 + 50_000 + 3);
  });
});

describe('the end of the linger', () => {
  it('reads the raw socket before judging clean: an RST already there is a reset', () => {
    const probe = new OutOfWindowProbe({ port: 9000, bind: '198.51.100.2' });
    const events: ServerEvent[] = [];
    probe.on('event', (e: ServerEvent) => events.push(e));
    const p = probe as unknown as { onSegment(d: Uint8Array, f: null): void; raw: unknown; conns: Map<string, unknown>; lingerOver(c: unknown): void };
    const feed = (b: Uint8Array) => p.onSegment(b, null);
    feed(segment('192.0.2.2', 40000, TCP_SYN, 1000, 0));
    feed(segment('192.0.2.2', 40000, TCP_ACK, 1001, 5001));
    // The RST arrived in time but the process had not read it when the linger timer came due.
    let pending: Uint8Array | null = segment('192.0.2.2', 40000, TCP_RST | TCP_ACK, 1001, 5001);
    p.raw = { readPending: () => pending && (feed(pending), (pending = null)), close: () => undefined };
    p.lingerOver([...p.conns.values()][0]);
    expect(events.filter((e) => e.type === 'closed').map((e) => (e as { verdict: string }).verdict)).toEqual(['reset']);
    // nothing pending: clean
    feed(segment('192.0.2.3', 40001, TCP_SYN, 1000, 0));
    feed(segment('192.0.2.3', 40001, TCP_ACK, 1001, 5001));
    p.lingerOver([...p.conns.values()].at(-1));
    expect(events.filter((e) => e.type === 'closed').map((e) => (e as { verdict: string }).verdict)).toEqual(['reset', 'clean']);
    p.raw = null;
    probe.stop();
  });
});
