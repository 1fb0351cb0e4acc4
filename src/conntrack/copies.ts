/**
 * Copies of one packet in a capture taken on several interfaces at once (`tcpdump -i any` on a NAT
 * host shows a forwarded packet on the bridge port, the bridge and the uplink; before and after NAT).
 * conntrack sees the packet once. A copy is recognised by identity — what NAT does not rewrite: the
 * IPv4 ID, seq, ack, flags, payload length, window and TCP timestamp — not by a time window (copies
 * were up to 12 ms apart in slow guests). A retransmission can have the same identity (IPv6 has no
 * ID, the kernel's own RSTs and SYN/ACKs carry ID 0, not every segment has a timestamp) but passes
 * the same interfaces again: with the capture's
 * position of each copy (Linux cooked v2: interface index and packet type), a packet seen again at
 * a position its identity already passed is a new transmission. Without positions (cooked v1, other
 * link types) copies must fall within POSITIONLESS_HORIZON_S, below TCP's minimum retransmission
 * timeout (200 ms).
 */
import { LINKTYPE, type PacketRecord } from '../capture/reader.js';

/**
 * How long copies with positions may be apart: far beyond a slow guest's 12 ms, and beyond IPv6
 * neighbour resolution holding a packet (~1 s) before its last copy leaves.
 */
export const POSITION_HORIZON_S = 3;
/** How long copies without positions may be apart. */
export const POSITIONLESS_HORIZON_S = 0.05;

interface Seen<T> {
  ts: number;
  positions: number[];
  first: T;
}

/** Where a record was captured: interface index × 8 + packet type (cooked v2), else -1 (unknown). */
export function capturePosition(rec: PacketRecord): number {
  if (rec.linkType !== LINKTYPE.LINUX_SLL2 || rec.data.length < 11) return -1;
  const d = rec.data;
  const ifindex = ((d[4]! << 24) | (d[5]! << 16) | (d[6]! << 8) | d[7]!) >>> 0;
  return ifindex * 8 + (d[10]! & 7);
}

export class PacketCopies<T> {
  private readonly seen = new Map<string, Seen<T>>();
  private lastPrune = 0;

  /**
   * If this packet is a copy of one remembered before, note its position and return what was
   * remembered with the first copy; else null (call `remember` once it is processed).
   */
  copyOf(identity: string, position: number, ts: number): T | null {
    const e = this.seen.get(identity);
    if (!e) return null;
    const horizon = position < 0 ? POSITIONLESS_HORIZON_S : POSITION_HORIZON_S;
    if (ts - e.ts > horizon) return null;
    if (position >= 0) {
      if (e.positions.includes(position)) return null; // passed here before: a new transmission
      e.positions.push(position);
    }
    return e.first;
  }

  remember(identity: string, position: number, ts: number, first: T): void {
    this.seen.set(identity, { ts, positions: position < 0 ? [] : [position], first });
    if (ts - this.lastPrune > POSITION_HORIZON_S) {
      this.seen.forEach((e, k) => {
        if (ts - e.ts > POSITION_HORIZON_S) this.seen.delete(k);
      });
      this.lastPrune = ts;
    }
  }
}
