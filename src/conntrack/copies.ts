/**
 * Copies of one packet in a capture taken on several interfaces at once (`tcpdump -i any` on a NAT
 * host shows a forwarded packet on the bridge port, the bridge and the uplink; before and after NAT).
 * conntrack sees the packet once. A copy is recognised by identity — what NAT does not rewrite: the
 * IPv4 ID, seq, ack, flags, payload length, window and TCP timestamp — not by a time window (copies
 * were up to 12 ms apart in slow guests). A retransmission can have the same identity (IPv6 has no
 * ID, the kernel's own RSTs and SYN/ACKs carry ID 0, not every segment has a timestamp) but passes
 * the same interfaces again: with the capture's
 * position of each copy (Linux cooked v2: interface index and packet type), a packet seen again at
 * a position its identity already passed is a new transmission. Without positions (cooked v1, other
 * link types) copies must fall within POSITIONLESS_HORIZON_S, below TCP's minimum retransmission
 * timeout (200 ms).
 *
 * Every packet of such a capture is remembered for POSITION_HORIZON_S of capture time, so what one
 * costs is what a large capture of a busy host pays: a packet is numbers in typed arrays (a ring,
 * in the order remembered, and a hash of its identity chaining the ring's entries), no text and no
 * object — as a string key and an object per packet, the collector's work was more than half of a
 * replay of a `tcpdump -i any` capture.
 */
import { LINKTYPE, type PacketRecord } from '../capture/reader.js';

/**
 * How long copies with positions may be apart: far beyond a slow guest's 12 ms, and beyond IPv6
 * neighbour resolution holding a packet (~1 s) before its last copy leaves.
 */
export const POSITION_HORIZON_S = 3;
/** How long copies without positions may be apart. */
export const POSITIONLESS_HORIZON_S = 0.05;

/** Where a record was captured: interface index × 8 + packet type (cooked v2), else -1 (unknown). */
export function capturePosition(rec: PacketRecord): number {
  if (rec.linkType !== LINKTYPE.LINUX_SLL2 || rec.capLen < 11) return -1;
  const d = rec.buf;
  const o = rec.dataOffset;
  const ifindex = ((d[o + 4]! << 24) | (d[o + 5]! << 16) | (d[o + 6]! << 8) | d[o + 7]!) >>> 0;
  return ifindex * 8 + (d[o + 10]! & 7);
}

/**
 * A packet's identity, as `PacketCopies.copyOf` takes it: IPv4 ID (or `IDENTITY_V6`) and flags in
 * one number, the window and whether a timestamp was read in another.
 */
export const IDENTITY_V6 = 0x10000;
export const HAS_TIMESTAMP = 0x10000;
export const identityHead = (ipId: number, v6: boolean, flags: number): number => (v6 ? IDENTITY_V6 : ipId & 0xffff) | ((flags & 0xff) << 17);

/** A hash of an identity (its bucket: the low bits). */
function identityHash(head: number, seq: number, ack: number, len: number, win: number, tsv: number): number {
  const h = Math.imul(head ^ Math.imul(seq, 0x9e3779b1) ^ Math.imul(ack, 0x85ebca6b) ^ Math.imul(len ^ (win << 12), 0xc2b2ae35) ^ tsv, 0x27d4eb2d);
  return h ^ (h >>> 15);
}

/** A ring entry's row: identity, positions counted, ports (see `rows`). */
const ROW = 8;
const HEAD = 0;
const SEQ = 1;
const ACK = 2;
const LEN = 3;
const WIN = 4;
const TSV = 5;
const COUNT = 6;
const PORTS = 7;

/** Positions kept in the ring per packet (interfaces a packet crosses); more go to a map. */
const POSITIONS = 6;
const MIN_CAPACITY = 1024;

interface Tuple {
  src: string;
  sport: number;
  dst: string;
  dport: number;
}

/**
 * The packets seen in the last POSITION_HORIZON_S, by identity. `copyOf` looks a packet up (and
 * keeps its identity), `remember` then adds it with what its first copy resolved to: a binding
 * (`B`), the direction and its tuple. Entries are numbered in the order remembered; the ring holds
 * the newest, the oldest is let go when its room is needed and it is past the horizon (else the
 * ring doubles): what is held is the packets of the last few seconds, not the capture.
 */
