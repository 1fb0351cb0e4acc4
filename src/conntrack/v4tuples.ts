/**
 * IPv4 4-tuples seen recently, by a hash of the tuple: a replay looks up the same few thousand
 * tuples millions of times. A slot holds the tuple's directional key (6 UTF-16 units: cheap to
 * hash, and a string found here is not hashed again by the Maps it indexes — V8 keeps the hash in
 * the string) and its two addresses as text, so a packet of a known tuple builds no string at all.
 * A slot is overwritten on collision: this is a cache, never the only copy of anything.
 */
const SLOTS = 1 << 16;
const slotA = new Int32Array(SLOTS);
const slotB = new Int32Array(SLOTS);
const slotPorts = new Int32Array(SLOTS);
const slotKey: Array<string | undefined> = new Array<string | undefined>(SLOTS).fill(undefined);
const slotSrc: string[] = new Array<string>(SLOTS).fill('');
const slotDst: string[] = new Array<string>(SLOTS).fill('');

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

/**
 * The slot of tuple (a:pa → b:pb), addresses as int32 (b[0] << 24 | …), filled if it held another
 * tuple. Read it with `tupleKey`, `tupleSrc`, `tupleDst` before the next call. Two slots per hash
 * (the one used less recently is refilled): with tens of thousands of flows live at once, a
 * direct-mapped cache lost 44 % of its tuples to collisions.
 */
export function v4TupleSlot(a: number, pa: number, b: number, pb: number): number {
  const ports = (pa << 16) | pb;
  const h = (Math.imul(a ^ Math.imul(b, 0x9e3779b1) ^ Math.imul(ports, 0x85ebca6b), 0xc2b2ae35) >>> 16) & (SLOTS - 2);
  if (slotA[h] === a && slotB[h] === b && slotPorts[h] === ports && slotKey[h] !== undefined) {
    recent[h >> 1] = 0;
    return h;
  }
  if (slotA[h + 1] === a && slotB[h + 1] === b && slotPorts[h + 1] === ports && slotKey[h + 1] !== undefined) {
    recent[h >> 1] = 1;
    return h + 1;
  }
  const i = recent[h >> 1] === 0 ? h + 1 : h;
  recent[h >> 1] = i - h;
  slotA[i] = a;
  slotB[i] = b;
  slotPorts[i] = ports;
  slotKey[i] = String.fromCharCode(a >>> 16, a & 0xffff, pa, b >>> 16, b & 0xffff, pb);
  slotSrc[i] = v4AddrText(a);
  slotDst[i] = v4AddrText(b);
  return i;
}
/** Per pair of slots, the one used last (0 or 1). */
const recent = new Uint8Array(SLOTS / 2);

export const tupleKey = (slot: number): string => slotKey[slot]!;
export const tupleSrc = (slot: number): string => slotSrc[slot]!;
export const tupleDst = (slot: number): string => slotDst[slot]!;
