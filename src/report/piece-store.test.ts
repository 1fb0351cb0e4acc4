/** The output thread's pieces (offload.ts PieceStore): what was set last is what is copied, long or short. */
import { describe, expect, it } from 'vitest';
import { PieceStore } from './offload.js';

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);

/** Piece (table, id) as copied out, between two markers (nothing written past its end). */
function read(store: PieceStore, table: number, id: number): string {
  const o = new Uint8Array(4096).fill(0x23);
  const end = store.copy(table, id, o, 1);
  expect(o[0]).toBe(0x23);
  expect(o[end]).toBe(0x23);
  return text(o.subarray(1, end));
}

describe('PieceStore', () => {
  it('keeps each table apart, copies short and long pieces, and a piece set again replaces the old one', () => {
    const s = new PieceStore();
    const long = 'x'.repeat(300) + 'end';
    const src = bytes(`..${long}..`);
    const pair = bytes('"192.0.2.1:40000 → 198.51.100.2:9000"');
    s.set(0, 5, pair, 0, pair.length);
    s.set(1, 5, bytes('ACK'), 0, 3);
    s.set(0, 70000 & 0xffff, src, 2, long.length); // long: on its own
    expect(read(s, 0, 5)).toBe('"192.0.2.1:40000 → 198.51.100.2:9000"');
    expect(read(s, 1, 5)).toBe('ACK');
    expect(read(s, 0, 70000 & 0xffff)).toBe(long);
    // long → short → long: each time the last one
    s.set(0, 70000 & 0xffff, bytes('short'), 0, 5);
    expect(read(s, 0, 70000 & 0xffff)).toBe('short');
    s.set(0, 70000 & 0xffff, src, 2, long.length);
    expect(read(s, 0, 70000 & 0xffff)).toBe(long);
    // a table grown past an id keeps what it had
    s.set(1, 60000, bytes('FIN'), 0, 3);
    expect(read(s, 1, 5)).toBe('ACK');
    expect(read(s, 1, 60000)).toBe('FIN');
    // exactly one slot's worth, and an empty piece
    const full = 'y'.repeat(128);
    s.set(2, 0, bytes(full), 0, 128);
    s.set(2, 1, bytes(''), 0, 0);
    expect(read(s, 2, 0)).toBe(full);
    expect(read(s, 2, 1)).toBe('');
  });
});