export class PacketCopies<B extends object> {
  private capacity = 0;
  private mask = -1;
  /** Entries ever remembered (the next one's number) and the oldest still held. */
  private next = 0;
  private oldest = 0;
  private ts = new Float64Array(0);
  /**
   * Per entry a row of ROW int32: its identity (head, seq, ack, length, window, timestamp), the
   * count of its positions and its tuple's ports — one cache line for what a lookup compares
   * (an array per field was a cache miss per field: most records of a NAT host's capture match).
   */
  private rows = new Int32Array(0);
  private positions = new Int32Array(0);
  /** Positions past POSITIONS, by entry number (a packet through more interfaces than that: rare). */
  private readonly more = new Map<number, number[]>();
  private dir = new Uint8Array(0);
  private src: string[] = [];
  private dst: string[] = [];
  private binding: Array<B | null> = [];
  /** Per hash bucket the newest entry's number (−1: none); per entry the one before it in its bucket. */
  private buckets = new Float64Array(0);
  private chain = new Float64Array(0);
  /** The packet's time (set before `copyOf`: a float passed to a call V8 does not inline is boxed, two per packet). */
  now = 0;
  // the identity `copyOf` was last given, for `remember`
  private pHead = 0;
  private pSeq = 0;
  private pAck = 0;
  private pLen = 0;
  private pWin = 0;
  private pTsv = 0;
  private pBucket = 0;

  /** Entries held (for tests: bounded by the packets of the horizon, not by the capture). */
  get size(): number {
    return this.next - this.oldest;
  }

  /** Room in the ring (for tests). */
  get room(): number {
    return this.capacity;
  }

  /**
   * If this packet (its identity: `identityHead`, seq and ack as int32, payload length, window |
   * HAS_TIMESTAMP when a timestamp was read, the timestamp as int32), seen at time `now`, is a copy
   * of one remembered before, note its position and return the first copy's number (for
   * `bindingOf`, `dirOf`, `firstTupleInto`); else −1 (call `remember` once it is processed).
   */
  copyOf(head: number, seq: number, ack: number, len: number, win: number, tsv: number, position: number): number {
    const ts = this.now;
    this.pHead = head;
    this.pSeq = seq;
    this.pAck = ack;
    this.pLen = len;
    this.pWin = win;
    this.pTsv = tsv;
    if (this.capacity === 0) this.resize(MIN_CAPACITY);
    const bucket = identityHash(head, seq, ack, len, win, tsv) & (this.buckets.length - 1);
    this.pBucket = bucket;
    // newest first: the latest remembered with this identity is the one a copy is of
    for (let n = this.buckets[bucket]!; n >= this.oldest; n = this.chain[n & this.mask]!) {
      const i = n & this.mask;
      const r = i * ROW;
      const rows = this.rows;
      if (rows[r + SEQ] !== seq || rows[r + HEAD] !== head || rows[r + ACK] !== ack || rows[r + LEN] !== len || rows[r + WIN] !== win || rows[r + TSV] !== tsv) continue;
      // (apart by more than the horizon either way: a capture's clock may step back)
      if (Math.abs(ts - this.ts[i]!) > (position < 0 ? POSITIONLESS_HORIZON_S : POSITION_HORIZON_S)) return -1;
      if (position >= 0) {
        const c = rows[r + COUNT]!;
        const at = i * POSITIONS;
        for (let k = 0; k < c && k < POSITIONS; k++) if (this.positions[at + k] === position) return -1; // passed here before: a new transmission
        if (c < POSITIONS) this.positions[at + c] = position;
        else {
          const more = this.more.get(n);
          if (more?.includes(position)) return -1;
          if (more) more.push(position);
          else this.more.set(n, [position]);
        }
        if (c <= POSITIONS) rows[r + COUNT] = c + 1;
      }
      return n;
    }
    return -1;
  }

  /** What the first copy `n` resolved to. */
  bindingOf(n: number): B | null {
    return this.binding[n & this.mask]!;
  }
  dirOf(n: number): 0 | 1 {
    return this.dir[n & this.mask] as 0 | 1;
  }
  /** Whether the first copy `n` had tuple t. */
  sameTuple(n: number, t: Tuple): boolean {
    const i = n & this.mask;
    return this.rows[i * ROW + PORTS] === ((t.sport << 16) | t.dport) && this.src[i] === t.src && this.dst[i] === t.dst;
  }
  /** The first copy's tuple, into `t` (a scratch tuple: what keeps it copies it). */
  firstTupleInto(n: number, t: Tuple): Tuple {
    const i = n & this.mask;
    const p = this.rows[i * ROW + PORTS]!;
    t.src = this.src[i]!;
    t.sport = p >>> 16;
    t.dst = this.dst[i]!;
    t.dport = p & 0xffff;
    return t;
  }

