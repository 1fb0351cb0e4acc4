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

interface Side {
  /** Highest sequence end captured (seq + len + SYN + FIN); null before the first packet. */
  maxEnd: number;
  /** maxEnd is set (a number field, never null: V8 keeps it unboxed, no allocation per store). */
  hasEnd: boolean;
  lastAck: number;
  hasAck: boolean;
  window: number;
  wscale: number;
  /** Holes as [start, end) pairs, flat: [s0, e0, s1, e1, …], edited in place. */
  holes: number[] | null;
}

interface FlowGaps {
  /** The side that sent the first captured packet (side 0). */
  firstSrc: string;
  firstPort: number;
  /** The first packet's sender's side, and its peer's. */
  first: Side;
  second: Side;
  missed: number;
}

const side = (): Side => ({ maxEnd: 0, hasEnd: false, lastAck: 0, hasAck: false, window: 0, wscale: 0, holes: null });

export class CaptureGaps {
  private readonly flows = new Map<string, FlowGaps>();
  /** Bytes the capture missed in all flows. */
  missed = 0;
  /** Synthetic segments for the model, from the last `observe` (valid until the next call). */
  readonly fills: TcpPacketView[] = [];

  /**
   * Look at one captured packet of flow `key` before the model does. Returns the bytes this
   * packet shows the capture missed (0 mostly) and leaves in `fills` the segments to feed the
   * model first.
   */
  observe(p: TcpPacketView, key: string, holder: { gaps: unknown } | null = null): number {
    if (this.fills.length) this.fills.length = 0;
    // `holder` (explain: the entry's NAT binding, which lives no longer than the entry) keeps the
    // flow's state found once: no lookup per packet
    let f = holder !== null ? (holder.gaps as FlowGaps | null) : null;
    if (f === null) {
      f = this.flows.get(key) ?? null;
      if (f === null) {
        f = { firstSrc: p.src, firstPort: p.srcPort, first: side(), second: side(), missed: 0 };
        this.flows.set(key, f);
      }
      if (holder !== null) holder.gaps = f;
    }
    const first = f.firstSrc === p.src && f.firstPort === p.srcPort;
    const mine = first ? f.first : f.second;
    const peer = first ? f.second : f.first;
    let missed = 0;

    if (p.flags & SYN && p.options.wscale !== undefined) mine.wscale = Math.min(p.options.wscale, 14);
    if (!(p.flags & RST)) {
      // ACK beyond anything captured from the peer: the capture lost the peer's data
      if (p.flags & ACK && peer.hasEnd && seqAfter(p.ack, peer.maxEnd)) {
        const gap = seqDiff(p.ack, peer.maxEnd);
        if (gap > 0 && gap < MAX_GAP) {
          missed += gap;
          this.fill(p, mine, peer, gap);
          peer.maxEnd = p.ack;
        }
      }
      // holes of the peer now ACKed without a retransmission: lost by the capture, not the network
      if (p.flags & ACK && peer.holes?.length) missed += confirm(peer.holes, p.ack);
      this.segment(p, mine);
      if (p.flags & ACK) {
        mine.lastAck = p.ack;
        mine.hasAck = true;
      }
      mine.window = p.window;
    }
    if (missed) {
      f.missed += missed;
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
    for (const k of this.flows.keys()) if (!keep(k)) this.flows.delete(k);
  }

  /** Bytes the capture missed in one flow. */
  missedIn(key: string): number {
    return this.flows.get(key)?.missed ?? 0;
  }

  /** A data segment of `s`: advance its highest end, open a hole on a jump, fill holes on a retransmission. */
  private segment(p: TcpPacketView, s: Side): void {
    const len = p.payloadLength + (p.flags & SYN ? 1 : 0) + (p.flags & FIN ? 1 : 0);
    const end = seqAdd(p.seq, len);
    if (!s.hasEnd || p.flags & SYN) {
      s.maxEnd = end;
      s.hasEnd = true;
      return;
    }
    if (len === 0) return;
    if (seqAfter(p.seq, s.maxEnd) && seqDiff(p.seq, s.maxEnd) < MAX_GAP) {
      // (the first hole as a literal of its two numbers: an empty array pushed to grows room for 17)
      if (s.holes === null) s.holes = [s.maxEnd, p.seq];
      else if (s.holes.length < 2 * MAX_HOLES) s.holes.push(s.maxEnd, p.seq);
    } else if (s.holes?.length) {
      // a retransmission: what it covers was not lost by the capture
      uncover(s.holes, p.seq, end);
    }
    if (seqAfter(end, s.maxEnd)) s.maxEnd = end;
  }

  /**
   * The exchange the capture lost, one window at a time: the peer's data from its highest
   * captured end, then our ACK of it (so the model's window moves as the kernel's did).
   */
  private fill(p: TcpPacketView, mine: Side, peer: Side, gap: number): void {
    const window = Math.max(mine.window * 2 ** mine.wscale, 1024);
    const step = Math.max(window, Math.ceil(gap / MAX_FILL_STEPS));
    const myEnd = mine.hasEnd ? mine.maxEnd : p.seq;
    let seq = peer.maxEnd;
    for (let left = gap; left > 0; ) {
      const len = Math.min(left, step);
      this.fills.push(view(p, true, seq, peer.hasAck ? peer.lastAck : myEnd, len, peer.window || p.window));
      seq = seqAdd(seq, len);
      left -= len;
      this.fills.push(view(p, false, myEnd, seq, 0, mine.window || p.window));
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
