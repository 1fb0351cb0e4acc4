/**
 * Where every command's output goes. The format is chosen once per run: a result command renders
 * one document (text for people, one JSON document for machines); a stream renders one line per
 * event (text, or JSON lines). Lines are batched and writes respect the stream's backpressure
 * (as pino does): producers that can pause await `ready()`.
 */
import type { Writable } from 'node:stream';
import type { OffloadedWriter } from './offload-writer.js';
import { setColour } from './text.js';

export type OutputFormat = 'text' | 'json';

/** A result type's two renderings. `json` returns the document (an object with a `type`). */
export interface Renderer<R> {
  text(r: R): string;
  json(r: R): { type: string } & Record<string, unknown>;
}

/** A stream's renderers: one line per event (no trailing newline). */
export interface LineRenderer<E> {
  text(e: E): string;
  json(e: E): string;
  /**
   * Optional fast path for -o json, chosen once instead of `json`: the line written in pieces,
   * precomputed byte pieces copied as they are (a million-line stream spends its time encoding).
   */
  jsonInto?(e: E, into: LineBytes): void;
}

/**
 * Where a renderer's jsonInto writes one line: text pieces, pre-encoded UTF-8 pieces, or bytes
 * written straight into the batch: `room(n)` makes room for n bytes and returns the batch buffer,
 * the encoder writes from `used` on (with the `put*` functions below) and sets `used` past what it
 * wrote. No string is built and nothing is encoded for numbers and ASCII words.
 */
export interface LineBytes {
  text(s: string): void;
  bytes(b: Uint8Array): void;
  room(n: number): Uint8Array;
  used: number;
  /**
   * Set while an output thread expands records (offload.ts): the renderer may then write a
   * record instead of the line, and this object's identity is the session its definitions were
   * sent in. null: write the line itself.
   */
  readonly records: object | null;
}

/** Copy a pre-encoded piece to b[at…]; returns the position after it. */
export function putBytes(b: Uint8Array, at: number, piece: Uint8Array): number {
  const n = piece.length;
  if (n > 24) {
    b.set(piece, at);
    return at + n;
  }
  // short pieces (JSON keys): a loop beats a native call
  for (let i = 0; i < n; i++) b[at + i] = piece[i]!;
  return at + n;
}

/** An ASCII string (addresses, flag names) at b[at…]. */
export function putAscii(b: Uint8Array, at: number, s: string): number {
  for (let i = 0; i < s.length; i++) b[at + i] = s.charCodeAt(i);
  return at + s.length;
}

/** "00".."99": two digits per division. */
const PAIRS = Uint8Array.from({ length: 200 }, (_, i) => 48 + (i & 1 ? (i >> 1) % 10 : Math.floor((i >> 1) / 10)));

/**
 * A u32 given as `u32 | 0` (an int32: a small integer to V8, so passing it boxes nothing),
 * digit by digit.
 */
export function putU32(b: Uint8Array, at: number, i32: number): number {
  return putUint(b, at, i32 >>> 0);
}

/** A number as JSON writes it (u32 integers digit by digit, anything else as String(n) writes it). */
export function putUint(b: Uint8Array, at: number, n: number): number {
  if (!(n >= 0 && n <= 0xffffffff && n === Math.floor(n))) return putAscii(b, at, String(n));
  const digits = n < 10 ? 1 : n < 100 ? 2 : n < 1000 ? 3 : n < 10000 ? 4 : n < 100000 ? 5 : n < 1000000 ? 6 : n < 10000000 ? 7 : n < 100000000 ? 8 : n < 1000000000 ? 9 : 10;
  let u = at + digits;
  // (n / 100) >>> 0 is floor for n < 2^32
  while (n >= 100) {
    const q = (n / 100) >>> 0;
    const r = (n - q * 100) << 1;
    b[--u] = PAIRS[r + 1]!;
    b[--u] = PAIRS[r]!;
    n = q;
  }
  if (n >= 10) {
    b[--u] = PAIRS[(n << 1) + 1]!;
    b[--u] = PAIRS[n << 1]!;
  } else b[--u] = 48 + n;
  return at + digits;
}

/** An IPv4 address (int32: a << 24 | …) as dotted decimal, digit by digit: the text a replay's address has. */
export function putIPv4(b: Uint8Array, u: number, a: number): number {
  u = putUint(b, u, (a >>> 24) & 255);
  b[u++] = 46; // '.'
  u = putUint(b, u, (a >>> 16) & 255);
  b[u++] = 46;
  u = putUint(b, u, (a >>> 8) & 255);
  b[u++] = 46;
  return putUint(b, u, a & 255);
}

