import { TupleCacheSizing } from '../conntrack/tuple-cache-sizing.js';
/** Evicted pairs' ports remembered: more than the most pairs the cache holds, so one that comes back is still known. */
const EVICTED_BITS = 16;

/**
 * Pieces of output per endpoint pair (a connection's direction), made once and looked up by the
 * pair: a replay repeats each connection's two directions hundreds of times. Two slots per hash
 * of the ports (the addresses' strings are compared too: a slot is only a cache), the less
 * recently used refilled.
 *
 * Sized by what is live, not by the capture: it starts with 2,048 slots and doubles, up to 32,768
 * (the pairs of 16,000 connections live at once), while more than one lookup in eight misses a
 * pair the cache had and lost — a pair evicted comes back (its ports are remembered when it is
 * evicted). A pair's first lookup always misses and says nothing of the size: text output looks
 * a pair up only for the few packets it shows, so most of its lookups are first ones, and
 * counting those grew the cache to 32,768 slots (4.5 MB) for 200 connections live at once. A
 * fixed 32,768 slots kept 28,000 stale pieces of long-gone connections on a capture with 1,300
 * live at once: 6 MB here and as much again in the output thread, which keeps a copy of each
 * piece it was sent.
 *
 * A piece is written straight into its slot's 128 bytes of one arena (no string, no buffer and
 * no view of its own per pair: with 16,000 connections live, a view per slot was 3 MB); a renderer
 * copies it with `copy(slot, b, at)`, or reads `bytesOf`, `startOf`, `lengthOf`.
 */
export class EndpointPairs {
  static readonly MIN_SLOTS = 2048;
  static readonly SLOTS = 32768;
  /** Bytes per slot: two IPv6 endpoints with the longest renderer's words around them fit. */
  static readonly STRIDE = 128;
  /** Lookups between two looks at the miss rate. */
  private static readonly WINDOW = 1 << 15;
  private size = 0;
  private src: string[] = [];
  private dst: string[] = [];
  private ports = new Int32Array(0);
  private arena = new Uint8Array(0);
  private lengths = new Uint16Array(0);
  /** Pieces longer than a slot, by slot (never with addresses as the decoder writes them). */
  private readonly long = new Map<number, Uint8Array>();
  private readonly scratch = new Uint8Array(1024);
  /** Bumped each time a slot's piece changes (a record session sends a slot again when it did); kept across growth. */
  private versions = new Uint32Array(0);
  /** Per pair of slots, the one used last (0 or 1). */
  private recent = new Uint8Array(0);
  /** (The first lookup reviews: it makes the arrays.) */
  private lookups = EndpointPairs.WINDOW - 1;
  /** Misses of a pair the cache had held (its ports were in `evicted`) since the last review. */
  private misses = 0;
  /**
   * The ports of pairs evicted, by a hash of them (the last one per hash): a miss whose ports are
   * here is most likely a pair coming back (a pair with the same ports and other addresses
   * counts too: rare, and it only errs toward growing).
   */
  private evicted = new Int32Array(0);

  /**
   * `write` puts the piece of (src:srcPort → dst:dstPort) into b at `at` (room for 1,024 bytes)
   * and returns the position after it: two IPv6 endpoints and a renderer's words fit a slot; a
   * longer piece is kept apart. The arrays are made on first use (an output thread
   * loading a renderer's module never pays for them).
   */
  constructor(private readonly write: (b: Uint8Array, at: number, src: string, srcPort: number, dst: string, dstPort: number) => number) {}

  /** The slot of pair (src:srcPort → dst:dstPort), < SLOTS (a record's u16); its piece made if neither of its two slots held it. */
  slot(src: string, srcPort: number, dst: string, dstPort: number): number {
    if (++this.lookups === EndpointPairs.WINDOW) this.review();
    const ports = (srcPort << 16) | dstPort;
    const h = (Math.imul(ports, 0x9e3779b1) >>> 16) & (this.size - 2);
    if (this.ports[h] === ports && this.src[h] === src && this.dst[h] === dst) {
      this.recent[h >> 1] = 0;
      return h;
    }
    if (this.ports[h + 1] === ports && this.src[h + 1] === src && this.dst[h + 1] === dst) {
      this.recent[h >> 1] = 1;
      return h + 1;
    }
    const e = Math.imul(ports, 0x85ebca6b) >>> (32 - EVICTED_BITS);
    if (this.evicted[e] === ports) this.misses++;
    const i = this.recent[h >> 1] === 0 ? h + 1 : h;
    this.recent[h >> 1] = i - h;
    const gone = this.ports[i]!;
    if (gone !== -1) this.evicted[Math.imul(gone, 0x85ebca6b) >>> (32 - EVICTED_BITS)] = gone;
    this.ports[i] = ports;
    this.src[i] = src;
    this.dst[i] = dst;
    const n = this.write(this.scratch, 0, src, srcPort, dst, dstPort);
    if (n <= EndpointPairs.STRIDE) {
      const a = this.arena;
      const at = i * EndpointPairs.STRIDE;
      for (let k = 0; k < n; k++) a[at + k] = this.scratch[k]!;
      if (this.long.size !== 0) this.long.delete(i);
    } else this.long.set(i, this.scratch.slice(0, n));
    this.lengths[i] = n;
    this.versions[i]!++;
    return i;
  }

  /** Copy slot's piece into b at `at`; returns the position after it. */
  copy(slot: number, b: Uint8Array, at: number): number {
    const n = this.lengths[slot]!;
    const a = n <= EndpointPairs.STRIDE ? this.arena : this.long.get(slot)!;
    const from = n <= EndpointPairs.STRIDE ? slot * EndpointPairs.STRIDE : 0;
    for (let k = 0; k < n; k++) b[at + k] = a[from + k]!;
    return at + n;
  }

