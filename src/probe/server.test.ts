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
});
