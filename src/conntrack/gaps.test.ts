import { describe, expect, it } from 'vitest';
import { CaptureGaps } from './gaps.js';
import type { TcpPacketView } from './model.js';

const pkt = (from: 'c' | 's', seq: number, ack: number, len: number, flags = 0x10): TcpPacketView => ({
  src: from === 'c' ? '192.0.2.2' : '198.51.100.2',
  dst: from === 'c' ? '198.51.100.2' : '192.0.2.2',
  srcPort: from === 'c' ? 40000 : 9000,
  dstPort: from === 'c' ? 9000 : 40000,
  seq,
  ack,
  flags,
  window: 1000,
  payloadLength: len,
  dataOffset: 20,
  options: {},
  hasOptions: false,
  tsSec: 0,
});

describe('capture gaps', () => {
  it('an ACK beyond the captured data: missed bytes, and the lost exchange to feed the model', () => {
    const g = new CaptureGaps();
    g.observe(pkt('s', 100, 500, 50), 'k');
    const r = { missed: g.observe(pkt('c', 500, 450, 0), 'k'), fills: g.fills };
    expect(r.missed).toBe(300);
    expect(r.fills.length).toBeGreaterThanOrEqual(2);
    expect(r.fills[0]).toMatchObject({ src: '198.51.100.2', seq: 150, payloadLength: expect.any(Number) });
    expect(r.fills.filter((f) => f.src === '198.51.100.2').reduce((n, f) => n + f.payloadLength, 0)).toBe(300);
    expect(r.fills.at(-1)).toMatchObject({ src: '192.0.2.2', ack: 450, payloadLength: 0 });
    expect(g.observe(pkt('c', 500, 450, 0), 'k')).toBe(0); // counted once
    expect(g.missedIn('k')).toBe(300);
  });
  it('a sequence jump counts only once ACKed without a retransmission; an RST is not evidence', () => {
    const g = new CaptureGaps();
    g.observe(pkt('s', 100, 500, 50), 'k');
    g.observe(pkt('s', 250, 500, 50), 'k'); // hole 150..250
    g.observe(pkt('s', 150, 500, 50), 'k'); // retransmitted 150..200: that part was not lost by the capture
    expect(g.observe(pkt('c', 500, 9999, 0, 0x14), 'k')).toBe(0);
    expect(g.observe(pkt('c', 500, 300, 0), 'k')).toBe(50);
    expect(g.missed).toBe(50);
  });
  it('tells the two sides apart by address when both ends have the same port', () => {
    const g = new CaptureGaps();
    const same = (p: TcpPacketView): TcpPacketView => ({ ...p, srcPort: 5000, dstPort: 5000 });
    g.observe(same(pkt('s', 100, 500, 50)), 'k');
    expect(g.observe(same(pkt('c', 500, 450, 0)), 'k')).toBe(300);
    expect(g.fills.at(-1)).toMatchObject({ src: '192.0.2.2', ack: 450, payloadLength: 0 });
  });
  it('a swept flow is forgotten: what it remembered does not outlive its entry', () => {
    const g = new CaptureGaps();
    g.observe(pkt('s', 100, 500, 50), 'k');
    g.sweep((k) => k !== 'k');
    expect(g.missedIn('k')).toBe(0);
    // afresh: an ACK past data captured before the sweep is not counted against the new flow
    expect(g.observe(pkt('c', 500, 450, 0), 'k')).toBe(0);
  });
  it("a slot freed by a sweep and taken by another flow is not the old holder's: it looks its flow up again", () => {
    const g = new CaptureGaps();
    const holder = { gaps: -1, gapsGen: 0 };
    g.observe(pkt('s', 100, 500, 50), 'a', holder);
    const slotA = holder.gaps;
    expect(slotA).toBeGreaterThanOrEqual(0);
    g.sweep((k) => k !== 'a');
    expect(g.size).toBe(0);
    // flow b takes the freed slot; its sides start empty
    const other = { gaps: -1, gapsGen: 0 };
    expect(g.observe(pkt('c', 500, 9999, 0), 'b', other)).toBe(0);
    expect(other.gaps).toBe(slotA);
    // the old holder of flow a: not flow b's state — a new slot, afresh
    expect(g.observe(pkt('c', 500, 450, 0), 'a', holder)).toBe(0);
    expect(holder.gaps).not.toBe(slotA);
    expect(g.size).toBe(2);
    // many flows at once: every one keeps its own state as the arrays grow
    const many = new CaptureGaps();
    for (let i = 0; i < 300; i++) many.observe({ ...pkt('s', 100, 500, 50), srcPort: 1000 + i }, `f${i}`);
    for (let i = 0; i < 300; i++) expect(many.observe({ ...pkt('c', 500, 450 + i, 0), dstPort: 1000 + i }, `f${i}`)).toBe(300 + i);
    expect(many.missed).toBe(300 * 300 + (299 * 300) / 2);
  });
});
