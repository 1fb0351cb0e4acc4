/**
 * IPv6 4-tuples seen recently, read from the packet's bytes: the v4tuples cache for IPv6. A slot
 * holds the tuple's addresses (as eight int32 words) and ports, its directional key and model
 * table key (the text forms `dirKeyOf` and `flowKey` make) and its two addresses as text (RFC
 * 5952), so a packet of a known tuple builds no string: formatting two IPv6 addresses and two keys
 * per packet was four fifths of the garbage of an IPv6 replay. A slot is overwritten on
 * collision: a cache, never the only copy of anything.
 */
import { ipv6ToString } from '../packet/address.js';
import { flowKey } from './model.js';
import { TupleCacheSizing } from './tuple-cache-sizing.js';

let words = new Int32Array(0);
let slotPorts = new Int32Array(0);
let slotKey: Array<string | undefined> = [];
let slotFlowKey: string[] = [];
let slotSrc: string[] = [];
let slotDst: string[] = [];
/** 4,096 slots, doubled up to 65,536 (see TupleCacheSizing). */
const sizing = new TupleCacheSizing(1 << 12, 1 << 16, (size) => {
  words = new Int32Array(size * 8);
  slotPorts = new Int32Array(size);
  slotKey = new Array<string | undefined>(size).fill(undefined);
  slotFlowKey = new Array<string>(size).fill('');
  slotSrc = new Array<string>(size).fill('');
  slotDst = new Array<string>(size).fill('');
});

const word = (b: Uint8Array, o: number): number => (b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!;

/**
 * Address texts by the address (direct-mapped, 1,024): tuples share addresses (a server's, a
 * client's many ports), so a new tuple mostly finds its two texts made.
 */
const ADDRS = 1024;
const addrWords = new Int32Array(ADDRS * 4);
const addrTexts: Array<string | undefined> = new Array<string | undefined>(ADDRS).fill(undefined);

function addrText(b: Uint8Array, o: number): string {
  const w0 = word(b, o);
  const w1 = word(b, o + 4);
  const w2 = word(b, o + 8);
  const w3 = word(b, o + 12);
  const h = (Math.imul(w0 ^ Math.imul(w1, 0x9e3779b1) ^ Math.imul(w2, 0x85ebca6b) ^ Math.imul(w3, 0xc2b2ae35), 0x27d4eb2d) >>> 22) & (ADDRS - 1);
  const at = h * 4;
  let t = addrTexts[h];
  if (t === undefined || addrWords[at] !== w0 || addrWords[at + 1] !== w1 || addrWords[at + 2] !== w2 || addrWords[at + 3] !== w3) {
    t = ipv6ToString(b, o);
    addrTexts[h] = t;
    addrWords[at] = w0;
    addrWords[at + 1] = w1;
    addrWords[at + 2] = w2;
    addrWords[at + 3] = w3;
  }
  return t;
}

/** The hash of a tuple: its ports and its addresses' eight words. */
function tupleHash(ports: number, s0: number, s1: number, s2: number, s3: number, t0: number, t1: number, t2: number, t3: number): number {
  let mix = Math.imul(ports, 0x85ebca6b);
  mix = Math.imul(mix ^ s0, 0x9e3779b1) ^ Math.imul(t0, 0xc2b2ae35);
  mix = Math.imul(mix ^ s1, 0x9e3779b1) ^ Math.imul(t1, 0xc2b2ae35);
  mix = Math.imul(mix ^ s2, 0x9e3779b1) ^ Math.imul(t2, 0xc2b2ae35);
  mix = Math.imul(mix ^ s3, 0x9e3779b1) ^ Math.imul(t3, 0xc2b2ae35);
  return mix ^ (mix >>> 15);
}

/**
 * The slot of the tuple whose source address is b[s…s+16) with port ps, destination b[t…t+16)
 * with port pt, filled if it held another tuple. Read it with `v6TupleKey`, `v6FlowKey`,
 * `v6TupleSrc`, `v6TupleDst` before the next call.
 */
export function v6TupleSlot(b: Uint8Array, s: number, ps: number, t: number, pt: number): number {
  sizing.lookup();
  // (the words read once, into locals: hashed, then compared)
  const s0 = word(b, s);
  const s1 = word(b, s + 4);
  const s2 = word(b, s + 8);
  const s3 = word(b, s + 12);
  const t0 = word(b, t);
  const t1 = word(b, t + 4);
  const t2 = word(b, t + 8);
  const t3 = word(b, t + 12);
  const ports = (ps << 16) | pt;
  const mix = tupleHash(ports, s0, s1, s2, s3, t0, t1, t2, t3);
  const h = (mix >>> 16) & (sizing.size - 2);
  for (let i = h; i < h + 2; i++) {
    const w = i * 8;
    if (slotPorts[i] === ports && words[w + 3] === s3 && words[w + 7] === t3 && words[w] === s0 && words[w + 1] === s1 && words[w + 2] === s2 && words[w + 4] === t0 && words[w + 5] === t1 && words[w + 6] === t2 && slotKey[i] !== undefined) {
      sizing.hit(h, i);
      return i;
    }
  }
  const i = sizing.refill(h, mix);
  const w = i * 8;
  if (slotKey[i] !== undefined) sizing.evict(tupleHash(slotPorts[i]!, words[w]!, words[w + 1]!, words[w + 2]!, words[w + 3]!, words[w + 4]!, words[w + 5]!, words[w + 6]!, words[w + 7]!));
  words[w] = s0;
  words[w + 1] = s1;
  words[w + 2] = s2;
  words[w + 3] = s3;
  words[w + 4] = t0;
  words[w + 5] = t1;
  words[w + 6] = t2;
  words[w + 7] = t3;
  slotPorts[i] = ports;
  const src = addrText(b, s);
  const dst = addrText(b, t);
  slotSrc[i] = src;
  slotDst[i] = dst;
  // (the very texts dirKeyOf and flowKey make of the tuple)
  slotKey[i] = `${src}|${ps}>${dst}|${pt}`;
  slotFlowKey[i] = flowKey({ src, srcPort: ps, dst, dstPort: pt });
  return i;
}

export const v6TupleKey = (slot: number): string => slotKey[slot]!;
export const v6FlowKey = (slot: number): string => slotFlowKey[slot]!;
export const v6TupleSrc = (slot: number): string => slotSrc[slot]!;
export const v6TupleDst = (slot: number): string => slotDst[slot]!;
/** How many slots the cache has now. */
export const v6TupleCacheSlots = (): number => sizing.size;
