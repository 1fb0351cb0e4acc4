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
}

const BATCH_BYTES = 64 * 1024;

export class Output {
  private batch: string[] = [];
  private batchBytes = 0;
  private waiting: Promise<void> | null = null;

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
    const f = this.format === 'json' ? renderer.json : renderer.text;
    return (e) => this.line(f(e));
  }

  private scheduled = false;

  /** Write one line. Lines of one burst (one tick) go out in one write; a lone event goes out at once. */
  line(s: string): void {
    this.batch.push(s);
    this.batchBytes += s.length + 1;
    if (this.batchBytes >= BATCH_BYTES) this.flushBatch();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        this.flushBatch();
      });
    }
  }

  /** Progress for people, on stderr: in text mode, or when stderr is a terminal. */
  progress(s: string): void {
    if (!this.progressStream || (this.format === 'json' && !this.progressStream.isTTY)) return;
    this.progressStream.write(s + '\n');
  }

  /** Resolves when the stream can take more: producers that can pause await it between batches. */
  ready(): Promise<void> | null {
    return this.waiting;
  }

  private flushBatch(): void {
    if (!this.batch.length) return;
    const chunk = this.batch.join('\n') + '\n';
    this.batch = [];
    this.batchBytes = 0;
    if (!this.stream.write(chunk) && !this.waiting)
      this.waiting = new Promise<void>((resolve) =>
        this.stream.once('drain', () => {
          this.waiting = null;
          resolve();
        }),
      );
  }

  /** Write what is batched and wait until the stream has taken it. */
  async flush(): Promise<void> {
    this.flushBatch();
    if (this.waiting) await this.waiting;
  }
}

/** A JSON line with its `type` first. */
export function jsonLine(type: string, body: object): string {
  return JSON.stringify({ type, ...body });
}
