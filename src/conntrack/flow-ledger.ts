/**
 * explain's per-flow summary, one row per flow the capture had (its conntrack key), kept compact:
 * counters and the first INVALID (its index, its reason's form and number) in typed arrays, the
 * original tuple as shared strings, NAT tuples only for the flows that have them. A replay of millions of flows keeps tens of bytes per flow,
 * not a few objects each; the entries' bindings are held only while the kernel would keep the
 * entry (their NAT tuples are copied out when it goes). Pure.
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

interface NatNames {
  flow: string;
  reply: string;
  learnedFrom: Binding['learnedFrom'];
}

const INITIAL_FLOWS = 16;

export class FlowLedger {
  private readonly byKey = new Map<string, number>();
  private n = 0;
  // (small at first: the first growth comes before V8 optimizes the replay, not after it — code
  // first run after optimizing throws the optimized code away)
  private packets = new Uint32Array(INITIAL_FLOWS);
  private accept = new Uint32Array(INITIAL_FLOWS);
  private ignore = new Uint32Array(INITIAL_FLOWS);
  private invalid = new Uint32Array(INITIAL_FLOWS);
  private missed = new Float64Array(INITIAL_FLOWS);
  private sport = new Uint16Array(INITIAL_FLOWS);
  private dport = new Uint16Array(INITIAL_FLOWS);
  private readonly src: string[] = [];
  private readonly dst: string[] = [];
  private readonly finalState: string[] = [];
  /**
   * A flow's first INVALID: its packet's index + 1 (0: none), and its reason as the model keeps it
   * (a window check's form and number, else its text): no object and no text per INVALID flow — a
   * capture of a failing system has an INVALID in most of its flows.
   */
  private firstIndex = new Float64Array(INITIAL_FLOWS);
  private firstForm = new Int8Array(INITIAL_FLOWS);
  private firstArg = new Uint32Array(INITIAL_FLOWS);
  private readonly firstText = new Map<number, string | null>();
  private readonly nat = new Map<number, NatNames>();
  /**
   * Flows whose entry may still live, with its binding (for its NAT tuples once known): by row,
   * and the rows that have one as a list (a flood of new entries: an array push and a swap, not a
   * Map insert and delete each).
   */
  private readonly bindingOf: Array<Binding | null> = [];
  private readonly boundRows: number[] = [];
  private boundAt = new Int32Array(INITIAL_FLOWS);

  get size(): number {
    return this.n;
  }

  /**
   * The flow of a packet with table key `key` (found on its binding without a lookup when it has
   * one); a new row, named by the entry's tuple in the original direction (`t`, or its inverse
   * when `reply`), if none.
   */
  flowOf(key: string, binding: Binding | null, t: Tuple, reply: boolean): number {
    let f = binding !== null && binding.key === key ? (binding.owner as number | null) : null;
    if (f === null) f = this.byKey.get(key) ?? null;
    if (f === null) {
      f = this.n++;
      if (f === this.packets.length) this.grow();
      this.byKey.set(key, f);
      this.src.push(reply ? t.dst : t.src);
      this.dst.push(reply ? t.src : t.dst);
      this.sport[f] = reply ? t.dport : t.sport;
      this.dport[f] = reply ? t.sport : t.dport;
      this.finalState.push('');
      this.bindingOf.push(null);
    }
    if (binding !== null && binding.owner !== f) {
      const held = this.bindingOf[f]!;
      if (held !== null && held !== binding) this.settle(f, held);
      binding.owner = f;
      if (this.bindingOf[f] === null) {
        this.boundAt[f] = this.boundRows.length;
        this.boundRows.push(f);
      }
      this.bindingOf[f] = binding;
    }
    return f;
  }

  /** Count a packet of flow `f` (its reason is read only for a flow's first INVALID: formatting it costs). */
  count(f: number, d: Decision, missed: number, index: number): void {
    this.packets[f]!++;
    if (missed) this.missed[f]! += missed;
    // (every counter touched for every packet: see explain.ts)
    const invalid = d.verdict === 'INVALID' ? 1 : 0;
    this.invalid[f]! += invalid;
    this.ignore[f]! += d.verdict === 'IGNORE' ? 1 : 0;
    this.accept[f]! += d.verdict === 'ACCEPT' ? 1 : 0;
    if (invalid !== 0 && this.firstIndex[f] === 0) {
      this.firstIndex[f] = index + 1;
      const form = reasonForm(d);
      this.firstForm[f] = form;
      if (form >= 0) this.firstArg[f] = reasonArg(d);
      else this.firstText.set(f, d.reason);
    }
    this.finalState[f] = d.stateAfter;
  }

  /** Let go of the bindings of entries gone at `now` (expired or deleted), keeping their NAT names, and their keys. */
  settleGone(now: number): void {
    // (backwards: settling swaps the last row into the place of the one settled)
    for (let i = this.boundRows.length - 1; i >= 0; i--) {
      const f = this.boundRows[i]!;
      const b = this.bindingOf[f]!;
      if (!(b.tracker.dead || b.tracker.isExpired(now))) continue;
      this.settle(f, b);
      // the entry is gone: a packet of the same tuple later starts a new flow (as the kernel's new
      // entry does, and as explain's text counts it), and the key is not held for the capture
      if (this.byKey.get(b.key) === f) this.byKey.delete(b.key);
    }
  }

  /**
   * Every flow's summary, in the order the capture showed them, read one at a time (a list of a
   * million flows is never held as a million objects). Ends the ledger: bindings still held are
   * settled first.
   */
  list(): FlowList {
    while (this.boundRows.length) {
      const f = this.boundRows[this.boundRows.length - 1]!;
      this.settle(f, this.bindingOf[f]!);
    }
    return new FlowList(this);
  }

  /** Flow f's summary (a new object). */
  summaryOf(f: number): FlowSummary {
    const nat = this.nat.get(f);
    return {
      flow: nat?.flow ?? tupleText({ src: this.src[f]!, sport: this.sport[f]!, dst: this.dst[f]!, dport: this.dport[f]! }),
      reply: nat?.reply ?? null,
      natLearnedFrom: nat?.learnedFrom ?? null,
      packets: this.packets[f]!,
      accept: this.accept[f]!,
      ignore: this.ignore[f]!,
      invalid: this.invalid[f]!,
      firstInvalid: this.firstIndex[f] === 0 ? null : { index: this.firstIndex[f]! - 1, reason: this.firstForm[f]! >= 0 ? formatReason(this.firstForm[f]!, this.firstArg[f]!) : (this.firstText.get(f) ?? null) },
      finalState: this.finalState[f]!,
      captureMissed: this.missed[f]!,
    };
  }

  private settle(f: number, b: Binding): void {
    if (b.natted) this.nat.set(f, { flow: tupleText(b.orig), reply: tupleText(b.reply), learnedFrom: b.learnedFrom });
    // out of the list: the last row takes its place
    const at = this.boundAt[f]!;
    const last = this.boundRows.pop()!;
    if (last !== f) {
      this.boundRows[at] = last;
      this.boundAt[last] = at;
    }
    this.bindingOf[f] = null;
  }

  private grow(): void {
    const cap = this.packets.length * 2;
    const up = <T extends Uint32Array | Uint16Array | Float64Array | Int8Array | Int32Array>(a: T, make: (n: number) => T): T => {
      const b = make(cap);
      b.set(a);
      return b;
    };
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
