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

/** Side bits: the side's highest end is set / its last ACK is. */
const HAS_END = 1;
const HAS_ACK = 2;
const INITIAL_SLOTS = 64;

/**
 * Per flow, a slot; per slot, two sides (index 2 × slot + side; side 0 sent the flow's first
 * captured packet). A side is its highest sequence end captured (seq + len + SYN + FIN), its last
 * ACK, its window and scale, and its holes. Kept in typed arrays, not an object per flow and
 * side: with tens of thousands of flows live at once, three objects and four boxed numbers per
 * flow were 290 bytes of heap each, copied by every young collection they lived through.
 */
export class CaptureGaps {
  private readonly slots = new Map<string, number>();
  /** Per slot: its flow's key ('' when free), the first packet's sender. */
  private keys: string[] = [];
  private firstSrc: string[] = [];
  private firstPort = new Int32Array(INITIAL_SLOTS);
  private flowMissed = new Float64Array(INITIAL_SLOTS);
  /** 1: an entry's binding has held the slot (so a packet of its tuple with none is a new entry's). */
  private bound = new Uint8Array(INITIAL_SLOTS);
  /** Per side. */
  private maxEnd = new Uint32Array(2 * INITIAL_SLOTS);
  private lastAck = new Uint32Array(2 * INITIAL_SLOTS);
  private window = new Uint32Array(2 * INITIAL_SLOTS);
  private wscale = new Uint8Array(2 * INITIAL_SLOTS);
  private bits = new Uint8Array(2 * INITIAL_SLOTS);
  /** Holes as [start, end) pairs, flat: [s0, e0, s1, e1, …], edited in place; null: none yet. */
  private holes: Array<number[] | null> = [];
  private used = 0;
  private readonly free: number[] = [];
  /** Bytes the capture missed in all flows. */
  missed = 0;
  /** Synthetic segments for the model, from the last `observe` (valid until the next call). */
  readonly fills: TcpPacketView[] = [];

