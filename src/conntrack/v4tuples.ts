/**
 * IPv4 4-tuples seen recently, by a hash of the tuple: a replay looks up the same few thousand
 * tuples millions of times. A slot holds the tuple's directional key (6 UTF-16 units: cheap to
 * hash, and a string found here is not hashed again by the Maps it indexes — V8 keeps the hash in
 * the string) and its two addresses as text, so a packet of a known tuple builds no string at all.
 * A slot is overwritten on collision: this is a cache, never the only copy of anything.
 */
import { TupleCacheSizing } from './tuple-cache-sizing.js';

let slotA = new Int32Array(0);
let slotB = new Int32Array(0);
let slotPorts = new Int32Array(0);
let slotKey: Array<string | undefined> = [];
let slotSrc: string[] = [];
let slotDst: string[] = [];
/**
 * 4,096 slots, doubled up to 65,536 (see TupleCacheSizing): a SYN flood, every packet a new
 * tuple, grew a cache sized by its misses to 65,536 slots of tuples that never came back, and a
 * fixed 65,536 kept 40,000 stale tuples' keys and texts of a capture with 2,700 live at once (3 MB).
 */
const sizing = new TupleCacheSizing(1 << 12, 1 << 16, (size) => {
  slotA = new Int32Array(size);
  slotB = new Int32Array(size);
  slotPorts = new Int32Array(size);
  slotKey = new Array<string | undefined>(size).fill(undefined);
  slotSrc = new Array<string>(size).fill('');
  slotDst = new Array<string>(size).fill('');
});

/** Address text by its int32 value (misses only). */
const addrText = new Map<number, string>();
function v4AddrText(a: number): string {
  let t = addrText.get(a);
  if (t === undefined) {
    t = `${(a >>> 24) & 255}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;
    if (addrText.size < 1 << 16) addrText.set(a, t);
  }
  return t;
}

const tupleHash = (a: number, b: number, ports: number): number => Math.imul(a ^ Math.imul(b, 0x9e3779b1) ^ Math.imul(ports, 0x85ebca6b), 0xc2b2ae35);

/**
 * The slot of tuple (a:pa → b:pb), addresses as int32 (b[0] << 24 | …), filled if it held another
 * tuple. Read it with `tupleKey`, `tupleSrc`, `tupleDst` before the next call. Two slots per hash
 * (the one used less recently is refilled): with tens of thousands of flows live at once, a
 * direct-mapped cache lost 44 % of its tuples to collisions.
 */
export function v4TupleSlot(a: number, pa: number, b: number, pb: number): number {
  sizing.lookup();
  const ports = (pa << 16) | pb;
  const mix = tupleHash(a, b, ports);
  const h = (mix >>> 16) & (sizing.size - 2);
  if (slotA[h] === a && slotB[h] === b && slotPorts[h] === ports && slotKey[h] !== undefined) {
    sizing.hit(h, h);
    return h;
  }
  if (slotA[h + 1] === a && slotB[h + 1] === b && slotPorts[h + 1] === ports && slotKey[h + 1] !== undefined) {
    sizing.hit(h, h + 1);
    return h + 1;
  }
  const i = sizing.refill(h, mix);
  if (slotKey[i] !== undefined) sizing.evict(tupleHash(slotA[i]!, slotB[i]!, slotPorts[i]!));
  slotA[i] = a;
  slotB[i] = b;
  slotPorts[i] = ports;
  slotKey[i] = String.fromCharCode(a >>> 16, a & 0xffff, pa, b >>> 16, b & 0xffff, pb);
  slotSrc[i] = v4AddrText(a);
  slotDst[i] = v4AddrText(b);
  return i;
}

export const tupleKey = (slot: number): string => slotKey[slot]!;
export const tupleSrc = (slot: number): string => slotSrc[slot]!;
export const tupleDst = (slot: number): string => slotDst[slot]!;
/** How many slots the cache has now (grows with the tuples live at once). */
export const tupleCacheSlots = (): number => sizing.size;
