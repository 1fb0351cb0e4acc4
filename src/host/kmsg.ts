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

  /** Records appended since the previous call. */
  drain(): KmsgRecord[] {
    const out: KmsgRecord[] = [];
    if (this.fd < 0) return out;
    for (let guard = 0; guard < 1_000_000; guard++) {
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
