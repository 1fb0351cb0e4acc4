/**
 * Capture loss, told apart from what the kernel did. A capture that dropped packets (a busy
 * tcpdump, a ring buffer overrun, a capture started on one interface of several) shows a peer
 * ACKing data that was never captured. Replayed as is, the model — like conntrack fed only those
 * packets — finds "ACK is over upper bound (ACKed data not seen yet)" and every later packet of
 * the flow goes INVALID, blaming the kernel for what the capture lost.
 *
 * Per flow and direction this tracks the highest sequence captured and the holes (sequence
 * jumps). An ACK beyond everything captured from its peer means the capture missed those bytes
 * (Wireshark's "ACKed segment that wasn't captured"): they are counted, and the exchange the
 * capture lost (the peer's data, our ACK of it, one window at a time) is handed back to be fed to
 * the model first, so its state is where the kernel's was. A hole the peer later ACKs without a
 * retransmission filling it is counted too ("previous segment not captured", confirmed).
 *
 * Pure, no I/O; one small call per packet from explain.ts.
 */
import { seqAdd, seqAfter, seqBefore, seqDiff } from '../packet/seq.js';
import type { TcpPacketView } from './model.js';

const SYN = 0x02;
const FIN = 0x01;
const RST = 0x04;
const ACK = 0x10;
/** More than this between captured data and an ACK is not a capture that lost packets. */
const MAX_GAP = 1 << 30;
const MAX_HOLES = 16;
const MAX_FILL_STEPS = 64;

const INITIAL_SLOTS = 64;

/**
 * A slot's record in `st`: 8 int32, half a cache line — with tens of thousands of flows live, a
 * packet's gap check touched a line in each of eight arrays (its slot's key, first sender, port,
 * and its sides' ends, ACKs, windows, scales, bits and holes), most of them a cache miss.
 */
const STRIDE = 8;
/** Which flow holds the slot (0: none): a holder's slot is its own while this is its `gapsGen`. */
const GEN = 0;
/** The first captured packet's source port | its destination port << 16 (side 0 sent it). */
const PORTS = 1;
/** Side s's fields at SIDE + 3 × s: its highest end captured, its last ACK, and WSB. */
const SIDE = 2;
const END = 0;
const LAST_ACK = 1;
/** The side's window (16 bits) | its scale << 16 | the bits below. */
const WSB = 2;
const WINDOW_MASK = 0xffff;
const SCALE_SHIFT = 16;
const SCALE_MASK = 0xf << SCALE_SHIFT;
/** The side's highest end is set / its last ACK is / it has holes (see `holes`). */
const HAS_END = 1 << 20;
const HAS_ACK = 1 << 21;
const HAS_HOLES = 1 << 22;
/** In side 0's WSB: an entry's binding has held the slot (so a packet of its tuple with none is a new entry's). */
const BOUND = 1 << 23;

/** Where `observe` keeps a flow's slot on what stays with its conntrack entry (explain: the NAT binding). */
export interface GapsHolder {
  gaps: number;
  gapsGen: number;
}

/**
 * Per flow, a slot; per slot, two sides (side 0 sent the flow's first captured packet). A side is
 * its highest sequence end captured (seq + len + SYN + FIN), its last ACK, its window and scale,
 * and its holes. Kept in typed arrays, not an object per flow and side: with tens of thousands of
 * flows live at once, three objects and four boxed numbers per flow were 290 bytes of heap each,
 * copied by every young collection they lived through. Sequence numbers are kept as int32 (the
 * same 32 bits) and read as u32 where they leave.
 */
export class CaptureGaps {
  private readonly slots = new Map<string, number>();
  /** Per slot: its flow's key ('' when free), the first packet's sender. */
  private keys: string[] = [];
  private firstSrc: string[] = [];
  private st = new Int32Array(STRIDE * INITIAL_SLOTS);
  private flowMissed = new Float64Array(INITIAL_SLOTS);
  /** Per side (index 2 × slot + side): holes as [start, end) pairs, flat: [s0, e0, s1, e1, …], edited in place; null: none yet. */
  private holes: Array<number[] | null> = [];
  private used = 0;
  private readonly free: number[] = [];
  /** The last slot generation given (see GEN). */
  private gen = 0;
  /** Bytes the capture missed in all flows. */
  missed = 0;
  /** Synthetic segments for the model, from the last `observe` (valid until the next call). */
  readonly fills: TcpPacketView[] = [];