/**
 * A number as JSON writes it: seconds with up to microseconds (a capture's timestamps) digit by
 * digit; anything else — or a double that is not the nearest one to its 6-decimal form, which
 * JSON writes with 17 digits — as String(n) writes it.
 */
export function putDecimal(b: Uint8Array, at: number, n: number): number {
  const sec = Math.floor(n);
  if (sec >= 0 && sec <= 0xffffffff) {
    const micro = Math.round((n - sec) * 1e6);
    // exact: an integer below 2^53 over 1e6 is the correctly rounded double of the decimal
    if (micro < 1e6 && (sec * 1e6 + micro) / 1e6 === n) {
      return putSecMicro(b, at, sec, micro);
    }
  }
  return putAscii(b, at, String(n));
}

/**
 * Seconds and microseconds (0 ≤ micro < 10⁶) as JSON writes the number sec + micro/10⁶ when
 * that double is exact to the microsecond (see putDecimal): no trailing zeros, no point for 0.
 */
export function putSecMicro(b: Uint8Array, at: number, sec: number, micro: number): number {
  let u = putUint(b, at, sec);
  if (micro === 0) return u;
  let m = micro;
  let digits = 6;
  while (m % 10 === 0) {
    m /= 10;
    digits--;
  }
  b[u++] = 46; // '.'
  u += digits;
  const end = u;
  for (let i = 0; i < digits; i++) {
    const q = (m / 10) >>> 0;
    b[--u] = 48 + m - q * 10;
    m = q;
  }
  return end;
}

/**
 * Lines are encoded into a buffer of this size and written when it is full (or at the end of a
 * tick). Encoding each line as it comes lets the line's string die young: strings queued in a
 * backed-up stream would survive into the old generation and cost the GC more than the encoding.
 */
const BATCH_BYTES = 64 * 1024;
/** Written buffers kept for reuse. */
const MAX_FREE = 64;

export class Output implements LineBytes {
  private buf: Buffer = Buffer.allocUnsafeSlow(BATCH_BYTES);
  /** Bytes of the batch written (jsonInto encoders advance it). */
  used = 0;
  /** The batch's size (an output thread's slots are larger). */
  private capacity = BATCH_BYTES;
  /** The output thread, once a long JSON stream asked for one (see offload). */
  private offloaded: OffloadedWriter | null = null;
  /** Whether buf is one of the output thread's slots (else a buffer of ours, queued in `pending` when full). */
  private bufIsSlot = false;
  /** Filled buffers waiting for a free slot, in order, and how much of each is filled. */
  private readonly pending: Array<{ buf: Buffer; used: number }> = [];
  /** Buffers that waited and were copied into a slot: reused (a slow reader would otherwise make one per batch). */
  private readonly spare: Buffer[] = [];
  records: object | null = null;
  private readonly free: Buffer[] = [];
  private readonly fdBacked: boolean;
  private scheduled = false;
  private statusShown = false;
  private waiting: Promise<void> | null = null;
  private wakeUp: (() => void) | null = null;
  private readonly onDrain = (): void => {
    const w = this.wakeUp;
    this.waiting = null;
    this.wakeUp = null;
    w?.();
  };
  private readonly onTick = (): void => {
    this.scheduled = false;
    this.write();
  };

  constructor(
    readonly format: OutputFormat,
    private readonly stream: Writable = process.stdout,
    private readonly progressStream: NodeJS.WriteStream | null = process.stderr,
  ) {
    setColour(format === 'text' && Boolean((stream as NodeJS.WriteStream).isTTY));
    this.fdBacked = typeof (stream as { fd?: unknown }).fd === 'number';
  }

  /** Render a command's result as one document. */
  result<R>(renderer: Renderer<R>, r: R): void {
    this.line(this.format === 'json' ? JSON.stringify(renderer.json(r), null, 2) : renderer.text(r));
  }

  /** The line function for a stream of events, chosen once (no format branch per event). */
  lines<E>(renderer: LineRenderer<E>): (e: E) => void {
    const into = renderer.jsonInto;
    if (this.format === 'json' && into)
      return (e) => {
        into(e, this);
        this.endLine();
      };
    const f = this.format === 'json' ? renderer.json : renderer.text;
    return (e) => this.line(f(e));
  }

  /** End a line written in parts (text, bytes, room): its newline, and the batch goes out this tick. */
  endLine(): void {
    if (this.used >= this.capacity) this.write();
    this.buf[this.used++] = 10;
    this.tick();
  }

