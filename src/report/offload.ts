/**
 * A second thread for a long stream of lines (explain's every packet, JSON or text): the main
 * thread fills shared slots with the lines' bytes — and, for lines a renderer can describe in a
 * few numbers, compact records — and a worker thread expands the records and does the write(2)
 * calls. On a machine with two cores a million-line replay spends its time split between the two
 * instead of serially.
 *
 * A record starts with the byte RECORD (0x01), which JSON text never holds raw (JSON escapes every
 * control character) and text holds escaped (RECORD, LITERAL); everything else in a slot is
 * copied out as it is. What a record means is the renderer's business (its kind byte, after
 * RECORD, is never LITERAL): its module is loaded in the worker by URL and exports `expandRecord`.
 *
 * Backpressure: the worker writes until the descriptor takes no more, then waits (never inside
 * write(2): exit waits for every thread, and a thread blocked there could not be stopped), so a
 * slow reader keeps slots busy; the main thread never blocks on it: with no free slot it fills
 * buffers of its own and its producer awaits `whenFree` between chunks (Output.ready), as it
 * awaits a stream's drain — the event loop (and Ctrl-C) stays alive. A write error (EPIPE: the
 * reader went away) is raised as the stream's own error, as process.stdout's would be.
 *
 * This file is the protocol (slots, control words, records, pieces): what a renderer's records
 * need, without loading worker_threads; `offload-writer.ts` starts the thread.
 */

export const SLOT_COUNT = 4;
export const SLOT_BYTES = 256 * 1024;
/**
 * Control words: slots published by the main thread, consumed by the worker, state, errno; two
 * wake-up counters, each bumped by one side after anything the other may wait for (a waiter
 * reads it before it looks, so no change between looking and waiting is missed); then each
 * slot's length.
 */
export const PUBLISHED = 0;
export const CONSUMED = 1;
export const STATE = 2;
export const ERRNO = 3;
/** Bumped by the main thread (a slot published, the end). */
export const WAKE_WORKER = 4;
/** Bumped by the worker (a slot consumed, a failure, the end). */
export const WAKE_MAIN = 5;
export const LENGTHS = 6;
export const RUNNING = 0;
export const ENDED = 1;
export const FAILED = 2;
/** The first byte of a record. */
export const RECORD = 1;
/** After RECORD: not a record but a 0x01 of the text itself (the main thread escapes any). */
export const LITERAL = 0;
/**
 * After RECORD: a piece a renderer's records name, kept by the worker (RecordPieces):
 * RECORD PIECE table u8, id u16, length u16, bytes. A renderer's own record kinds are 2 and up.
 */
export const PIECE = 1;

/** What the worker is given. */
export interface OffloadData {
  slots: SharedArrayBuffer;
  control: SharedArrayBuffer;
  fd: number;
  /** URL of the module exporting expandRecord; '' when the slots hold plain bytes only. */
  expander: string;
}

/** Where a record expands to, in the worker: like LineBytes, room for n bytes from `used` on. */
export interface ExpandSink {
  room(n: number): Uint8Array;
  used: number;
}

/**
 * A renderer's record expander: `b[at]` is RECORD, `b[at + 1]` its kind (2 and up); write what
 * the record stands for into `out` (`pieces`: the pieces sent so far) and return the position
 * after the record.
 */
export type ExpandRecord = (b: Uint8Array, at: number, out: ExpandSink, pieces: PieceStore) => number;

/** A piece this long or shorter lives in its slot of the arena; a longer one (rare) on its own. */
const PIECE_STRIDE = 128;

/**
 * The output thread's copy of the pieces sent so far, by table and id: per table one arena of
 * fixed slots and their lengths. Not a buffer per piece: a capture of many short connections
 * sends an endpoint pair for each cache slot, ~32,000 live at once (a Uint8Array and its
 * ArrayBuffer each were ~250 bytes of heap more than the bytes).
 */
export class PieceStore {
  private arenas: Uint8Array[] = [];
  private lengths: Int32Array[] = [];
  private readonly long = new Map<number, Uint8Array>();

  /** Piece (table, id) is now the `n` bytes of `src` from `from`. */
  set(table: number, id: number, src: Uint8Array, from: number, n: number): void {
    let lengths = this.lengths[table];
    if (lengths === undefined || id >= lengths.length) lengths = this.grow(table, id);
    const longKey = table * 0x10000 + id;
    if (n > PIECE_STRIDE) {
      this.long.set(longKey, src.slice(from, from + n));
      lengths[id] = -1;
      return;
    }
    if (lengths[id] === -1) this.long.delete(longKey);
    const arena = this.arenas[table]!;
    const at = id * PIECE_STRIDE;
    for (let k = 0; k < n; k++) arena[at + k] = src[from + k]!;
    lengths[id] = n;
  }

  /** Copy piece (table, id) into o at u; returns the position after it. */
  copy(table: number, id: number, o: Uint8Array, u: number): number {
    const n = this.lengths[table]![id]!;
    if (n < 0) {
      const piece = this.long.get(table * 0x10000 + id)!;
      o.set(piece, u);
      return u + piece.length;
    }
    const arena = this.arenas[table]!;
    const at = id * PIECE_STRIDE;
    if (n > 24) {
      o.set(arena.subarray(at, at + n), u);
      return u + n;
    }
    for (let k = 0; k < n; k++) o[u + k] = arena[at + k]!;
    return u + n;
  }

