/**
 * The kernel log through /dev/kmsg: `drain()` returns the records appended since the last call
 * (the first call skips what was already there). Non-blocking; one record per read.
 */
import { closeSync, constants, openSync, readSync } from 'node:fs';

export interface KmsgRecord {
  seq: number;
  /** Microseconds since boot. */
  usec: number;
  priority: number;
  text: string;
}

export function parseKmsgRecord(raw: string): KmsgRecord | null {
  const semi = raw.indexOf(';');
  if (semi < 0) return null;
  const [prio, seq, usec] = raw.slice(0, semi).split(',');
  const text = raw.slice(semi + 1).split('\n')[0] ?? '';
  return { seq: Number(seq), usec: Number(usec), priority: Number(prio) & 7, text };
}

export class KernelLog {
  private fd: number;
  private readonly buf = Buffer.alloc(8192);
  private lastSeq = -1;
  /** Records lost since open: overwritten before they were read (sequence numbers skipped). */
  missed = 0;

  private constructor(fd: number) {
    this.fd = fd;
  }

  /** Open /dev/kmsg positioned after the existing records; null when it cannot be read. */
  static open(): KernelLog | null {
    let fd: number;
    try {
      fd = openSync('/dev/kmsg', constants.O_RDONLY | constants.O_NONBLOCK);
    } catch {
      return null;
    }
    const k = new KernelLog(fd);
    k.drain();
    return k;
  }

  /**
   * Records appended since the previous call, at most `max` (a reader that keeps up with a flood
   * only up to a budget: the kernel overwrites the rest, counted in `missed`).
   */
  drain(max = 1_000_000): KmsgRecord[] {
    const out: KmsgRecord[] = [];
    if (this.fd < 0) return out;
    for (let guard = 0; guard < max; guard++) {
      let n: number;
      try {
        n = readSync(this.fd, this.buf, 0, this.buf.length, null);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EPIPE') continue; // records were overwritten under us: go on with the next
        break; // EAGAIN: nothing more
      }
      if (n <= 0) break;
      const rec = parseKmsgRecord(this.buf.toString('utf8', 0, n));
      if (rec && rec.seq > this.lastSeq) {
        if (this.lastSeq >= 0 && rec.seq > this.lastSeq + 1) this.missed += rec.seq - this.lastSeq - 1;
        this.lastSeq = rec.seq;
        out.push(rec);
      }
    }
    return out;
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}
