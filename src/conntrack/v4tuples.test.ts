import { describe, expect, it } from 'vitest';
import { tupleCacheSlots, tupleDst, tupleKey, tupleSrc, v4TupleSlot } from './v4tuples.js';

const key = (a: number, pa: number, b: number, pb: number) => String.fromCharCode(a >>> 16, a & 0xffff, pa, b >>> 16, b & 0xffff, pb);
const X = 0xcb007101 | 0; // 203.0.113.1
const Y = 0xc6336402 | 0; // 198.51.100.2
const Z = 0xc0000202 | 0; // 192.0.2.2

describe('the IPv4 tuple cache', () => {
  it('gives every tuple its own key and addresses, whatever took its slots before; two slots per hash, the least recently used refilled', () => {
    // two more tuples that hash to the first one's pair of slots: the third one evicts the first
    const first = v4TupleSlot(Z, 40000, Y, 9000);
    const same: number[] = [];
    for (let port = 1; port < 65536 && same.length < 2; port++) if (v4TupleSlot(X, port, Y, 9000) >> 1 === first >> 1) same.push(port);
    expect(same).toHaveLength(2);
    const s0 = v4TupleSlot(Z, 40000, Y, 9000);
    const s1 = v4TupleSlot(X, same[0]!, Y, 9000);
    expect(s1 >> 1).toBe(s0 >> 1);
    expect(s1).not.toBe(s0); // both held at once
    expect(v4TupleSlot(Z, 40000, Y, 9000)).toBe(s0); // still there (a hit: now the more recent)
    const s2 = v4TupleSlot(X, same[1]!, Y, 9000); // takes the less recently used: same[0]'s slot
    expect(s2).toBe(s1);
    expect([tupleKey(s2), tupleSrc(s2), tupleDst(s2)]).toEqual([key(X, same[1]!, Y, 9000), '203.0.113.1', '198.51.100.2']);
    const again = v4TupleSlot(X, same[0]!, Y, 9000); // rebuilt, in the other slot of the pair
    expect(again).toBe(s0);
    expect([tupleKey(again), tupleSrc(again), tupleDst(again)]).toEqual([key(X, same[0]!, Y, 9000), '203.0.113.1', '198.51.100.2']);
    const z = v4TupleSlot(Z, 40000, Y, 9000);
    expect([tupleKey(z), tupleSrc(z), tupleDst(z)]).toEqual([key(Z, 40000, Y, 9000), '192.0.2.2', '198.51.100.2']);
  });
});

describe('the IPv4 tuple cache, with many tuples live at once', () => {
  // (one cache per process, and it never shrinks: the flood first)
  it('stays small when every tuple is new and never seen again (a SYN flood)', () => {
    for (let i = 0; i < 200000; i++) v4TupleSlot(X, 1024 + (i % 60000), (0xc0000200 | 0) + (i >> 16), 9000 + (i % 3));
    expect(tupleCacheSlots()).toBe(4096);
  });

  it('grows and gives every tuple its own key and addresses throughout', () => {
    for (let round = 0; round < 6; round++) for (let port = 1; port <= 30000; port++) {
      const s = v4TupleSlot(X, port, Y, 9000);
      if (port % 1009 === 0) expect([tupleKey(s), tupleSrc(s), tupleDst(s)]).toEqual([key(X, port, Y, 9000), '203.0.113.1', '198.51.100.2']);
    }
    expect(tupleCacheSlots()).toBeGreaterThanOrEqual(32768);
    const z = v4TupleSlot(Z, 40000, Y, 9000);
    expect([tupleKey(z), tupleSrc(z), tupleDst(z)]).toEqual([key(Z, 40000, Y, 9000), '192.0.2.2', '198.51.100.2']);
  });
});