  /** Part of a line (jsonInto): encoded into the batch. */
  text(s: string): void {
    // (JSON never holds a raw 0x01: only text can, where records are read)
    if (this.records !== null && s.includes('\x01')) s = s.replaceAll('\x01', '\x01\x00');
    // 3 bytes per UTF-16 unit is the most UTF-8 can need (a surrogate pair is 4 bytes for 2 units)
    if (this.used + 3 * s.length > this.capacity) {
      this.write();
      if (3 * s.length > this.capacity) return this.offloaded ? this.bytes(Buffer.from(s)) : this.send(s); // a large document: as it is
    }
    this.used += this.buf.write(s, this.used, 'utf8');
  }

  /** Part of a line (jsonInto), already UTF-8: copied into the batch. */
  bytes(b: Uint8Array): void {
    if (this.records !== null && b.includes(1)) b = Buffer.from(Buffer.from(b).toString('latin1').replaceAll('\x01', '\x01\x00'), 'latin1');
    if (this.used + b.length > this.capacity) {
      this.write();
      if (b.length > this.capacity) {
        if (!this.offloaded) return this.send(b);
        // through the output thread's slots, a slot at a time
        for (let from = 0; from < b.length; from += this.capacity) {
          const piece = b.subarray(from, Math.min(b.length, from + this.capacity));
          this.buf.set(piece, 0);
          this.used = piece.length;
          this.write();
        }
        return;
      }
    }
    this.used = putBytes(this.buf, this.used, b);
  }

  /** Room for n bytes (n ≤ 4096) written from `used` on: the batch buffer. */
  room(n: number): Uint8Array {
    if (this.used + n > this.capacity) this.write();
    return this.buf;
  }

  /**
   * From here on, lines go through an output thread (offload.ts) that does the writes — and, with
   * `expander` (a renderer's module exporting expandRecord), expands the records the renderer
   * writes while `records` is set (a raw 0x01 in text or bytes is escaped as RECORD, 0). Only for
   * a stream on a file descriptor; false when that is not the case. What was
   * written before is flushed first, so order is kept. Starting a worker resets V8 flags set at
   * run time (setFlagsFromString) to the command line's while the thread boots: `onReady` is
   * called once it runs (set them again then) and once it has loaded the expander (again, to be
   * sure). Nothing waits for the thread: lines fill the slots meanwhile and it takes them in
   * order. May be called early (the thread boots while a command loads its modules): `flush`,
   * which ends the thread, waits for this first.
   */
  offload(expander: URL | null, onReady?: () => void): Promise<boolean> {
    const started = this.startOffload(expander, onReady);
    started.catch(() => undefined); // (a failure is the awaiter's, or flush's)
    return (this.offloading = started);
  }

  private offloading: Promise<boolean> | null = null;

  private async startOffload(expander: URL | null, onReady?: () => void): Promise<boolean> {
    const fd = (this.stream as { fd?: unknown }).fd;
    if (this.offloaded || typeof fd !== 'number') return false;
    // what was written before goes first (flush itself would wait for this offload)
    this.write();
    if (this.waiting) await this.waiting;
    const [{ OffloadedWriter }, { SLOT_BYTES }] = await Promise.all([import('./offload-writer.js'), import('./offload.js')]);
    const stream = this.stream;
    this.offloaded = new OffloadedWriter(fd, expander, (e) => void stream.emit('error', e));
    if (onReady) {
      void this.offloaded.started.then(onReady);
      void this.offloaded.ready.then(onReady);
    }
    this.capacity = SLOT_BYTES;
    this.buf = this.offloaded.tryNext()!; // all slots are free at the start
    this.bufIsSlot = true;
    this.used = 0;
    this.records = expander ? {} : null;
    return true;
  }

