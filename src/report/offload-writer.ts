/**
 * The main thread's side of the output thread (see offload.ts for the protocol): start it, hand it
 * slots, wait for free ones, end it. Loaded only when a run offloads (worker_threads with it).
 */
import { Worker } from 'node:worker_threads';
import { OutputError } from '../errors.js';
import { CONSUMED, ENDED, ERRNO, FAILED, LENGTHS, PUBLISHED, RUNNING, SLOT_BYTES, SLOT_COUNT, STATE, WAKE_MAIN, WAKE_WORKER, type OffloadData } from './offload.js';

/** Atomics.waitAsync (ES2024; the project's lib is ES2022). */
const waitAsync = (Atomics as unknown as { waitAsync(a: Int32Array, i: number, v: number, ms: number): { async: boolean; value: Promise<string> | string } }).waitAsync;

/** What the worker can report (errno, from the SAB): its name and what it means. */
const ERRNO_TEXT: Record<number, [string, string]> = {
  32: ['EPIPE', 'the reader went away'],
  28: ['ENOSPC', 'no space left on device'],
  5: ['EIO', 'input/output error'],
  27: ['EFBIG', 'file too large'],
  122: ['EDQUOT', 'disk quota exceeded'],
  9: ['EBADF', 'standard output is closed'],
};

export class OffloadedWriter {
  readonly slots: Buffer[] = [];
  private readonly control: Int32Array;
  private readonly worker: Worker;
  private published = 0;
  private exited: Promise<void>;
  /** Resolves when the worker runs JavaScript (before it loads the expander: 'online'), or it has ended. */
  readonly started: Promise<void>;
  /** Resolves when the worker runs (its expander loaded), or has ended. */
  readonly ready: Promise<void>;

  /**
   * Start the worker writing to `fd`. `onError` is given a write error, once, when the worker
   * reports one.
   */
  constructor(
    fd: number,
    expander: URL | null,
    private readonly onError: (e: OutputError) => void,
  ) {
    const slots = new SharedArrayBuffer(SLOT_COUNT * SLOT_BYTES);
    const control = new SharedArrayBuffer(4 * (LENGTHS + SLOT_COUNT));
    this.control = new Int32Array(control);
    for (let k = 0; k < SLOT_COUNT; k++) this.slots.push(Buffer.from(slots, k * SLOT_BYTES, SLOT_BYTES));
    const data: OffloadData = { slots, control, fd, expander: expander?.href ?? '' };
    this.worker = new Worker(new URL('./offload-worker.js', import.meta.url), {
      workerData: data,
      stdout: false,
      stderr: false,
      // it keeps a few pieces and its output buffer: a small heap (and no young generation grown for garbage it does not make)
      resourceLimits: { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 64 },
    });
    this.exited = new Promise((resolve) => this.worker.once('exit', () => resolve()));
    this.started = Promise.race([new Promise<void>((resolve) => this.worker.once('online', () => resolve())), this.exited]);
    this.ready = Promise.race([new Promise<void>((resolve) => this.worker.once('message', () => resolve())), this.exited]);
    this.worker.once('error', (e) => this.raise(new OutputError(`output thread: ${e.message}`, 'EIO')));
  }

  /** The slot to fill next, or null while the worker still holds it (a reader behind). */
  tryNext(): Buffer | null {
    if (this.failed()) return this.slots[this.published % SLOT_COUNT]!; // the bytes go nowhere: the error is raised
    return Atomics.load(this.control, CONSUMED) >= this.published - SLOT_COUNT + 1 ? this.slots[this.published % SLOT_COUNT]! : null;
  }

  /** Hand the slot `tryNext` gave, filled to `used`, to the worker. */
  publish(used: number): void {
    if (this.failed()) return;
    const k = this.published % SLOT_COUNT;
    this.control[LENGTHS + k] = used;
    Atomics.store(this.control, PUBLISHED, ++this.published);
    this.wakeWorker();
  }

  /** Resolves when the worker has taken a slot more (or failed, or ended): the event loop runs meanwhile. */
  async whenFree(): Promise<void> {
    const seen = Atomics.load(this.control, WAKE_MAIN);
    if (this.failed() || this.ended || this.tryNext()) return;
    const w = waitAsync(this.control, WAKE_MAIN, seen, 1000);
    if (w.async) await w.value;
  }

  private ended = false;

  /** No more slots: the worker writes what it holds and ends; resolves when it has. */
  async end(): Promise<void> {
    this.ended = true;
    Atomics.compareExchange(this.control, STATE, RUNNING, ENDED);
    this.wakeWorker();
    await this.exited;
    this.failed();
  }

  private wakeWorker(): void {
    Atomics.add(this.control, WAKE_WORKER, 1);
    Atomics.notify(this.control, WAKE_WORKER);
  }

  private raised = false;
  private failed(): boolean {
    if (Atomics.load(this.control, STATE) !== FAILED) return false;
    const errno = this.control[ERRNO]!;
    const [code, what] = ERRNO_TEXT[errno] ?? ['EIO', `errno ${errno}`];
    this.raise(new OutputError(`${what} (${code})`, code));
    return true;
  }

  private raise(e: OutputError): void {
    if (this.raised) return;
    this.raised = true;
    this.onError(e);
  }
}