  /**
   * Look at one captured packet of flow `key` before the model does. Returns the bytes this
   * packet shows the capture missed (0 mostly) and leaves in `fills` the segments to feed the
   * model first.
   */
  observe(p: TcpPacketView, key: string, holder: GapsHolder | null = null): number {
    if (this.fills.length) this.fills.length = 0;
    let st = this.st;
    // `holder` (explain: the entry's NAT binding, which lives no longer than the entry) keeps the
    // flow's slot found once: no lookup per packet (a slot given to another flow since is not its)
    let f = holder !== null ? holder.gaps : -1;
    if (f < 0 || st[f * STRIDE + GEN] !== holder!.gapsGen) {
      const found = this.slots.get(key);
      if (found === undefined) f = this.open(key, p);
      else if (holder === null && st[found * STRIDE + SIDE + WSB]! & BOUND) {
        // the slot was an entry's, and the caller found no live entry for the tuple: it expired or
        // was deleted since (before a sweep let the slot go) — the kernel's next entry starts afresh
        f = found;
        this.start(f, key, p);
      } else f = found;
      // (open may have grown the array)
      st = this.st;
      if (holder !== null) {
        holder.gaps = f;
        holder.gapsGen = st[f * STRIDE + GEN]!;
        st[f * STRIDE + SIDE + WSB] = st[f * STRIDE + SIDE + WSB]! | BOUND;
      }
    }
    const base = f * STRIDE;
    // the sender's side: its port tells it, unless both ends have the same port
    const ports = st[base + PORTS]!;
    const port = ports & 0xffff;
    const first = port !== ports >>> 16 ? p.srcPort === port : p.srcPort === port && this.firstSrc[f] === p.src;
    const mine = first ? 2 * f : 2 * f + 1;
    const peer = mine ^ 1;
    const my = base + SIDE + (first ? 0 : 3);
    const their = base + SIDE + (first ? 3 : 0);
    let missed = 0;

    if (p.flags & SYN && p.options.wscale !== undefined) st[my + WSB] = (st[my + WSB]! & ~SCALE_MASK) | (Math.min(p.options.wscale, 14) << SCALE_SHIFT);
    if (!(p.flags & RST)) {
      // ACK beyond anything captured from the peer: the capture lost the peer's data
      // (seqAfter / seqDiff written out, as in the model's window checks: a call V8 does not inline boxes a u32 it is given)
      const theirBits = st[their + WSB]!;
      const gap = (p.ack - st[their + END]!) | 0;
      if (p.flags & ACK && theirBits & HAS_END && gap > 0) {
        if (gap < MAX_GAP) {
          missed += gap;
          this.fill(p, my, their, gap);
          st[their + END] = p.ack;
        }
      }
      // holes of the peer now ACKed without a retransmission: lost by the capture, not the network
      if (p.flags & ACK && theirBits & HAS_HOLES) {
        const peerHoles = this.holes[peer]!;
        missed += confirm(peerHoles, p.ack);
        if (!peerHoles.length) st[their + WSB] = st[their + WSB]! & ~HAS_HOLES;
      }
      this.segment(p, mine, my);
      // (the window as the header's 16 bits)
      const wsb = (st[my + WSB]! & ~WINDOW_MASK) | (p.window & WINDOW_MASK);
      if (p.flags & ACK) {
        st[my + LAST_ACK] = p.ack;
        st[my + WSB] = wsb | HAS_ACK;
      } else st[my + WSB] = wsb;
    }
    if (missed) {
      this.flowMissed[f] = this.flowMissed[f]! + missed;
      this.missed += missed;
    }
    return missed;
  }

