/**
 * The output thread of offload.ts: take published slots in order, copy their bytes and expand
 * their records into a buffer, write it to the file descriptor; write what it holds whenever it
 * waits, so lines reach a reader as soon as the producer publishes them.
 */
import { writeSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { CONSUMED, ENDED, ERRNO, FAILED, get16, LENGTHS, LITERAL, PIECE, PieceStore, PUBLISHED, RECORD, SLOT_BYTES, SLOT_COUNT, STATE, WAKE_MAIN, WAKE_WORKER, type ExpandRecord, type ExpandSink, type OffloadData } from './offload.js';

const data = workerData as OffloadData;
const control = new Int32Array(data.control);
const slots = Array.from({ length: SLOT_COUNT }, (_, k) => new Uint8Array(data.slots, k * SLOT_BYTES, SLOT_BYTES));
/** The renderer's expander; none: slots are copied as they are (any byte may be in them). */
const expandRecord = data.expander ? ((await import(data.expander)) as { expandRecord: ExpandRecord }).expandRecord : null;
const pause = new Int32Array(new SharedArrayBuffer(4));
parentPort?.postMessage('ready');

/** What is written at once (and the most a record may expand to is far below it). */
const OUT_BYTES = 1 << 20;

/** How long to wait for a full pipe: doubled while it stays full, halved after each write it takes (a reader's pace). */
let backoff = 0.02;

class Sink implements ExpandSink {
  buf = Buffer.allocUnsafe(OUT_BYTES);
  used = 0;
  room(n: number): Uint8Array {
    if (this.used + n > OUT_BYTES) this.flush();
    return this.buf;
  }
  flush(): void {
    let off = 0;
    while (off < this.used) {
      try {
        off += writeSync(data.fd, this.buf, off, this.used - off);
        backoff = Math.max(0.02, backoff / 2);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
        // A pipe is non-blocking (libuv's): wait for the reader, up to 1 ms at a time. Never
        // blocked in write(2): a thread stuck there could not be stopped, and exit (Ctrl-C with a
        // reader that reads nothing) waits for every thread.
        Atomics.wait(pause, 0, 0, backoff);
        backoff = Math.min(1, backoff * 2);
      }
    }
    this.used = 0;
  }
}

const out = new Sink();
/** The pieces the records name, by table and id (RecordPieces). */
const pieces = new PieceStore();

function wakeMain(): void {
  Atomics.add(control, WAKE_MAIN, 1);
  Atomics.notify(control, WAKE_MAIN);
}

function expandSlot(b: Uint8Array, length: number): void {
  let at = 0;
  while (at < length) {
    const r = expandRecord ? b.indexOf(RECORD, at) : -1;
    const end = r < 0 || r >= length ? length : r;
    if (end - at <= 64) {
      // a short run (the newline after a record): byte by byte, no view made
      const dst = out.room(end - at);
      let u = out.used;
      for (let i = at; i < end; i++) dst[u++] = b[i]!;
      out.used = u;
    } else {
      // plain bytes: copied through in pieces that fit
      let from = at;
      while (from < end) {
        const n = Math.min(end - from, OUT_BYTES);
        const dst = out.room(n);
        dst.set(b.subarray(from, from + n), out.used);
        out.used += n;
        from += n;
      }
    }
    if (end === length) return;
    const kind = b[end + 1];
    if (kind === LITERAL) {
      // a 0x01 of the text itself, escaped by the main thread
      out.room(1)[out.used++] = RECORD;
      at = end + 2;
    } else if (kind === PIECE) {
      const table = b[end + 2]!;
      const n = get16(b, end + 5);
      pieces.set(table, get16(b, end + 3), b, end + 7, n);
      at = end + 7 + n;
    } else at = expandRecord!(b, end, out, pieces);
  }
}

try {
  let consumed = 0;
  for (;;) {
    const wake = Atomics.load(control, WAKE_WORKER);
    if (Atomics.load(control, PUBLISHED) === consumed) {
      // ended: and nothing published since the look above (the last publish precedes the end)
      if (Atomics.load(control, STATE) !== 0) {
        if (Atomics.load(control, PUBLISHED) === consumed) break;
        continue;
      }
      out.flush();
      Atomics.wait(control, WAKE_WORKER, wake, 1000);
      continue;
    }
    const k = consumed % SLOT_COUNT;
    expandSlot(slots[k]!, control[LENGTHS + k]!);
    Atomics.store(control, CONSUMED, ++consumed);
    wakeMain();
  }
  out.flush();
  Atomics.compareExchange(control, STATE, 0, ENDED);
} catch (e) {
  control[ERRNO] = (e as NodeJS.ErrnoException).errno ? Math.abs((e as NodeJS.ErrnoException).errno!) : 5;
  Atomics.store(control, STATE, FAILED);
  wakeMain();
}
