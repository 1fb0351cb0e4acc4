import { describe, expect, it } from 'vitest';
import { tupleDst, tupleKey, tupleSrc, v4TupleSlot } from './v4tuples.js';

const key = (a: number, pa: number, b: number, pb: number) => String.fromCharCode(a >>> 16, a & 0xffff, pa, b >>> 16, b & 0xffff, pb);

describe('the IPv4 tuple cache', () => {
  it('gives every tuple its own key and addresses, whatever took its slot before', () => {
    // find two tuples that share a slot: the second overwrites the first, which is then rebuilt
    const first = v4TupleSlot(0xc0000202 | 0, 40000, 0xc6336402 | 0, 9000);
    let other: [number, number, number, number] | null = null;
    for (let port = 1; port < 65536 && !other; port++) if (v4TupleSlot(0xcb007101 | 0, port, 0xc6336402 | 0, 9000) === first) other = [0xcb007101 | 0, port, 0xc6336402 | 0, 9000];
    expect(other).not.toBeNull();
    const [a, pa, b, pb] = other!;
    const s2 = v4TupleSlot(a, pa, b, pb);
    expect([tupleKey(s2), tupleSrc(s2), tupleDst(s2)]).toEqual([key(a, pa, b, pb), '203.0.113.1', '198.51.100.2']);
    const s1 = v4TupleSlot(0xc0000202 | 0, 40000, 0xc6336402 | 0, 9000);
    expect(s1).toBe(s2);
    expect([tupleKey(s1), tupleSrc(s1), tupleDst(s1)]).toEqual([key(0xc0000202 | 0, 40000, 0xc6336402 | 0, 9000), '192.0.2.2', '198.51.100.2']);
  });
});