  /**
   * Forget the flows `keep` says are gone (their conntrack entry expired or was deleted): what is
   * remembered is bounded by the flow table, not by the capture. A flow that comes back starts
   * afresh, as the kernel's new entry does.
   */
  sweep(keep: (key: string) => boolean): void {
    this.slots.forEach((f, k) => {
      if (keep(k)) return;
      this.slots.delete(k);
      this.keys[f] = '';
      this.firstSrc[f] = '';
      this.st[f * STRIDE + GEN] = 0;
      this.holes[2 * f] = this.holes[2 * f + 1] = null;
      this.free.push(f);
    });
  }

  /**
   * The entry of the flow of `p` was replaced by a new one (NF_REPEAT: a SYN reopening TIME_WAIT or
   * CLOSE) after `observe` saw `p`: the new entry's sides start afresh, from `p`.
   */
  restart(p: TcpPacketView, key: string, holder: GapsHolder | null): void {
    const f = holder !== null && holder.gaps >= 0 && this.st[holder.gaps * STRIDE + GEN] === holder.gapsGen ? holder.gaps : this.slots.get(key);
    if (f === undefined) return;
    this.start(f, key, p);
    if (holder !== null) {
      // (the new entry's binding holds it)
      holder.gaps = f;
      holder.gapsGen = this.st[f * STRIDE + GEN]!;
      this.st[f * STRIDE + SIDE + WSB] = this.st[f * STRIDE + SIDE + WSB]! | BOUND;
    }
    this.observe(p, key, holder);
  }

  /** Bytes the capture missed in one flow. */
  missedIn(key: string): number {
    const f = this.slots.get(key);
    return f === undefined ? 0 : this.flowMissed[f]!;
  }

  /** Flows remembered (for tests: bounded by the table). */
  get size(): number {
    return this.slots.size;
  }

  /** A slot for a new flow whose first captured packet is `p`, its sides empty. */
  private open(key: string, p: TcpPacketView): number {
    let f = this.free.pop();
    if (f === undefined) {
      f = this.used++;
      if (f === this.flowMissed.length) this.grow();
    }
    this.slots.set(key, f);
    this.start(f, key, p);
    return f;
  }

  /** Slot f for flow `key` whose first captured packet is `p`, its sides empty, no entry's yet. */
  private start(f: number, key: string, p: TcpPacketView): void {
    this.keys[f] = key;
    this.firstSrc[f] = p.src;
    this.flowMissed[f] = 0;
    const base = f * STRIDE;
    this.st.fill(0, base, base + STRIDE);
    // (never 0: that is a free slot's)
    this.gen = (this.gen + 1) | 0 || 1;
    this.st[base + GEN] = this.gen;
    this.st[base + PORTS] = (p.srcPort & 0xffff) | (p.dstPort << 16);
    this.holes[2 * f] = this.holes[2 * f + 1] = null;
  }

  private grow(): void {
    const n = 2 * this.flowMissed.length;
    const st = new Int32Array(STRIDE * n);
    st.set(this.st);
    this.st = st;
    const missed = new Float64Array(n);
    missed.set(this.flowMissed);
    this.flowMissed = missed;
  }

  /**
   * A data segment of side `s` (its fields at `at` in `st`): advance its highest end, open a hole
   * on a jump, fill holes on a retransmission.
   */
  private segment(p: TcpPacketView, s: number, at: number): void {
    const st = this.st;
    const len = p.payloadLength + (p.flags & SYN ? 1 : 0) + (p.flags & FIN ? 1 : 0);
    const end = (p.seq + len) | 0;
    const bits = st[at + WSB]!;
    if (!(bits & HAS_END) || p.flags & SYN) {
      st[at + END] = end;
      st[at + WSB] = bits | HAS_END;
      return;
    }
    if (len === 0) return;
    const maxEnd = st[at + END]!;
    if (((maxEnd - p.seq) | 0) < 0 && ((p.seq - maxEnd) | 0) < MAX_GAP) {
      // (the first hole as a literal of its two numbers: an empty array pushed to grows room for 17)
      const holes = this.holes[s] ?? null;
      if (holes === null) this.holes[s] = [maxEnd >>> 0, p.seq];
      else if (holes.length < 2 * MAX_HOLES) holes.push(maxEnd >>> 0, p.seq);
      st[at + WSB] = st[at + WSB]! | HAS_HOLES;
    } else if (bits & HAS_HOLES) {
      // a retransmission: what it covers was not lost by the capture
      const holes = this.holes[s]!;
      uncover(holes, p.seq, end >>> 0);
      if (!holes.length) st[at + WSB] = st[at + WSB]! & ~HAS_HOLES;
    }
    if (((maxEnd - end) | 0) < 0) st[at + END] = end;
  }

