/**
 * explain's per-flow summary, one row per flow the capture had (its conntrack key). A flow is a
 * slot in typed arrays (counters, its first INVALID as its index and its reason's form and number,
 * its tuple as shared strings). The first 32,768 flows keep theirs; a later flow's row, once its
 * entry is gone (the kernel let go of it), is final and is written, a few dozen bytes, into a row
 * store by its place in the capture — the caller's, which may keep it on disk (explain's CLI: a
 * file unlinked as soon as it is opened, past 2 MiB) — and its slot is reused. So what a replay
 * holds for its summary is bounded by the flows live at once, not the capture: a capture of ten
 * million connections holds 32,768 rows, slots for the live ones and 12 bytes of index per
 * connection. Pure: the store is given.
 */
import { formatReason, reasonArg, reasonForm, type Decision } from './model.js';
import { tupleText, type Binding, type Tuple } from './nat.js';

export interface FlowSummary {
  /** conntrack's original tuple. */
  flow: string;
  /** conntrack's reply tuple when NAT rewrote it (else null), and how explain learned it. */
  reply: string | null;
  natLearnedFrom: Binding['learnedFrom'];
  packets: number;
  accept: number;
  ignore: number;
  invalid: number;
  firstInvalid: { index: number; reason: string | null } | null;
  finalState: string;
  /** Bytes of this flow the capture missed (see gaps.ts): not the kernel's doing. */
  captureMissed: number;
}

/** Where final rows go, by row number; read back by number, in any order. */
export interface FlowRowStore {
  /** Keep a copy of src[0, length) as row n (src is reused after the call). */
  putBytes(n: number, src: Uint8Array, length: number): void;
  getBytes(n: number): Buffer;
}

/** The store when the caller gives none: rows appended to one growing buffer, found by their offsets. */
class RowsInMemory implements FlowRowStore {
  private bytes = Buffer.allocUnsafe(4096);
  private used = 0;
  private start = new Float64Array(256);
  private end = new Float64Array(256);

  putBytes(n: number, src: Uint8Array, length: number): void {
    if (this.used + length > this.bytes.length) {
      const grown = Buffer.allocUnsafe(2 * (this.used + length));
      this.bytes.copy(grown, 0, 0, this.used);
      this.bytes = grown;
    }
    while (n >= this.start.length) {
      const s = new Float64Array(2 * this.start.length);
      const e = new Float64Array(2 * this.start.length);
      s.set(this.start);
      e.set(this.end);
      this.start = s;
      this.end = e;
    }
    this.bytes.set(src.subarray(0, length), this.used);
    this.start[n] = this.used;
    this.used += length;
    this.end[n] = this.used;
  }

  getBytes(n: number): Buffer {
    return this.bytes.subarray(this.start[n], this.end[n]);
  }
}

/**
 * A flow's NAT tuples (copies: not the binding's own, which is the entry's) and how they were
 * learned; their texts are made when the row is read or written (kept as text, each flow's two
 * texts were ~600 bytes of string pieces till the end).
 */
interface NatNames {
  orig: Tuple;
  reply: Tuple;
  learnedFrom: Binding['learnedFrom'];
}

const tupleCopy = (t: Tuple): Tuple => ({ src: t.src, sport: t.sport, dst: t.dst, dport: t.dport });

const LEARNED_FROM: ReadonlyArray<Binding['learnedFrom']> = [null, 'copy', 'handshake', 'rule', 'conntrack'];
const INITIAL_SLOTS = 16;
/**
 * A final row: its numbers, then its texts. Addresses and states are numbered in an intern table
 * (a capture has few of them: no text per row, none made when read), up to a bound past which
 * they are written out.
 *   0 packets u32, 4 accept u32, 8 ignore u32, 12 invalid u32, 16 missed f64, 24 first INVALID's
 *   index + 1 f64, 32 its reason's form i8, 33 its number u32, 37 sport u16, 39 dport u16,
 *   41 flags u8, 42 NAT learned from u8, 43 state u8, 44 src u32, 48 dst u32;
 *   then (u16 length + UTF-8 each): the state, src, dst when not numbered, the reason's text,
 *   the NAT names.
 */
const ROW_FIXED = 52;
const HAS_TEXT = 1;
const TEXT_NULL = 2;
const HAS_NAT = 4;
const STATE_INLINE = 255;
const ADDR_INLINE = 0xffffffff;
const MAX_ADDRS = 1 << 16;

