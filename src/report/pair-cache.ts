/**
 * Pieces of output per endpoint pair (a connection's direction), made once and looked up by the
 * pair: a replay repeats each connection's two directions hundreds of times. Two slots per hash
 * of the ports (the addresses' strings are compared too: a slot is only a cache), the less
 * recently used refilled.
 *
 * Sized by what is live, not by the capture: it starts with 2,048 slots and doubles, up to 32,768
 * (the pairs of 16,000 connections live at once), while more than one lookup in eight misses —
 * a pair's first packet always misses, so a capture of short connections (54 packets each on the
 * bench capture) misses 4 % with a cache that holds every live pair. A fixed 32,768 slots kept
 * 28,000 stale pieces of long-gone connections on a capture with 1,300 live at once: 6 MB here
 * and as much again in the output thread, which keeps a copy of each piece it was sent.
 *
 * A piece is written straight into its slot's 128 bytes of one arena (no string, no buffer of
 * its own per pair); `piece(slot)` is a view of them, made when the slot is filled.
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
  private pieces: Uint8Array[] = [];
  /** Bumped each time a slot's piece changes (a record session sends a slot again when it did); kept across growth. */
  private versions = new Uint32Array(0);
  /** Per pair of slots, the one used last (0 or 1). */
  private recent = new Uint8Array(0);
  /** (The first lookup reviews: it makes the arrays.) */
  private lookups = EndpointPairs.WINDOW - 1;
  private misses = 0;
  /** Room for a piece longer than a slot (never with addresses as the decoder writes them). */
  private readonly scratch = new Uint8Array(1024);

  /**
   * `write` puts the piece of (src:srcPort → dst:dstPort) into b at `at` (room for 1,024 bytes)
   * and returns the position after it. The arrays are made on first use (an output thread
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
    this.misses++;
    const i = this.recent[h >> 1] === 0 ? h + 1 : h;
    this.recent[h >> 1] = i - h;
    this.ports[i] = ports;
    this.src[i] = src;
    this.dst[i] = dst;
    const at = i * EndpointPairs.STRIDE;
    const n = this.write(this.scratch, 0, src, srcPort, dst, dstPort);
    if (n <= EndpointPairs.STRIDE) {
      this.arena.set(this.scratch.subarray(0, n), at);
      this.pieces[i] = this.arena.subarray(at, at + n);
    } else this.pieces[i] = this.scratch.slice(0, n);
    this.versions[i]!++;
    return i;
  }

  piece(slot: number): Uint8Array {
    return this.pieces[slot]!;
  }

  version(slot: number): number {
    return this.versions[slot]!;
  }

  /** How many slots it has now (grows with the pairs live at once). */
  get slots(): number {
    return this.size;
  }

  /** Every WINDOW lookups: double while more than one in eight missed (the first use: make the arrays). */
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
    this.arena = new Uint8Array(n * EndpointPairs.STRIDE);
    this.pieces = new Array<Uint8Array>(n).fill(this.arena.subarray(0, 0));
    this.recent = new Uint8Array(n / 2);
  }
}
