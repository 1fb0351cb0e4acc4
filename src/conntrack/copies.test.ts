import { describe, expect, it } from 'vitest';
import { HAS_TIMESTAMP, identityHead, PacketCopies, POSITION_HORIZON_S, POSITIONLESS_HORIZON_S } from './copies.js';

const tuple = (n: number) => ({ src: `192.0.2.${n}`, sport: 20000 + n, dst: '198.51.100.1', dport: 9000 });
const B = { name: 'binding' };

/** Look packet k (its identity from k) up at `position`, time ts; remember it if it is not a copy. */
function see(c: PacketCopies<object>, k: number, position: number, ts: number, binding: object | null = B): number {
  c.now = ts;
  const first = c.copyOf(identityHead(k & 0xffff, false, 0x10), k * 1000, -k, 64, 502, 0, position);
  if (first < 0) c.remember(position, binding, 0, tuple(k & 0xff));
  return first;
}

describe('PacketCopies', () => {
  it('finds the copy of a packet at another position, with what its first copy resolved to', () => {
    const c = new PacketCopies<object>();
    expect(see(c, 1, 3 * 8, 10)).toBe(-1);
    const n = see(c, 1, 5 * 8 + 4, 10.000002);
    expect(n).toBeGreaterThanOrEqual(0);
    expect(c.bindingOf(n)).toBe(B);
    expect(c.dirOf(n)).toBe(0);
    expect(c.firstTupleInto(n, { src: '', sport: 0, dst: '', dport: 0 })).toEqual(tuple(1));
    expect(c.sameTuple(n, tuple(1))).toBe(true);
    expect(c.sameTuple(n, { ...tuple(1), sport: 1 })).toBe(false);
  });

  it('takes a packet seen again where it passed before for a new transmission, and a later copy as one of it', () => {
    const c = new PacketCopies<object>();
    see(c, 7, 24, 1);
    expect(see(c, 7, 44, 1.0001)).toBeGreaterThanOrEqual(0);
    // the retransmission passes the first interface again: remembered anew
    expect(see(c, 7, 24, 1.3)).toBe(-1);
    // its copy on the second interface is the retransmission's, not a second copy of the first
    expect(see(c, 7, 44, 1.3001)).toBeGreaterThanOrEqual(0);
    expect(see(c, 7, 44, 1.3002)).toBe(-1);
  });

  it('tells identities apart by every field, the timestamp and whether there was one', () => {
    const c = new PacketCopies<object>();
    const id = identityHead(9, false, 0x18);
    c.now = 1;
    c.copyOf(id, 1, 2, 3, 502, 0, 8);
    c.remember(8, B, 1, tuple(9));
    expect(c.copyOf(id, 1, 2, 3, 502, 0, 16)).toBeGreaterThanOrEqual(0);
    expect(c.copyOf(id, 1, 2, 3, 502 | HAS_TIMESTAMP, 0, 24)).toBe(-1);
    expect(c.copyOf(identityHead(9, true, 0x18), 1, 2, 3, 502, 0, 24)).toBe(-1);
    expect(c.copyOf(identityHead(9, false, 0x10), 1, 2, 3, 502, 0, 24)).toBe(-1);
    expect(c.copyOf(id, 1, 2, 4, 502, 0, 24)).toBe(-1);
    expect(c.copyOf(id, 1, 3, 3, 502, 0, 24)).toBe(-1);
    expect(c.copyOf(id, 0, 2, 3, 502, 0, 24)).toBe(-1);
    expect(c.copyOf(id, 1, 2, 3, 502, 7, 24)).toBe(-1);
  });

  it('keeps every position of a packet through more interfaces than the ring holds', () => {
    const c = new PacketCopies<object>();
    see(c, 3, 0, 5);
    for (let p = 1; p < 12; p++) expect(see(c, 3, p * 8, 5)).toBeGreaterThanOrEqual(0);
    // each of the 12 positions was passed: seen at any of them again, a new transmission
    for (const p of [0, 5, 6, 7, 11]) {
      const d = new PacketCopies<object>();
      see(d, 3, 0, 5);
      for (let q = 1; q < 12; q++) see(d, 3, q * 8, 5);
      expect(see(d, 3, p * 8, 5.5)).toBe(-1);
    }
  });

  it('without positions, copies must fall within the short horizon; with them, within the long one', () => {
    const c = new PacketCopies<object>();
    see(c, 4, -1, 1);
    expect(see(c, 4, -1, 1 + POSITIONLESS_HORIZON_S / 2)).toBeGreaterThanOrEqual(0);
    expect(see(c, 4, -1, 1 + POSITIONLESS_HORIZON_S * 2)).toBe(-1);
    see(c, 5, 8, 10);
    expect(see(c, 5, 16, 10 + POSITION_HORIZON_S - 0.1)).toBeGreaterThanOrEqual(0);
    const d = new PacketCopies<object>();
    see(d, 5, 8, 10);
    expect(see(d, 5, 16, 10 + POSITION_HORIZON_S + 0.1)).toBe(-1);
  });

  it('holds the packets of the horizon, not the capture: a long capture reuses the ring', () => {
    const c = new PacketCopies<object>();
    // 200,000 packets, 1,000 a second of capture time: 3 s hold ~3,000
    for (let k = 0; k < 200_000; k++) see(c, k, 8, k / 1000);
    expect(c.size).toBeLessThanOrEqual(c.room);
    expect(c.room).toBeLessThanOrEqual(4096);
    // the recent ones are still found after the ring went round many times; the old ones are not
    expect(see(c, 199_990, 16, 199.995)).toBeGreaterThanOrEqual(0);
    expect(see(c, 100, 16, 200)).toBe(-1);
  });

  it('stays bounded, and matches nothing from the other side of a step, when the capture\'s clock steps back', () => {
    const c = new PacketCopies<object>();
    for (let k = 0; k < 20_000; k++) see(c, k, 8, 10_000 + k / 1000);
    const room = c.room;
    // an hour earlier from here on: what came before is more than the horizon away
    for (let k = 20_000; k < 120_000; k++) see(c, k, 8, 6_400 + k / 1000);
    expect(c.room).toBe(room);
    expect(see(c, 119_999, 16, 6_400 + 120)).toBeGreaterThanOrEqual(0);
    expect(see(c, 19_999, 16, 6_400 + 120)).toBe(-1);
  });

  it('grows while the packets of the horizon do not fit, and finds them all after growing', () => {
    const c = new PacketCopies<object>();
    // 50,000 packets in one second: all within the horizon
    for (let k = 0; k < 50_000; k++) see(c, k, 8, 1 + k / 50_000, { k });
    expect(c.size).toBe(50_000);
    for (const k of [0, 1, 4095, 25_000, 49_999]) {
      const n = see(c, k, 16, 2);
      expect(n).toBeGreaterThanOrEqual(0);
      expect(c.bindingOf(n)).toEqual({ k });
      expect(c.firstTupleInto(n, { src: '', sport: 0, dst: '', dport: 0 })).toEqual(tuple(k & 0xff));
    }
  });
});