  /**
   * Look at one captured packet of flow `key` before the model does. Returns the bytes this
   * packet shows the capture missed (0 mostly) and leaves in `fills` the segments to feed the
   * model first.
   */
  observe(p: TcpPacketView, key: string, holder: { gaps: number } | null = null): number {
    if (this.fills.length) this.fills.length = 0;
    // `holder` (explain: the entry's NAT binding, which lives no longer than the entry) keeps the
    // flow's slot found once: no lookup per packet (a slot given to another flow since is not its)
    let f = holder !== null ? holder.gaps : -1;
    if (f < 0 || this.keys[f] !== key) {
      const found = this.slots.get(key);
      if (found === undefined) f = this.open(key, p.src, p.srcPort);
      else if (holder === null && this.bound[found] === 1) {
        // the slot was an entry's, and the caller found no live entry for the tuple: it expired or
        // was deleted since (before a sweep let the slot go) — the kernel's next entry starts afresh
        f = found;
        this.start(f, key, p.src, p.srcPort);
      } else f = found;
      if (holder !== null) {
        holder.gaps = f;
        this.bound[f] = 1;
      }
    }
    const mine = this.firstSrc[f] === p.src && this.firstPort[f] === p.srcPort ? 2 * f : 2 * f + 1;
    const peer = mine ^ 1;
    let missed = 0;

    if (p.flags & SYN && p.options.wscale !== undefined) this.wscale[mine] = Math.min(p.options.wscale, 14);
    if (!(p.flags & RST)) {
      // ACK beyond anything captured from the peer: the capture lost the peer's data
      // (seqAfter / seqDiff written out, as in the model's window checks: a call V8 does not inline boxes a u32 it is given)
      const gap = (p.ack - this.maxEnd[peer]!) | 0;
      if (p.flags & ACK && this.bits[peer]! & HAS_END && gap > 0) {
        if (gap < MAX_GAP) {
          missed += gap;
          this.fill(p, mine, peer, gap);
          this.maxEnd[peer] = p.ack;
        }
      }
      // holes of the peer now ACKed without a retransmission: lost by the capture, not the network
      const peerHoles = this.holes[peer];
      if (p.flags & ACK && peerHoles !== null && peerHoles !== undefined && peerHoles.length) missed += confirm(peerHoles, p.ack);
      this.segment(p, mine);
      if (p.flags & ACK) {
        this.lastAck[mine] = p.ack;
        this.bits[mine] = this.bits[mine]! | HAS_ACK;
      }
      this.window[mine] = p.window;
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
      this.holes[2 * f] = this.holes[2 * f + 1] = null;
      this.free.push(f);
    });
  }

  /**
   * The entry of the flow of `p` was replaced by a new one (NF_REPEAT: a SYN reopening TIME_WAIT or
   * CLOSE) after `observe` saw `p`: the new entry's sides start afresh, from `p`.
   */
  restart(p: TcpPacketView, key: string, holder: { gaps: number } | null): void {
    const f = holder !== null && holder.gaps >= 0 && this.keys[holder.gaps] === key ? holder.gaps : this.slots.get(key);
    if (f === undefined) return;
    this.start(f, key, p.src, p.srcPort);
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

  /** A slot for a new flow whose first captured packet is from src:port, its sides empty. */
  private open(key: string, src: string, port: number): number {
    let f = this.free.pop();
    if (f === undefined) {
      f = this.used++;
      if (f === this.firstPort.length) this.grow();
    }
    this.slots.set(key, f);
    this.start(f, key, src, port);
    return f;
  }

  /** Slot f for flow `key` whose first captured packet is from src:port, its sides empty, no entry's yet. */
  private start(f: number, key: string, src: string, port: number): void {
    this.keys[f] = key;
    this.firstSrc[f] = src;
    this.firstPort[f] = port;
    this.flowMissed[f] = 0;
    this.bound[f] = 0;
    for (const i of [2 * f, 2 * f + 1]) {
      this.maxEnd[i] = this.lastAck[i] = this.window[i] = this.wscale[i] = this.bits[i] = 0;
      this.holes[i] = null;
    }
  }

  private grow(): void {
    const n = 2 * this.firstPort.length;
    const up = <T extends Int32Array | Uint32Array | Uint8Array | Float64Array>(a: T, b: T): T => (b.set(a), b);
    this.firstPort = up(this.firstPort, new Int32Array(n));
    this.bound = up(this.bound, new Uint8Array(n));
    this.flowMissed = up(this.flowMissed, new Float64Array(n));
    this.maxEnd = up(this.maxEnd, new Uint32Array(2 * n));
    this.lastAck = up(this.lastAck, new Uint32Array(2 * n));
    this.window = up(this.window, new Uint32Array(2 * n));
    this.wscale = up(this.wscale, new Uint8Array(2 * n));
    this.bits = up(this.bits, new Uint8Array(2 * n));
  }

  /** A data segment of side `s`: advance its highest end, open a hole on a jump, fill holes on a retransmission. */
  private segment(p: TcpPacketView, s: number): void {
    const len = p.payloadLength + (p.flags & SYN ? 1 : 0) + (p.flags & FIN ? 1 : 0);
    const end = (p.seq + len) >>> 0;
    if (!(this.bits[s]! & HAS_END) || p.flags & SYN) {
      this.maxEnd[s] = end;
      this.bits[s] = this.bits[s]! | HAS_END;
      return;
    }
    if (len === 0) return;
    const maxEnd = this.maxEnd[s]!;
    const holes = this.holes[s] ?? null;
    if (((maxEnd - p.seq) | 0) < 0 && ((p.seq - maxEnd) | 0) < MAX_GAP) {
      // (the first hole as a literal of its two numbers: an empty array pushed to grows room for 17)
      if (holes === null) this.holes[s] = [maxEnd, p.seq];
      else if (holes.length < 2 * MAX_HOLES) holes.push(maxEnd, p.seq);
    } else if (holes !== null && holes.length) {
      // a retransmission: what it covers was not lost by the capture
      uncover(holes, p.seq, end);
    }
    if (((maxEnd - end) | 0) < 0) this.maxEnd[s] = end;
  }

  /**
   * The exchange the capture lost, one window at a time: the peer's data from its highest
   * captured end, then our ACK of it (so the model's window moves as the kernel's did).
   */
  private fill(p: TcpPacketView, mine: number, peer: number, gap: number): void {
    const window = Math.max(this.window[mine]! * 2 ** this.wscale[mine]!, 1024);
    const step = Math.max(window, Math.ceil(gap / MAX_FILL_STEPS));
    const myEnd = this.bits[mine]! & HAS_END ? this.maxEnd[mine]! : p.seq;
    const peerAck = this.bits[peer]! & HAS_ACK ? this.lastAck[peer]! : myEnd;
    let seq = this.maxEnd[peer]!;
    for (let left = gap; left > 0; ) {
      const len = Math.min(left, step);
      this.fills.push(view(p, true, seq, peerAck, len, this.window[peer]! || p.window));
      seq = seqAdd(seq, len);
      left -= len;
      this.fills.push(view(p, false, myEnd, seq, 0, this.window[mine]! || p.window));
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
