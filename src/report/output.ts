/**
 * Where every command's output goes. The format is chosen once per run: a result command renders
 * one document (text for people, one JSON document for machines); a stream renders one line per
 * event (text, or JSON lines). Lines are batched and writes respect the stream's backpressure
 * (as pino does): producers that can pause await `ready()`.
 */
import type { Writable } from 'node:stream';
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
 * Where a renderer's jsonInto writes one line: text pieces, pre-encoded UTF-8 pieces, and, after
 * `reserve(n)` has made room for n bytes, short ASCII strings and non-negative integers written
 * byte by byte (no string built, nothing to encode).
 */
export interface LineBytes {
  text(s: string): void;
  bytes(b: Uint8Array): void;
  reserve(n: number): void;
  ascii(s: string): void;
  /** A number as JSON writes it (fast for u32 integers). */
  uint(n: number): void;
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
  private used = 0;
  private readonly free: Buffer[] = [];
  private scheduled = false;
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
        if (this.used >= BATCH_BYTES) this.write();
        this.buf[this.used++] = 10;
        this.tick();
      };
    const f = this.format === 'json' ? renderer.json : renderer.text;
    return (e) => this.line(f(e));
  }

  /** Part of a line (jsonInto): encoded into the batch. */
  text(s: string): void {
    // 3 bytes per UTF-16 unit is the most UTF-8 can need (a surrogate pair is 4 bytes for 2 units)
    if (this.used + 3 * s.length > BATCH_BYTES) {
      this.write();
      if (3 * s.length > BATCH_BYTES) return this.send(s); // a large document: as it is
    }
    this.used += this.buf.write(s, this.used, 'utf8');
  }

  /** Part of a line (jsonInto), already UTF-8: copied into the batch. */
  bytes(b: Uint8Array): void {
    if (this.used + b.length > BATCH_BYTES) {
      this.write();
      if (b.length > BATCH_BYTES) return this.send(b);
    }
    if (b.length > 32) {
      this.buf.set(b, this.used);
      this.used += b.length;
      return;
    }
    // short pieces (JSON keys): a loop beats a native call
    const d = this.buf;
    let u = this.used;
    for (let i = 0; i < b.length; i++) d[u++] = b[i]!;
    this.used = u;
  }

  /** Make room for n bytes of ascii()/uint() pieces (n ≤ 4096). */
  reserve(n: number): void {
    if (this.used + n > BATCH_BYTES) this.write();
  }

  /** An ASCII string (addresses, numbers' text, flag names), after reserve(). */
  ascii(s: string): void {
    const b = this.buf;
    let u = this.used;
    for (let i = 0; i < s.length; i++) b[u++] = s.charCodeAt(i);
    this.used = u;
  }

  /** An integer in decimal, after reserve() (u32 fast, anything else as String(n) writes it). */
  uint(n: number): void {
    if (!(n >= 0 && n <= 0xffffffff && n === Math.floor(n))) return this.ascii(String(n));
    const b = this.buf;
    // u32 arithmetic: (n / 10) >>> 0 is floor for n < 2^32
    const digits = n < 10 ? 1 : n < 100 ? 2 : n < 1000 ? 3 : n < 10000 ? 4 : n < 100000 ? 5 : n < 1000000 ? 6 : n < 10000000 ? 7 : n < 100000000 ? 8 : n < 1000000000 ? 9 : 10;
    let u = this.used + digits;
    this.used = u;
    do {
      const q = (n / 10) >>> 0;
      b[--u] = 48 + n - q * 10;
      n = q;
    } while (n > 0);
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
   * null when the stream can take more now; otherwise a promise that resolves on its `drain`.
   * Producers that can pause (a capture read chunk by chunk) await it between chunks.
   */
  ready(): Promise<void> | null {
    return this.waiting;
  }

  private write(): void {
    if (!this.used) return;
    const full = this.buf;
    const chunk = full.subarray(0, this.used);
    // The stream owns the bytes until it has sent them: continue in a free buffer, and take this
    // one back once written (fresh buffers each time would make the GC chase external memory).
    this.buf = this.free.pop() ?? Buffer.allocUnsafeSlow(BATCH_BYTES);
    this.used = 0;
    this.send(chunk, () => {
      if (this.free.length < MAX_FREE) this.free.push(full);
    });
  }

  private send(chunk: Uint8Array | string, written?: () => void): void {
    if (!this.stream.write(chunk, written) && !this.waiting) {
      this.waiting = new Promise<void>((resolve) => (this.wakeUp = resolve));
      this.stream.once('drain', this.onDrain);
    }
  }

  /** Write what is batched and wait until the stream has taken it. */
  async flush(): Promise<void> {
    this.write();
    if (this.waiting) await this.waiting;
  }
}

/** A JSON line with its `type` first. */
export function jsonLine(type: string, body: object): string {
  return JSON.stringify({ type, ...body });
}
