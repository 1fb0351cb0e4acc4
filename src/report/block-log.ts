/**
 * Texts by number (explain's closed connections' summary blocks, by their place in the capture),
 * kept as UTF-8 in large shared chunks: a closed connection costs its block's bytes and 12 bytes
 * of index, not the objects that traced it. Past `held` chunks in memory (16 MiB), the oldest go
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
    if (this.used + bytes > this.chunkBytes) this.newChunk(bytes);
    const chunk = this.chunks.length - 1;
    this.chunks[chunk]!.write(text, this.used, 'utf8');
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
    const chunk = this.chunkOf[n]!;
    const from = this.start[n]!;
    const length = this.length[n]!;
    const inMemory = this.chunks[chunk];
    if (inMemory) return inMemory.toString('utf8', from, from + length);
    const at = this.base[chunk]! + from;
    const b = Buffer.allocUnsafe(length);
    let got = 0;
    while (got < length) {
      const k = readSync(this.fd, b, got, length - got, at + got);
      if (k === 0) break;
      got += k;
    }
    return b.toString('utf8', 0, got);
  }

  /** Let go of the file (its space is freed with its descriptor). */
  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -2;
  }

  private newChunk(bytes: number): void {
    const last = this.chunks.length - 1;
    this.base.push(last < 0 ? 0 : this.base[last]! + this.chunkUsed[last]!);
    this.chunks.push(Buffer.allocUnsafeSlow(Math.max(this.chunkBytes, bytes)));
    this.chunkUsed.push(0);
    this.inMemory++;
    this.used = 0;
    if (this.inMemory > this.held) this.spillOldest();
  }

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