  /** Room for id in table: both arrays doubled past it (ids are small and dense: cache slots, flag bytes, tails by number). */
  private grow(table: number, id: number): Int32Array {
    const old = this.lengths[table];
    const slots = Math.max(64, 2 ** Math.ceil(Math.log2(id + 1)));
    const lengths = new Int32Array(slots);
    const arena = new Uint8Array(slots * PIECE_STRIDE);
    if (old !== undefined) {
      lengths.set(old);
      arena.set(this.arenas[table]!);
    }
    this.lengths[table] = lengths;
    this.arenas[table] = arena;
    return lengths;
  }
}

/** A little-endian u32 at b[u…]; returns the position after it. */
export function put32(b: Uint8Array, u: number, v: number): number {
  b[u] = v;
  b[u + 1] = v >>> 8;
  b[u + 2] = v >>> 16;
  b[u + 3] = v >>> 24;
  return u + 4;
}

export const get32 = (b: Uint8Array, u: number): number => (b[u]! | (b[u + 1]! << 8) | (b[u + 2]! << 16) | (b[u + 3]! << 24)) >>> 0;
export const get16 = (b: Uint8Array, u: number): number => b[u]! | (b[u + 1]! << 8);

/**
 * A packet record's kind has this bit set when its endpoints are an IPv4 packet's numbers (src
 * u32, dst u32, src port u16, dst port u16) instead of a pair piece's id (u16): the output thread
 * keeps their text (V4EndpointPairs), the replay thread does no lookup for them.
 */
export const V4_RECORD = 0x40;

/** What every renderer's packet record starts with, read (one object, refilled: see readRecordHead). */
export interface RecordHead {
  /** Without V4_RECORD. */
  kind: number;
  v4: boolean;
  index: number;
  sec: number;
  micro: number;
  /** The pair piece's id (not v4). */
  pair: number;
  /** v4: the addresses (int32) and ports. */
  srcAddr: number;
  dstAddr: number;
  srcPort: number;
  dstPort: number;
  /** Where the record goes on after its head. */
  next: number;
}
const head: RecordHead = { kind: 0, v4: false, index: 0, sec: 0, micro: 0, pair: 0, srcAddr: 0, dstAddr: 0, srcPort: 0, dstPort: 0, next: 0 };

/** The head of the record at b[at] (its RECORD mark): kind, index u32, sec u32, micro u32, then its endpoints (see V4_RECORD). */
export function readRecordHead(b: Uint8Array, at: number): RecordHead {
  const kind = b[at + 1]!;
  const v4 = (kind & V4_RECORD) !== 0;
  head.kind = kind & ~V4_RECORD;
  head.v4 = v4;
  head.index = get32(b, at + 2);
  head.sec = get32(b, at + 6);
  head.micro = get32(b, at + 10);
  if (v4) {
    head.srcAddr = get32(b, at + 14) | 0;
    head.dstAddr = get32(b, at + 18) | 0;
    head.srcPort = get16(b, at + 22);
    head.dstPort = get16(b, at + 24);
    head.next = at + 26;
  } else {
    head.pair = get16(b, at + 14);
    head.next = at + 16;
  }
  return head;
}

/**
 * The main thread's side of the pieces a renderer's records name (an endpoint pair, a flag
 * text, a line's tail…): each sent once per output session, and again when its version changed
 * (a cache slot given to another pair).
 */
export class RecordPieces {
  private session: object | null = null;
  /** Per table: the version sent + 1, by id (0: not sent). */
  private sent: Uint32Array[];

  constructor(private readonly tables: number) {
    this.sent = Array.from({ length: tables }, () => new Uint32Array(256));
  }

  /** Write piece (table, id) into b at u unless `session` has this version of it; returns the position after. */
  put(b: Uint8Array, u: number, session: object, table: number, id: number, version: number, bytes: Uint8Array): number {
    return this.putFrom(b, u, session, table, id, version, bytes, 0, bytes.length);
  }

  /** `put` of the piece that is `n` bytes of `src` from `from` (a slot of an arena: no view made). */
  putFrom(b: Uint8Array, u: number, session: object, table: number, id: number, version: number, src: Uint8Array, from: number, n: number): number {
    if (session !== this.session) {
      this.session = session;
      this.sent = Array.from({ length: this.tables }, () => new Uint32Array(256));
    }
    let sent = this.sent[table]!;
    if (id >= sent.length) {
      const grown = new Uint32Array(Math.max(2 * sent.length, id + 1));
      grown.set(sent);
      this.sent[table] = sent = grown;
    }
    if (sent[id] === version + 1) return u;
    sent[id] = version + 1;
    b[u++] = RECORD;
    b[u++] = PIECE;
    b[u++] = table;
    b[u++] = id;
    b[u++] = id >>> 8;
    b[u++] = n;
    b[u++] = n >>> 8;
    if (from === 0 && n === src.length && n > 64) b.set(src, u);
    else for (let k = 0; k < n; k++) b[u + k] = src[from + k]!;
    return u + n;
  }

  /**
   * A record's last part: one piece (`plain`, in table `tables[0]`) or, without it, the two pieces
   * around a number (`formed`: before it in `tables[1]`, after it in `tables[2]`), each unless the
   * session has it. Returns the position after.
   */
  putTail(b: Uint8Array, u: number, session: object, plain: { id: number; bytes: Uint8Array } | null, formed: { id: number; pre: Uint8Array; post: Uint8Array } | null, tables: readonly [number, number, number]): number {
    if (plain !== null) return this.put(b, u, session, tables[0], plain.id, 0, plain.bytes);
    u = this.put(b, u, session, tables[1], formed!.id, 0, formed!.pre);
    return this.put(b, u, session, tables[2], formed!.id, 0, formed!.post);
  }
}

