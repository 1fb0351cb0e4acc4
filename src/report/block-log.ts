/**
 * Records by number — texts (explain's closed connections' summary blocks, by their place in the
 * capture) or bytes (explain's final flow rows, conntrack/flow-ledger.ts) — kept in large shared
 * chunks: a record costs its bytes and 12 bytes of index, not the objects that made it. Past `held` chunks in memory (explain: 2 MiB), the oldest go
 * to a temporary file unlinked as soon as it is opened — nothing is left behind, even by a killed
 * run — so a capture of a million connections keeps its summary on disk, not in memory.
 */
import { closeSync, openSync, readSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export class BlockLog {
  /** In memory, or null once written to the file (at `base[chunk]`). */
  private readonly chunks: Array<Buffer | null> = [];
  private readonly chunkUsed: number[] = [];
  /** Where each chunk starts in the file: the sizes of the chunks before it. */
  private readonly base: number[] = [];
  private inMemory = 0;
  private used: number;
  /** Per text: its chunk, where in it, how long. */
  private chunkOf = new Uint32Array(1024);
  private start = new Uint32Array(1024);
  private length = new Uint32Array(1024);
  /** The unlinked file's descriptor; -1: none yet, -2: none can be made (everything stays in memory). */
  private fd = -1;
  /** A write failed (no room on the disk): what is not in the file yet stays in memory. */
  private full = false;

  constructor(
    private readonly chunkBytes = 1 << 20,
    private readonly held = 16,
    private readonly dir = tmpdir(),
  ) {
    this.used = chunkBytes;
  }

  /** Chunks written to the file (for tests). */
  get spilled(): number {
    return this.chunks.length - this.inMemory;
  }

  put(n: number, text: string): void {
    const bytes = Buffer.byteLength(text);
    const chunk = this.room(bytes);
    this.chunks[chunk]!.write(text, this.used, 'utf8');
    this.index(n, chunk, bytes);
  }

  /** Record n is the first `length` bytes of src (explain's final flow rows: conntrack/flow-ledger.ts). */
  putBytes(n: number, src: Uint8Array, length: number): void {
    const chunk = this.room(length);
    this.chunks[chunk]!.set(src.subarray(0, length), this.used);
    this.index(n, chunk, length);
  }

  /** Record n's bytes: a view of its chunk in memory, or of it read from the file (valid until the next call). */
  getBytes(n: number): Buffer {
    const chunk = this.chunkOf[n]!;
    const from = this.start[n]!;
    const length = this.length[n]!;
    const inMemory = this.chunks[chunk];
    return inMemory ? inMemory.subarray(from, from + length) : this.read(chunk, from, length);
  }

  /** The chunk the next `bytes` go into (a new one when the last has no room). */
  private room(bytes: number): number {
    if (this.used + bytes > this.chunkBytes) this.newChunk(bytes);
    return this.chunks.length - 1;
  }

  private index(n: number, chunk: number, bytes: number): void {
    while (n >= this.start.length) {
      const grown = (a: Uint32Array) => {
        const b = new Uint32Array(a.length * 2);
        b.set(a);
        return b;
      };
      this.chunkOf = grown(this.chunkOf);
      this.start = grown(this.start);
      this.length = grown(this.length);
    }
    this.chunkOf[n] = chunk;
    this.start[n] = this.used;
    this.length[n] = bytes;
    this.used += bytes;
    this.chunkUsed[chunk] = this.used;
  }

  get(n: number): string {
    const b = this.getBytes(n);
    return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8');
  }

  /** The last chunk read back from the file, whole: records are read mostly in the order they were put. */
  private readChunk = -1;
  private readBuf: Buffer | null = null;
  private readUsed = 0;

  private read(chunk: number, from: number, length: number): Buffer {
    if (chunk !== this.readChunk) {
      const n = this.chunkUsed[chunk]!;
      if (this.readBuf === null || this.readBuf.length < n) this.readBuf = Buffer.allocUnsafeSlow(Math.max(n, this.chunkBytes));
      let got = 0;
      while (got < n) {
        const k = readSync(this.fd, this.readBuf, got, n - got, this.base[chunk]! + got);
        if (k === 0) break;
        got += k;
      }
      this.readChunk = chunk;
      this.readUsed = got;
    }
    return this.readBuf!.subarray(from, Math.min(from + length, this.readUsed));
  }

  /** Let go of the file (its space is freed with its descriptor). */
  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -2;
  }

  private newChunk(bytes: number): void {
    const last = this.chunks.length - 1;
    this.base.push(last < 0 ? 0 : this.base[last]! + this.chunkUsed[last]!);
    // the oldest goes to the file first and its buffer is the new chunk's (a fresh one each time:
    // the spilled ones stayed in memory until the GC got to them)
    if (this.inMemory >= this.held) this.spillOldest();
    const spare = this.spare;
    this.spare = null;
    if (spare === null || spare.length < bytes) this.buffersMade++;
    this.chunks.push(spare !== null && spare.length >= bytes ? spare : Buffer.allocUnsafeSlow(Math.max(this.chunkBytes, bytes)));
    this.chunkUsed.push(0);
    this.inMemory++;
    this.used = 0;
  }

  /** A chunk's buffer once its bytes are in the file, for the next chunk. */
  private spare: Buffer | null = null;
  /** Chunk buffers allocated (for tests: `held` + 1 at most, however many chunks went to the file). */
  buffersMade = 0;

  private spillOldest(): void {
    if (this.fd === -1) this.fd = openUnlinked(this.dir);
    if (this.fd < 0 || this.full) return;
    const k = this.chunks.findIndex((c) => c !== null);
    const c = this.chunks[k]!;
    const n = this.chunkUsed[k]!;
    let put = 0;
    try {
      while (put < n) put += writeSync(this.fd, c, put, n - put, this.base[k]! + put);
    } catch {
      // no room on the disk: keep it, and the rest, in memory (what is in the file stays readable)
      this.full = true;
      return;
    }
    if (c.length === this.chunkBytes) this.spare = c;
    this.chunks[k] = null;
    this.inMemory--;
  }
}

/** A new temporary file, already unlinked: -2 when none can be made. */
function openUnlinked(dir: string): number {
  const path = join(dir, `ctprobe-blocks-${process.pid}-${Math.random().toString(36).slice(2)}`);
  try {
    const fd = openSync(path, 'wx+', 0o600);
    unlinkSync(path);
    return fd;
  } catch {
    return -2;
  }
}
