/**
 * Classic pcap writer: raw IP (101) or Ethernet (1) frames (any link type number is accepted),
 * microsecond or nanosecond timestamps, little-endian by default. In memory (`toBuffer`) or
 * streamed to a file (`PcapWriter.create(path)`: 1 MiB batches written synchronously).
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { UsageError } from '../errors.js';

export interface PcapWriterOptions {
  /** LINKTYPE_* of every packet: 101 raw IP (default), 1 Ethernet, … */
  linkType?: number;
  /** Nanosecond timestamps (magic 0xa1b23c4d) instead of microseconds. */
  nanosecond?: boolean;
  /** Header snaplen (default 262144). Longer packets are truncated to it on write. */
  snaplen?: number;
  /** Write big-endian headers (default little-endian). */
  bigEndian?: boolean;
}

const FLUSH_AT = 1 << 20;

/**
 * A timestamp: float seconds, or exact nanoseconds as a bigint.
 * Float seconds are rounded to the file's resolution.
 */
export type Timestamp = number | bigint;

export class PcapWriter {
  readonly linkType: number;
  readonly nanosecond: boolean;
  readonly snaplen: number;
  private readonly le: boolean;
  private buf: Buffer;
  private len = 0;
  private fd: number | null = null;
  private closed = false;
  /** Packets written. */
  packets = 0;
  /** Bytes written (header included), flushed or not. */
  bytes = 0;

  constructor(opts: PcapWriterOptions = {}) {
    this.linkType = opts.linkType ?? 101;
    this.nanosecond = opts.nanosecond === true;
    this.snaplen = opts.snaplen ?? 262144;
    this.le = opts.bigEndian !== true;
    if (!Number.isInteger(this.snaplen) || this.snaplen <= 0) throw new UsageError(`bad snaplen ${opts.snaplen}`);
    this.buf = Buffer.allocUnsafe(64 * 1024);
    this.writeHeader();
  }

  /** A writer streaming to `path` (created or truncated). Call close() at the end. */
  static create(path: string, opts: PcapWriterOptions = {}): PcapWriter {
    const w = new PcapWriter(opts);
    w.fd = openSync(path, 'w');
    w.flush();
    return w;
  }

  /** The bytes of a whole pcap file holding `packets`. */
  static toBuffer(packets: Iterable<{ data: Uint8Array; ts: Timestamp; origLen?: number }>, opts: PcapWriterOptions = {}): Buffer {
    const w = new PcapWriter(opts);
    for (const p of packets) w.writePacket(p.data, p.ts, p.origLen);
    return w.toBuffer();
  }

  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    if (this.fd !== null) {
      this.flush();
      if (n <= this.buf.length) return;
    }
    const nb = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.len + n, FLUSH_AT));
    this.buf.copy(nb, 0, 0, this.len);
    this.buf = nb;
  }

  private u32(v: number): void {
    if (this.le) this.buf.writeUInt32LE(v >>> 0, this.len);
    else this.buf.writeUInt32BE(v >>> 0, this.len);
    this.len += 4;
  }

  private u16(v: number): void {
    if (this.le) this.buf.writeUInt16LE(v, this.len);
    else this.buf.writeUInt16BE(v, this.len);
    this.len += 2;
  }

  private writeHeader(): void {
    this.ensure(24);
    this.u32(this.nanosecond ? 0xa1b23c4d : 0xa1b2c3d4);
    this.u16(2);
    this.u16(4);
    this.u32(0); // thiszone
    this.u32(0); // sigfigs
    this.u32(this.snaplen);
    this.u32(this.linkType);
    this.bytes += 24;
  }

  /** Append one packet. `origLen` defaults to data.length; data beyond snaplen is cut. */
  writePacket(data: Uint8Array, ts: Timestamp, origLen = data.length): void {
    if (this.closed) throw new UsageError('PcapWriter: write after close');
    const capLen = Math.min(data.length, this.snaplen);
    let sec: number;
    let frac: number;
    const scale = this.nanosecond ? 1e9 : 1e6;
    if (typeof ts === 'bigint') {
      sec = Number(ts / 1_000_000_000n);
      const ns = Number(ts % 1_000_000_000n);
      frac = this.nanosecond ? ns : Math.floor(ns / 1000);
    } else {
      sec = Math.floor(ts);
      frac = Math.round((ts - sec) * scale);
      if (frac >= scale) {
        sec += 1;
        frac -= scale;
      }
    }
    this.ensure(16 + capLen);
    this.u32(sec);
    this.u32(frac);
    this.u32(capLen);
    this.u32(Math.max(origLen, capLen));
    this.buf.set(capLen === data.length ? data : data.subarray(0, capLen), this.len);
    this.len += capLen;
    this.packets++;
    this.bytes += 16 + capLen;
    if (this.fd !== null && this.len >= FLUSH_AT) this.flush();
  }

  private flush(): void {
    if (this.fd === null || this.len === 0) return;
    let off = 0;
    while (off < this.len) off += writeSync(this.fd, this.buf, off, this.len - off);
    this.len = 0;
    if (this.buf.length < FLUSH_AT) this.buf = Buffer.allocUnsafe(FLUSH_AT + 65536);
  }

  /** The file so far (in-memory writers only). */
  toBuffer(): Buffer {
    if (this.fd !== null) throw new UsageError('PcapWriter: toBuffer() on a file writer');
    return Buffer.from(this.buf.subarray(0, this.len));
  }

  /** Flush and close the file (no-op for in-memory writers). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.fd !== null) {
      this.flush();
      closeSync(this.fd);
      this.fd = null;
    }
  }
}