/** Texts numbered as first met, up to `max`: -1 past it. */
class Interned {
  private readonly ids = new Map<string, number>();
  readonly texts: string[] = [];
  constructor(private readonly max: number) {}
  idOf(t: string): number {
    let id = this.ids.get(t);
    if (id === undefined) {
      if (this.texts.length >= this.max) return -1;
      id = this.texts.length;
      this.ids.set(t, id);
      this.texts.push(t);
    }
    return id;
  }
}

/** t as UTF-8 with its u16 length before it, at b[at]; the position after. (ASCII — addresses, states — byte by byte.) */
function putText(b: Buffer, at: number, t: string): number {
  let ascii = true;
  for (let i = 0; i < t.length; i++) {
    const c = t.charCodeAt(i);
    if (c >= 0x80) {
      ascii = false;
      break;
    }
    b[at + 2 + i] = c;
  }
  const n = ascii ? t.length : b.write(t, at + 2, 'utf8');
  b[at] = n;
  b[at + 1] = n >>> 8;
  return at + 2 + n;
}

export class FlowLedger {
  /** Live rows by key: their slots. */
  private readonly byKey = new Map<string, number>();
  /** Rows so far (final and live). */
  private n = 0;
  private slotsUsed = 0;
  private readonly freeSlots: number[] = [];
  // Per slot. (Small at first: the first growth comes before V8 optimizes the replay, not after
  // it — code first run after optimizing throws the optimized code away.)
  private rowOf = new Float64Array(INITIAL_SLOTS);
  private packets = new Uint32Array(INITIAL_SLOTS);
  private accept = new Uint32Array(INITIAL_SLOTS);
  private ignore = new Uint32Array(INITIAL_SLOTS);
  private invalid = new Uint32Array(INITIAL_SLOTS);
  private missed = new Float64Array(INITIAL_SLOTS);
  private sport = new Uint16Array(INITIAL_SLOTS);
  private dport = new Uint16Array(INITIAL_SLOTS);
  private readonly keyOf: string[] = [];
  private readonly src: string[] = [];
  private readonly dst: string[] = [];
  private readonly finalState: string[] = [];
  /**
   * A flow's first INVALID: its packet's index + 1 (0: none), and its reason as the model keeps it
   * (a window check's form and number, else its text): no object and no text per INVALID flow — a
   * capture of a failing system has an INVALID in most of its flows.
   */
  private firstIndex = new Float64Array(INITIAL_SLOTS);
  private firstForm = new Int8Array(INITIAL_SLOTS);
  private firstArg = new Uint32Array(INITIAL_SLOTS);
  private readonly firstText = new Map<number, string | null>();
  private readonly nat = new Map<number, NatNames>();
  /**
   * Rows whose entry may still live, with its binding (for its NAT tuples once known): by slot,
   * and the slots that have one as a list (a flood of new entries: an array push and a swap, not a
   * Map insert and delete each).
   */
  private readonly bindingOf: Array<Binding | null> = [];
  /**
   * Per slot, the model's entry the row was bound to: a binding whose entry is another (NF_REPEAT
   * replaced it, or it expired before a sweep noticed) starts a new row, as the kernel's new entry.
   */
  private readonly trackerOf: Array<Binding['tracker'] | null> = [];
  private readonly boundSlots: number[] = [];
  private boundAt = new Int32Array(INITIAL_SLOTS);
  /** A final row's bytes are built here. */
  private scratch = Buffer.allocUnsafe(1024);
  private readonly states = new Interned(STATE_INLINE);
  private readonly addrs = new Interned(MAX_ADDRS);
  private listed = false;

  /**
   * `rows`: where final rows past the first `keptRows` go. The first `keptRows` flows keep their
   * slot for good — their rows are read from it, nothing is written (a capture of tens of
   * thousands of flows pays nothing for the store); later flows' slots are reused once final.
   */
  constructor(
    private readonly rows: FlowRowStore = new RowsInMemory(),
    private readonly keptRows = 1 << 15,
  ) {}

  get size(): number {
    return this.n;
  }

  /**
   * The row (its place in the summary) of flow slot `s`, as an int32 (wraps past 2³¹ rows: it tells
   * rows apart): a double stored in a renderer's per-connection field is a box of its own there.
   */
  rowOfFlow(s: number): number {
    return this.rowOf[s]! | 0;
  }

  /** Slots ever used: the most rows live at once (for tests: bounded by the flows live, not the capture). */
  get slots(): number {
    return this.slotsUsed;
  }