  /** The array holding slot's piece, from `startOf(slot)`, `lengthOf(slot)` bytes. */
  bytesOf(slot: number): Uint8Array {
    return this.lengths[slot]! <= EndpointPairs.STRIDE ? this.arena : this.long.get(slot)!;
  }
  startOf(slot: number): number {
    return this.lengths[slot]! <= EndpointPairs.STRIDE ? slot * EndpointPairs.STRIDE : 0;
  }
  lengthOf(slot: number): number {
    return this.lengths[slot]!;
  }

  /** Slot's piece as a view (for tests: a renderer copies it). */
  piece(slot: number): Uint8Array {
    return this.bytesOf(slot).subarray(this.startOf(slot), this.startOf(slot) + this.lengths[slot]!);
  }

  version(slot: number): number {
    return this.versions[slot]!;
  }

  /** How many slots it has now (grows with the pairs live at once). */
  get slots(): number {
    return this.size;
  }

  /** Every WINDOW lookups: double while more than one in eight missed a pair it had lost (the first use: make the arrays). */
  private review(): void {
    const grow = this.size === 0 || (this.misses > this.lookups >> 3 && this.size < EndpointPairs.SLOTS);
    this.lookups = 0;
    this.misses = 0;
    if (grow) this.resize(this.size === 0 ? EndpointPairs.MIN_SLOTS : this.size * 2);
  }

  /** Start over with n slots (what the old ones held is refilled on use; their versions go on counting). */
  private resize(n: number): void {
    const versions = new Uint32Array(n);
    versions.set(this.versions);
    this.versions = versions;
    this.size = n;
    this.src = new Array<string>(n).fill('');
    this.dst = new Array<string>(n).fill('');
    this.ports = new Int32Array(n).fill(-1);
    if (this.evicted.length === 0) this.evicted = new Int32Array(1 << EVICTED_BITS).fill(-1);
    this.arena = new Uint8Array(n * EndpointPairs.STRIDE);
    this.long.clear();
    this.lengths = new Uint16Array(n);
    this.recent = new Uint8Array(n / 2);
  }
}

const v4PairHash = (a: number, b: number, ports: number): number => Math.imul(a ^ Math.imul(b, 0x9e3779b1) ^ Math.imul(ports, 0x85ebca6b), 0xc2b2ae35);

/**
 * The output thread's pieces per IPv4 endpoint pair, by the pair's numbers: a record carries an
 * IPv4 packet's addresses and ports (12 bytes) instead of the main thread looking its pair up by
 * text and sending the piece — with tens of thousands of connections live, that lookup and the
 * pieces sent again for pairs the cache had lost were a sixth of the replay thread's time, which
 * is what bounds a run; the output thread has time to spare. Two slots per hash, the less
 * recently used refilled, sized as the tuple caches are (4,096 slots, doubled up to 65,536 while
 * pairs it held and lost come back: TupleCacheSizing); a slot is 64 bytes of one arena (two IPv4
 * endpoints with a renderer's words: 60 at most). Made on first use.
 */
export class V4EndpointPairs {
  static readonly STRIDE = 64;
  /** Per slot: a, b, ports, 1 when filled. */
  private keys = new Int32Array(0);
  private arena = new Uint8Array(0);
  private lengths = new Uint8Array(0);
  private sizing: TupleCacheSizing | null = null;

  /** `write` puts the piece of (a:pa → b:pb), addresses as int32, into b at `at` (at most STRIDE bytes) and returns the position after it. */
  constructor(private readonly write: (b: Uint8Array, at: number, a: number, pa: number, bAddr: number, pb: number) => number) {}

  /** Copy the piece of (a:pa → b:pb) into out at `at` (made if its slots did not hold it); returns the position after it. */
  copy(a: number, pa: number, b: number, pb: number, out: Uint8Array, at: number): number {
    const sizing = (this.sizing ??= new TupleCacheSizing(1 << 12, 1 << 16, (size) => {
      this.keys = new Int32Array(4 * size);
      this.arena = new Uint8Array(size * V4EndpointPairs.STRIDE);
      this.lengths = new Uint8Array(size);
    }));
    sizing.lookup();
    const ports = (pa << 16) | pb;
    const mix = v4PairHash(a, b, ports);
    const h = (mix >>> 16) & (sizing.size - 2);
    const k = this.keys;
    let i: number;
    if (k[4 * h + 3] === 1 && k[4 * h] === a && k[4 * h + 1] === b && k[4 * h + 2] === ports) {
      sizing.hit(h, h);
      i = h;
    } else if (k[4 * h + 7] === 1 && k[4 * h + 4] === a && k[4 * h + 5] === b && k[4 * h + 6] === ports) {
      sizing.hit(h, h + 1);
      i = h + 1;
    } else {
      i = sizing.refill(h, mix);
      if (k[4 * i + 3] === 1) sizing.evict(v4PairHash(k[4 * i]!, k[4 * i + 1]!, k[4 * i + 2]!));
      k[4 * i] = a;
      k[4 * i + 1] = b;
      k[4 * i + 2] = ports;
      k[4 * i + 3] = 1;
      const start = i * V4EndpointPairs.STRIDE;
      this.lengths[i] = this.write(this.arena, start, a, pa, b, pb) - start;
    }
    const n = this.lengths[i]!;
    const arena = this.arena;
    const from = i * V4EndpointPairs.STRIDE;
    for (let j = 0; j < n; j++) out[at + j] = arena[from + j]!;
    return at + n;
  }

  /** How many slots it has now (grows with the pairs live at once). */
  get slots(): number {
    return this.sizing?.size ?? 0;
  }
}
