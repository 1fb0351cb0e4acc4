/**
 * What the tuple caches (v4tuples, v6tuples) share: two slots per hash, the one used less
 * recently refilled, and their size. A cache starts small and doubles, up to its most, while more
 * than one lookup in eight misses a tuple it held and lost (the hashes of evicted tuples are kept
 * by their high bits, the last one per index: a miss found there is a tuple coming back). A
 * tuple's first lookup always misses and says nothing of the size: a SYN flood, every packet a new
 * tuple, does not grow it, and a cache holds what is live at once, not the capture.
 */
/** Lookups between two looks at the miss rate. */
const WINDOW = 1 << 15;
const EVICTED_BITS = 16;

export class TupleCacheSizing {
  /** Slots now (a power of two). */
  size: number;
  /** Per pair of slots, the one used last (0 or 1). */
  private recent: Uint8Array;
  private readonly evicted = new Int32Array(1 << EVICTED_BITS);
  private lookups = 0;
  private misses = 0;

  /** `grow(size)` (re)makes the cache's arrays for `size` slots, empty: now, for `min`, and as it doubles. */
  constructor(
    min: number,
    private readonly max: number,
    private readonly grow: (size: number) => void,
  ) {
    this.size = min;
    this.recent = new Uint8Array(min / 2);
    grow(min);
  }

  /** A lookup begins (may grow the cache: then its slots are empty). */
  lookup(): void {
    if (++this.lookups === WINDOW) this.review();
  }

  /** Slot i of the pair at h was found: it is the more recent one. */
  hit(h: number, i: number): void {
    this.recent[h >> 1] = i - h;
  }

  /** A tuple with hash `mix` was not found in the pair at h: the slot to refill (the less recent). */
  refill(h: number, mix: number): number {
    if (this.evicted[mix >>> (32 - EVICTED_BITS)] === mix) this.misses++;
    const i = this.recent[h >> 1] === 0 ? h + 1 : h;
    this.recent[h >> 1] = i - h;
    return i;
  }

  /** The tuple with hash `mix` is evicted from its slot. */
  evict(mix: number): void {
    this.evicted[mix >>> (32 - EVICTED_BITS)] = mix;
  }

  private review(): void {
    if (this.misses > this.lookups >> 3 && this.size < this.max) {
      this.size *= 2;
      this.recent = new Uint8Array(this.size / 2);
      this.grow(this.size);
    }
    this.lookups = 0;
    this.misses = 0;
  }
}