  /**
   * The flow (its slot) of a packet with table key `key` (found on its binding without a lookup
   * when it has one); a new row, named by the entry's tuple in the original direction (`t`, or its
   * inverse when `reply`), if none.
   */
  flowOf(key: string, binding: Binding | null, t: Tuple, reply: boolean): number {
    let s = binding !== null && binding.key === key ? (binding.owner as number | null) : null;
    if (s === null || this.keyOf[s] !== key) s = this.byKey.get(key) ?? null;
    if (s !== null && binding !== null && this.trackerOf[s] !== binding.tracker && this.trackerOf[s] !== null) {
      // the row's entry is gone: NF_REPEAT replaced it (a SYN reopening TIME_WAIT), or it expired
      // and this packet made a new one before a sweep noticed — the row is final, as in settleGone
      const held = this.bindingOf[s];
      if (held !== null && held !== undefined) this.settle(s, held);
      if (binding.owner === s) binding.owner = null;
      this.byKey.delete(key);
      this.finish(s);
      s = null;
    }
    if (s === null) {
      s = this.open(key);
      this.src[s] = reply ? t.dst : t.src;
      this.dst[s] = reply ? t.src : t.dst;
      this.sport[s] = reply ? t.dport : t.sport;
      this.dport[s] = reply ? t.sport : t.dport;
    }
    if (binding !== null && binding.owner !== s) {
      const held = this.bindingOf[s]!;
      if (held !== null && held !== binding) this.settle(s, held);
      binding.owner = s;
      if (this.bindingOf[s] === null) {
        this.boundAt[s] = this.boundSlots.length;
        this.boundSlots.push(s);
      }
      this.bindingOf[s] = binding;
      this.trackerOf[s] = binding.tracker;
    }
    return s;
  }

  /** Count a packet of flow slot `s` (its reason is read only for a flow's first INVALID: formatting it costs). */
  count(s: number, d: Decision, missed: number, index: number): void {
    this.packets[s]!++;
    if (missed) this.missed[s]! += missed;
    // (every counter touched for every packet: see explain.ts)
    const invalid = d.verdict === 'INVALID' ? 1 : 0;
    this.invalid[s]! += invalid;
    this.ignore[s]! += d.verdict === 'IGNORE' ? 1 : 0;
    this.accept[s]! += d.verdict === 'ACCEPT' ? 1 : 0;
    if (invalid !== 0 && this.firstIndex[s] === 0) {
      this.firstIndex[s] = index + 1;
      const form = reasonForm(d);
      this.firstForm[s] = form;
      if (form >= 0) this.firstArg[s] = reasonArg(d);
      else this.firstText.set(s, d.reason);
    }
    this.finalState[s] = d.stateAfter;
  }

  /** Let go of the bindings of entries gone at `now` (expired or deleted), keeping their NAT names; their rows are final. */
  settleGone(now: number): void {
    // (backwards: settling swaps the last slot into the place of the one settled)
    for (let i = this.boundSlots.length - 1; i >= 0; i--) {
      const s = this.boundSlots[i]!;
      const b = this.bindingOf[s]!;
      if (!(b.tracker.dead || b.tracker.isExpired(now))) continue;
      this.settle(s, b);
      // the entry is gone: a packet of the same tuple later starts a new flow (as the kernel's new
      // entry does, and as explain's text counts it), and the row is final
      if (this.byKey.get(b.key) === s) {
        this.byKey.delete(b.key);
        b.owner = null;
        this.finish(s);
      }
    }
  }

  /**
   * Every flow's summary, in the order the capture showed them, read one at a time (a list of a
   * million flows is never held as a million objects). Ends the ledger: every row is made final.
   */
  list(): FlowList {
    if (!this.listed) {
      this.listed = true;
      while (this.boundSlots.length) {
        const s = this.boundSlots[this.boundSlots.length - 1]!;
        this.settle(s, this.bindingOf[s]!);
      }
      // every slot still live (a row whose entry never went), in any order: rows are stored by number
      for (let s = 0; s < this.slotsUsed; s++) if (this.keyOf[s] !== '') this.finish(s);
      this.byKey.clear();
    }
    return new FlowList(this);
  }