  /** Remember the packet `copyOf` was last given (seen at `position`, time `now`), which resolved to `binding` in direction `dir`, with tuple t. */
  remember(position: number, binding: B | null, dir: 0 | 1, t: Tuple): void {
    const ts = this.now;
    if (this.next - this.oldest === this.capacity) {
      // full: the oldest goes if it is past the horizon (either way: after the capture's clock
      // stepped back, what came before is past it too), else the ring doubles
      if (Math.abs(ts - this.ts[this.oldest & this.mask]!) > POSITION_HORIZON_S) this.letGo();
      else this.resize(this.capacity * 2);
    }
    const n = this.next++;
    const i = n & this.mask;
    this.ts[i] = ts;
    const r = i * ROW;
    const rows = this.rows;
    rows[r + HEAD] = this.pHead;
    rows[r + SEQ] = this.pSeq;
    rows[r + ACK] = this.pAck;
    rows[r + LEN] = this.pLen;
    rows[r + WIN] = this.pWin;
    rows[r + TSV] = this.pTsv;
    rows[r + COUNT] = position >= 0 ? 1 : 0;
    rows[r + PORTS] = (t.sport << 16) | t.dport;
    this.positions[i * POSITIONS] = position;
    this.binding[i] = binding;
    this.dir[i] = dir;
    this.src[i] = t.src;
    this.dst[i] = t.dst;
    this.chain[i] = this.buckets[this.pBucket]!;
    this.buckets[this.pBucket] = n;
  }

  /** Let the oldest entry go (its number falls below `oldest`: chains stop there). */
  private letGo(): void {
    const n = this.oldest++;
    const i = n & this.mask;
    this.binding[i] = null;
    if (this.rows[i * ROW + COUNT]! > POSITIONS) this.more.delete(n);
  }

  /** Make room for `capacity` entries (a power of two), keeping those held at their numbers. */
  private resize(capacity: number): void {
    const old = { mask: this.mask, ts: this.ts, rows: this.rows, positions: this.positions, dir: this.dir, src: this.src, dst: this.dst, binding: this.binding };
    this.capacity = capacity;
    this.mask = capacity - 1;
    this.ts = new Float64Array(capacity);
    this.rows = new Int32Array(capacity * ROW);
    this.positions = new Int32Array(capacity * POSITIONS);
    this.dir = new Uint8Array(capacity);
    this.src = new Array<string>(capacity).fill('');
    this.dst = new Array<string>(capacity).fill('');
    this.binding = new Array<B | null>(capacity).fill(null);
    this.chain = new Float64Array(capacity);
    this.buckets = new Float64Array(capacity * 2).fill(-1);
    const bucketMask = this.buckets.length - 1;
    const rows = this.rows;
    for (let n = this.oldest; n < this.next; n++) {
      const from = n & old.mask;
      const i = n & this.mask;
      this.ts[i] = old.ts[from]!;
      rows.set(old.rows.subarray(from * ROW, (from + 1) * ROW), i * ROW);
      this.positions.set(old.positions.subarray(from * POSITIONS, (from + 1) * POSITIONS), i * POSITIONS);
      this.dir[i] = old.dir[from]!;
      this.src[i] = old.src[from]!;
      this.dst[i] = old.dst[from]!;
      this.binding[i] = old.binding[from]!;
      // (re-chained oldest first: newest first again)
      const r = i * ROW;
      const bucket = identityHash(rows[r + HEAD]!, rows[r + SEQ]!, rows[r + ACK]!, rows[r + LEN]!, rows[r + WIN]!, rows[r + TSV]!) & bucketMask;
      this.chain[i] = this.buckets[bucket]!;
      this.buckets[bucket] = n;
    }
    // the identity copyOf was given last: its bucket in the new table (for remember)
    this.pBucket = identityHash(this.pHead, this.pSeq, this.pAck, this.pLen, this.pWin, this.pTsv) & bucketMask;
  }
}