  /**
   * The exchange the capture lost, one window at a time: the peer's data from its highest
   * captured end, then our ACK of it (so the model's window moves as the kernel's did).
   */
  private fill(p: TcpPacketView, my: number, their: number, gap: number): void {
    const st = this.st;
    const myWindow = st[my + WSB]! & WINDOW_MASK;
    const theirWindow = st[their + WSB]! & WINDOW_MASK;
    const window = Math.max(myWindow * 2 ** ((st[my + WSB]! & SCALE_MASK) >> SCALE_SHIFT), 1024);
    const step = Math.max(window, Math.ceil(gap / MAX_FILL_STEPS));
    const myEnd = st[my + WSB]! & HAS_END ? st[my + END]! >>> 0 : p.seq;
    const peerAck = st[their + WSB]! & HAS_ACK ? st[their + LAST_ACK]! >>> 0 : myEnd;
    let seq = st[their + END]! >>> 0;
    for (let left = gap; left > 0; ) {
      const len = Math.min(left, step);
      this.fills.push(view(p, true, seq, peerAck, len, theirWindow || p.window));
      seq = seqAdd(seq, len);
      left -= len;
      this.fills.push(view(p, false, myEnd, seq, 0, myWindow || p.window));
    }
  }
}

/** Count and drop the holes the ACK covers (partly covered: the covered part), in place. */
function confirm(h: number[], ack: number): number {
  let n = 0;
  let w = 0;
  for (let r = 0; r < h.length; r += 2) {
    let hs = h[r]!;
    const he = h[r + 1]!;
    if (seqAfter(ack, hs)) {
      if (!seqBefore(ack, he)) {
        n += seqDiff(he, hs);
        continue;
      }
      n += seqDiff(ack, hs);
      hs = ack;
    }
    h[w++] = hs;
    h[w++] = he;
  }
  h.length = w;
  return n;
}

/** Take [seq, end) out of the holes (a retransmission covered it), in place: a hole may split in two. */
function uncover(h: number[], seq: number, end: number): void {
  const n = h.length;
  let w = 0;
  const extra: number[] = [];
  for (let r = 0; r < n; r += 2) {
    const hs = h[r]!;
    const he = h[r + 1]!;
    if (!seqBefore(seq, he) || !seqAfter(end, hs)) {
      h[w++] = hs;
      h[w++] = he;
      continue;
    }
    const left = seqBefore(hs, seq);
    const right = seqBefore(end, he);
    if (left) {
      h[w++] = hs;
      h[w++] = seq;
    }
    if (right) {
      // a split (the retransmission fell inside the hole) needs a slot past the ones read
      if (left) extra.push(end, he);
      else {
        h[w++] = end;
        h[w++] = he;
      }
    }
  }
  h.length = w;
  for (const x of extra) h.push(x);
}

/** A synthetic ACK segment of the flow of `p`: from its peer (`fromPeer`) or from its sender. */
function view(p: TcpPacketView, fromPeer: boolean, seq: number, ack: number, len: number, window: number): TcpPacketView {
  return {
    src: fromPeer ? p.dst : p.src,
    dst: fromPeer ? p.src : p.dst,
    srcPort: fromPeer ? p.dstPort : p.srcPort,
    dstPort: fromPeer ? p.srcPort : p.dstPort,
    seq,
    ack,
    flags: ACK,
    window,
    payloadLength: len,
    dataOffset: 20,
    options: {},
    hasOptions: false,
    tsSec: p.tsSec,
  };
}
