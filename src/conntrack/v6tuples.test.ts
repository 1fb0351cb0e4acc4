import { describe, expect, it } from 'vitest';
import { parseIP } from '../packet/address.js';
import { flowKey } from './model.js';
import { dirKeyOf } from './nat.js';
import { v6FlowKey, v6TupleCacheSlots, v6TupleDst, v6TupleKey, v6TupleSlot, v6TupleSrc } from './v6tuples.js';

/** Two addresses side by side (source at 0, destination at 16), as in a packet's header. */
function header(src: string, dst: string): Uint8Array {
  const b = new Uint8Array(32);
  b.set(parseIP(src), 0);
  b.set(parseIP(dst), 16);
  return b;
}

/** What the slot of (src:sp → dst:dp) must read: the texts and keys made from the tuple itself. */
function expected(src: string, sp: number, dst: string, dp: number): unknown[] {
  return [dirKeyOf({ src, sport: sp, dst, dport: dp }), flowKey({ src, srcPort: sp, dst, dstPort: dp }), src, dst];
}
const read = (s: number): unknown[] => [v6TupleKey(s), v6FlowKey(s), v6TupleSrc(s), v6TupleDst(s)];

describe('the IPv6 tuple cache', () => {
  it('reads a tuple as dirKeyOf, flowKey and RFC 5952 texts would have it, for both directions', () => {
    const b = header('2001:db8:0:0:1:0:0:1', '2001:db8::ffff:0:2');
    expect(read(v6TupleSlot(b, 0, 40000, 16, 9000))).toEqual(expected('2001:db8::1:0:0:1', 40000, '2001:db8::ffff:0:2', 9000));
    expect(read(v6TupleSlot(b, 16, 9000, 0, 40000))).toEqual(expected('2001:db8::ffff:0:2', 9000, '2001:db8::1:0:0:1', 40000));
    // the two directions share the model table's key
    expect(v6FlowKey(v6TupleSlot(b, 0, 40000, 16, 9000))).toBe(v6FlowKey(v6TupleSlot(b, 16, 9000, 0, 40000)));
  });

  it('tells apart tuples in the same pair of slots that differ in one word of either address', () => {
    const base = new Uint8Array([...parseIP('2001:db8:1:2:3:4:5:6'), ...parseIP('2001:db8:a:b:c:d:e:f')]);
    const text = (b: Uint8Array, at: number) => parseIPText(b.subarray(at, at + 16));
    for (let word = 0; word < 8; word++) {
      const first = v6TupleSlot(base, 0, 40000, 16, 9000);
      // a variant in that word only, which the hash puts in the same pair of slots
      let variant: Uint8Array | null = null;
      for (let v = 1; v < 1 << 20 && variant === null; v++) {
        const b = Uint8Array.from(base);
        b[word * 4 + 1] = b[word * 4 + 1]! ^ (v >> 16);
        b[word * 4 + 2] = b[word * 4 + 2]! ^ ((v >> 8) & 255);
        b[word * 4 + 3] = b[word * 4 + 3]! ^ (v & 255);
        if (v6TupleSlot(b, 0, 40000, 16, 9000) >> 1 === first >> 1) variant = b;
      }
      expect(variant).not.toBeNull();
      const s0 = v6TupleSlot(base, 0, 40000, 16, 9000);
      const s1 = v6TupleSlot(variant!, 0, 40000, 16, 9000);
      expect(s1 >> 1).toBe(s0 >> 1);
      expect(read(s1)).toEqual(expected(text(variant!, 0), 40000, text(variant!, 16), 9000));
      expect(read(v6TupleSlot(base, 0, 40000, 16, 9000))).toEqual(expected(text(base, 0), 40000, text(base, 16), 9000));
    }
  });

  it('grows while tuples it lost come back, and keeps reading them right', () => {
    const before = v6TupleCacheSlots();
    for (let round = 0; round < 6; round++) {
      for (let i = 0; i < 20000; i++) {
        const b = header(`2001:db8::${(i % 250) + 1}`, '2001:db8:ffff::1');
        const s = v6TupleSlot(b, 0, 1024 + i, 16, 443);
        if (i % 997 === 0) expect(read(s)).toEqual(expected(`2001:db8::${(i % 250) + 1}`, 1024 + i, '2001:db8:ffff::1', 443));
      }
    }
    expect(v6TupleCacheSlots()).toBeGreaterThan(before);
    expect(v6TupleCacheSlots()).toBeGreaterThanOrEqual(32768);
  });
});

/** RFC 5952 text of 16 bytes, through the URL serializer (independent of ipv6ToString). */
function parseIPText(b: Uint8Array): string {
  const full = Array.from({ length: 8 }, (_, g) => ((b[2 * g]! << 8) | b[2 * g + 1]!).toString(16)).join(':');
  return new URL(`http://[${full}]/`).hostname.slice(1, -1);
}