  private tick(): void {
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.onTick);
    }
  }

  /**
   * Write one line. Lines of one burst (one tick) go out in one write; a lone event goes out at
   * once. A producer that runs many lines in one tick must await `ready()` now and then: it is
   * what bounds memory when the reader is slower than the producer.
   */
  line(s: string): void {
    this.text(s + '\n');
    this.tick();
  }

  /** Progress for people, on stderr: in text mode, or when stderr is a terminal. */
  progress(s: string): void {
    if (!this.progressStream || (this.format === 'json' && !this.progressStream.isTTY)) return;
    this.progressStream.write(s + '\n');
  }

  /**
   * Whether `status` shows anything: stderr is a terminal and stdout is not (the output goes to a
   * file or a pipe, so nothing else on the screen says the run is alive; a terminal showing the
   * output itself is not written over).
   */
  get showsStatus(): boolean {
    return Boolean(this.progressStream?.isTTY) && !(this.stream as NodeJS.WriteStream).isTTY;
  }

  /** Rewrite the terminal's status line (cut to its width: a wrapped line is not rewritten in place); null clears it. */
  status(s: string | null): void {
    if (!this.showsStatus) return;
    const ps = this.progressStream!;
    if (s === null) {
      if (this.statusShown) {
        ps.write('\r\x1b[K');
        process.off('exit', this.clearStatus);
      }
      this.statusShown = false;
      return;
    }
    const width = Math.max(20, (ps.columns || 80) - 1);
    ps.write(`\r${s.length > width ? s.slice(0, width) : s}\x1b[K`);
    // (a run stopped by Ctrl-C exits without a flush: the line goes then too — a terminal's writes are synchronous)
    if (!this.statusShown) process.once('exit', this.clearStatus);
    this.statusShown = true;
  }

  private readonly clearStatus = (): void => this.status(null);

  /**
   * null when the stream can take more now; otherwise a promise that resolves on its `drain`.
   * Producers that can pause (a capture read chunk by chunk) await it between chunks.
   */
  ready(): Promise<void> | null {
    if (this.offloaded && this.pending.length) return this.drained();
    return this.waiting;
  }

  /** Until no buffer waits for an output thread's slot. */
  private async drained(): Promise<void> {
    while (this.offloaded && this.pending.length) {
      await this.offloaded.whenFree();
      this.drainPending();
    }
  }

  private write(): void {
    if (!this.used) return;
    if (this.offloaded) {
      if (this.bufIsSlot) this.offloaded.publish(this.used);
      else this.pending.push({ buf: this.buf, used: this.used });
      this.used = 0;
      this.drainPending();
      // order is kept: nothing new goes to a slot while older bytes wait for one
      const slot = this.pending.length ? null : this.offloaded.tryNext();
      this.bufIsSlot = slot !== null;
      this.buf = slot ?? this.spare.pop() ?? Buffer.allocUnsafeSlow(this.capacity);
      return;
    }
    const full = this.buf;
    const chunk = full.subarray(0, this.used);
    this.used = 0;
    let kept = false;
    this.send(chunk, () => {
      if (!kept && this.free.length < MAX_FREE) this.free.push(full);
    });
    // Written already (stdout to a file or a pipe is written synchronously on Linux: write(2)
    // copied it and nothing is queued): go on in the same buffer. Only for a stream on a file
    // descriptor: another Writable may keep the chunk it was given after calling back. Otherwise the stream owns the bytes until it has sent
    // them: continue in a free buffer and take this one back once written (fresh buffers each
    // time would make the GC chase external memory).
    if (this.fdBacked && this.stream.writableLength === 0) {
      kept = true;
      return;
    }
    this.buf = this.free.pop() ?? Buffer.allocUnsafeSlow(BATCH_BYTES);
  }

  /** Move waiting buffers into the slots the output thread has freed. */
  private drainPending(): void {
    const o = this.offloaded!;
    while (this.pending.length) {
      const slot = o.tryNext();
      if (!slot) return;
      const p = this.pending.shift()!;
      slot.set(p.buf.subarray(0, p.used), 0);
      o.publish(p.used);
      if (this.spare.length < MAX_FREE) this.spare.push(p.buf);
    }
  }

  private send(chunk: Uint8Array | string, written?: () => void): void {
    if (!this.stream.write(chunk, written) && !this.waiting) {
      this.waiting = new Promise<void>((resolve) => (this.wakeUp = resolve));
      this.stream.once('drain', this.onDrain);
    }
  }

  /** Write what is batched and wait until the stream has taken it (and the output thread, if any, has ended). */
  async flush(): Promise<void> {
    this.status(null);
    if (this.offloading) {
      const o = this.offloading;
      this.offloading = null;
      await o.catch(() => false);
    }
    this.write();
    if (this.offloaded) {
      await this.drained();
      if (this.bufIsSlot && this.used) this.write();
      const o = this.offloaded;
      this.offloaded = null;
      this.records = null;
      this.capacity = BATCH_BYTES;
      this.buf = Buffer.allocUnsafeSlow(BATCH_BYTES);
      await o.end();
    }
    if (this.waiting) await this.waiting;
  }
}

/** A JSON line with its `type` first. */
export function jsonLine(type: string, body: object): string {
  return JSON.stringify({ type, ...body });
}