  /** Flow f's summary (a new object): from its slot (one of the first `keptRows`) or its final row. */
  summaryOf(f: number): FlowSummary {
    if (f < this.keptRows) return this.summaryOfSlot(f);
    const b = this.rows.getBytes(f);
    const flags = b[41]!;
    const stateId = b[43]!;
    const srcId = b.readUInt32LE(44);
    const dstId = b.readUInt32LE(48);
    let at = ROW_FIXED;
    let finalState: string;
    let src: string;
    let dst: string;
    let reasonText: string | null = null;
    let nat: { flow: string; reply: string; learnedFrom: Binding['learnedFrom'] } | null = null;
    // (texts in the order written: see ROW_FIXED)
    const next = (): string => {
      const n = b[at]! | (b[at + 1]! << 8);
      const t = b.toString('utf8', at + 2, at + 2 + n);
      at += 2 + n;
      return t;
    };
    if (stateId === STATE_INLINE) finalState = next();
    else finalState = this.states.texts[stateId]!;
    if (srcId === ADDR_INLINE) src = next();
    else src = this.addrs.texts[srcId]!;
    if (dstId === ADDR_INLINE) dst = next();
    else dst = this.addrs.texts[dstId]!;
    if (flags & HAS_TEXT) reasonText = next();
    if (flags & HAS_NAT) nat = { flow: next(), reply: next(), learnedFrom: LEARNED_FROM[b[42]!] ?? null };
    const firstIndex = b.readDoubleLE(24);
    const form = b.readInt8(32);
    return {
      flow: nat?.flow ?? tupleText({ src, sport: b.readUInt16LE(37), dst, dport: b.readUInt16LE(39) }),
      reply: nat?.reply ?? null,
      natLearnedFrom: nat?.learnedFrom ?? null,
      packets: b.readUInt32LE(0),
      accept: b.readUInt32LE(4),
      ignore: b.readUInt32LE(8),
      invalid: b.readUInt32LE(12),
      firstInvalid: firstIndex === 0 ? null : { index: firstIndex - 1, reason: form >= 0 ? formatReason(form, b.readUInt32LE(33)) : flags & TEXT_NULL ? null : reasonText },
      finalState,
      captureMissed: b.readDoubleLE(16),
    };
  }

  /** The summary of the flow in slot s (its row number is s: one of the first `keptRows`). */
  private summaryOfSlot(s: number): FlowSummary {
    const nat = this.nat.get(s);
    return {
      flow: tupleText(nat?.orig ?? { src: this.src[s]!, sport: this.sport[s]!, dst: this.dst[s]!, dport: this.dport[s]! }),
      reply: nat ? tupleText(nat.reply) : null,
      natLearnedFrom: nat?.learnedFrom ?? null,
      packets: this.packets[s]!,
      accept: this.accept[s]!,
      ignore: this.ignore[s]!,
      invalid: this.invalid[s]!,
      firstInvalid: this.firstIndex[s] === 0 ? null : { index: this.firstIndex[s]! - 1, reason: this.firstForm[s]! >= 0 ? formatReason(this.firstForm[s]!, this.firstArg[s]!) : (this.firstText.get(s) ?? null) },
      finalState: this.finalState[s]!,
      captureMissed: this.missed[s]!,
    };
  }

  private open(key: string): number {
    // the first `keptRows` flows: slot = row, for good; later ones: a slot freed by a final row
    let s = this.n < this.keptRows ? undefined : this.freeSlots.pop();
    if (s === undefined) {
      s = this.slotsUsed++;
      if (s === this.packets.length) this.grow();
    }
    this.byKey.set(key, s);
    this.keyOf[s] = key;
    this.rowOf[s] = this.n++;
    this.packets[s] = this.accept[s] = this.ignore[s] = this.invalid[s] = 0;
    this.missed[s] = this.firstIndex[s] = 0;
    this.finalState[s] = '';
    this.bindingOf[s] = null;
    this.trackerOf[s] = null;
    return s;
  }

