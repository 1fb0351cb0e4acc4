/**
 * Pieces of output per endpoint pair (a connection's direction), made once and looked up by the
 * pair: a replay repeats each connection's two directions hundreds of times. Two slots per hash
 * of the ports (the addresses' strings are compared too: a slot is only a cache), the less
 * recently used refilled. 32,768 slots: the pairs of 16,000 connections live at once (16,384
 * direct-mapped slots missed 86 % of the packets of 16,000 live flows; 65,536 slots ran those 24 %
 * faster but kept 5 MB more of stale pieces on a capture with 200 live at once). The arrays are
 * made on first use (an output thread loading a renderer's module never pays for them).
 */
export class EndpointPairs {
  static readonly SLOTS = 32768;
  private src: string[] = [];
  private dst: string[] = [];
  private ports = new Int32Array(0);
  private pieces: Uint8Array[] = [];
  /** Bumped each time a slot's piece changes (a record session sends a slot again when it did). */
  private versions = new Uint32Array(0);
  /** Per pair of slots, the one used last (0 or 1). */
  private recent = new Uint8Array(0);

  constructor(private readonly make: (src: string, srcPort: number, dst: string, dstPort: number) => Uint8Array) {}

  /** The slot of pair (src:srcPort → dst:dstPort), < SLOTS (a record's u16); its piece made if neither of its two slots held it. */
  slot(src: string, srcPort: number, dst: string, dstPort: number): number {
    if (this.recent.length === 0) this.allocate();
    const ports = (srcPort << 16) | dstPort;
    const h = (Math.imul(ports, 0x9e3779b1) >>> 16) & (EndpointPairs.SLOTS - 2);
    if (this.ports[h] === ports && this.src[h] === src && this.dst[h] === dst) {
      this.recent[h >> 1] = 0;
      return h;
    }
    if (this.ports[h + 1] === ports && this.src[h + 1] === src && this.dst[h + 1] === dst) {
      this.recent[h >> 1] = 1;
      return h + 1;
    }
    const i = this.recent[h >> 1] === 0 ? h + 1 : h;
    this.recent[h >> 1] = i - h;
    this.ports[i] = ports;
    this.src[i] = src;
    this.dst[i] = dst;
    this.pieces[i] = this.make(src, srcPort, dst, dstPort);
    this.versions[i]!++;
    return i;
  }

  piece(slot: number): Uint8Array {
    return this.pieces[slot]!;
  }

  version(slot: number): number {
    return this.versions[slot]!;
  }

  private allocate(): void {
    const n = EndpointPairs.SLOTS;
    this.src = new Array<string>(n).fill('');
    this.dst = new Array<string>(n).fill('');
    this.ports = new Int32Array(n).fill(-1);
    this.pieces = new Array<Uint8Array>(n).fill(new Uint8Array(0));
    this.versions = new Uint32Array(n);
    this.recent = new Uint8Array(n / 2);
  }
}