  /** Row of slot s is final: into the store, and the slot is free (one of the first `keptRows`: it stays). */
  private finish(s: number): void {
    if (this.rowOf[s]! < this.keptRows) {
      this.keyOf[s] = '';
      return;
    }
    const textOf = this.firstForm[s]! < 0 && this.firstIndex[s] !== 0 && this.firstText.has(s);
    const reason = textOf ? this.firstText.get(s)! : null;
    const nat = this.nat.get(s);
    const natFlow = nat ? tupleText(nat.orig) : '';
    const natReply = nat ? tupleText(nat.reply) : '';
    const state = this.finalState[s]!;
    const src = this.src[s]!;
    const dst = this.dst[s]!;
    const stateId = this.states.idOf(state);
    const srcId = this.addrs.idOf(src);
    const dstId = this.addrs.idOf(dst);
    // room: at most 3 bytes of UTF-8 per UTF-16 unit
    let room = ROW_FIXED + 12 + 3 * (state.length + src.length + dst.length);
    if (reason !== null) room += 3 * reason.length;
    if (nat) room += 3 * (natFlow.length + natReply.length);
    if (room > this.scratch.length) this.scratch = Buffer.allocUnsafe(2 * room);
    const b = this.scratch;
    b.writeUInt32LE(this.packets[s]!, 0);
    b.writeUInt32LE(this.accept[s]!, 4);
    b.writeUInt32LE(this.ignore[s]!, 8);
    b.writeUInt32LE(this.invalid[s]!, 12);
    b.writeDoubleLE(this.missed[s]!, 16);
    b.writeDoubleLE(this.firstIndex[s]!, 24);
    b.writeInt8(this.firstForm[s]!, 32);
    b.writeUInt32LE(this.firstArg[s]!, 33);
    b.writeUInt16LE(this.sport[s]!, 37);
    b.writeUInt16LE(this.dport[s]!, 39);
    b[41] = (textOf ? HAS_TEXT : 0) | (textOf && reason === null ? TEXT_NULL : 0) | (nat ? HAS_NAT : 0);
    b[42] = nat ? Math.max(0, LEARNED_FROM.indexOf(nat.learnedFrom)) : 0;
    b[43] = stateId < 0 ? STATE_INLINE : stateId;
    b.writeUInt32LE(srcId < 0 ? ADDR_INLINE : srcId, 44);
    b.writeUInt32LE(dstId < 0 ? ADDR_INLINE : dstId, 48);
    let at = ROW_FIXED;
    if (stateId < 0) at = putText(b, at, state);
    if (srcId < 0) at = putText(b, at, src);
    if (dstId < 0) at = putText(b, at, dst);
    if (textOf) at = putText(b, at, reason ?? '');
    if (nat) {
      at = putText(b, at, natFlow);
      at = putText(b, at, natReply);
    }
    this.rows.putBytes(this.rowOf[s]!, b, at);
    // the slot is free: nothing of the flow stays
    this.keyOf[s] = this.src[s] = this.dst[s] = this.finalState[s] = '';
    this.firstIndex[s] = 0;
    this.firstForm[s] = 0;
    this.firstArg[s] = 0;
    this.firstText.delete(s);
    this.nat.delete(s);
    this.freeSlots.push(s);
  }

  private settle(s: number, b: Binding): void {
    if (b.natted) this.nat.set(s, { orig: tupleCopy(b.orig), reply: tupleCopy(b.reply), learnedFrom: b.learnedFrom });
    // out of the list: the last slot takes its place
    const at = this.boundAt[s]!;
    const last = this.boundSlots.pop()!;
    if (last !== s) {
      this.boundSlots[at] = last;
      this.boundAt[last] = at;
    }
    this.bindingOf[s] = null;
    this.trackerOf[s] = null;
  }

  private grow(): void {
    const cap = this.packets.length * 2;
    const up = <T extends Uint32Array | Uint16Array | Float64Array | Int8Array | Int32Array>(a: T, make: (n: number) => T): T => {
      const b = make(cap);
      b.set(a);
      return b;
    };
    this.rowOf = up(this.rowOf, (n) => new Float64Array(n));
    this.packets = up(this.packets, (n) => new Uint32Array(n));
    this.accept = up(this.accept, (n) => new Uint32Array(n));
    this.ignore = up(this.ignore, (n) => new Uint32Array(n));
    this.invalid = up(this.invalid, (n) => new Uint32Array(n));
    this.missed = up(this.missed, (n) => new Float64Array(n));
    this.sport = up(this.sport, (n) => new Uint16Array(n));
    this.dport = up(this.dport, (n) => new Uint16Array(n));
    this.firstIndex = up(this.firstIndex, (n) => new Float64Array(n));
    this.firstForm = up(this.firstForm, (n) => new Int8Array(n));
    this.firstArg = up(this.firstArg, (n) => new Uint32Array(n));
    this.boundAt = up(this.boundAt, (n) => new Int32Array(n));
  }
}

/** A replay's flows, in capture order: counted, iterated or read by position, built as read. */
export class FlowList implements Iterable<FlowSummary> {
  constructor(private readonly ledger: FlowLedger) {}

  get length(): number {
    return this.ledger.size;
  }

  /** The flow at position i (negative: from the end), or undefined. */
  at(i: number): FlowSummary | undefined {
    const n = this.ledger.size;
    const f = i < 0 ? n + i : i;
    return f >= 0 && f < n ? this.ledger.summaryOf(f) : undefined;
  }

  *[Symbol.iterator](): Iterator<FlowSummary> {
    for (let f = 0; f < this.ledger.size; f++) yield this.ledger.summaryOf(f);
  }

  /** Every flow as an array (for a few; a long list is better iterated). */
  toArray(): FlowSummary[] {
    return [...this];
  }
}
