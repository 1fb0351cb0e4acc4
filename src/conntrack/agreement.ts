/**
 * Agreement between the model and a real kernel: the model's replay of a capture (what it says the
 * kernel logs with nf_conntrack_log_invalid, per packet) against the kernel's own log lines for the
 * same run. Same packets, same reasons (numbers included), nothing extra on either side.
 *
 * Packets are matched by identity, not by address: a NAT host logs a packet before or after NAT
 * while the capture may hold the other copy, so the key is seq, ack, TCP flags and the IPv4 ID
 * (unchanged by NAT). Kernel lines about packets the capture does not hold (a socket still
 * retransmitting after the capture stopped) are counted as `notCaptured`, not compared. Where the
 * identity cannot tell a retransmission from its original (IPv6, or IP ID 0 as in the kernel's own
 * RSTs), extra kernel lines with a reason the model gave that packet are counted the same way.
 * Pure: lines in, typed result out.
 */
import { parseKernelLogLine } from '../inspect/kernlog.js';
import { flagsToString } from '../packet/tcp.js';
import type { ExplainedPacket } from './explain.js';
import { TcpFlag } from './states.js';

/** One packet of the model's replay (one per distinct packet: copies already deduplicated). */
export interface ReplayedPacket {
  /** The capture's packet number (first copy), for pointing at it. */
  index: number;
  seq: number;
  ack: number;
  /** TCP flag byte. */
  flags: number;
  /** IPv4 identification; null for IPv6. */
  ipId: number | null;
  /** What the model says the kernel logs for this packet, in order (reason, then a second line). */
  logged: string[];
}

export type MismatchKind =
  /** The kernel logged this packet; the model says it is not logged. */
  | 'kernel-only'
  /** The model says the kernel logs this packet; the kernel did not. */
  | 'model-only'
  /** Both logged the packet, in different words or numbers. */
  | 'reason-differs'
  /** A kernel line that is not a conntrack TCP line with SEQ/ACK (cannot be compared). */
  | 'unparsed';

export interface AgreementMismatch {
  kind: MismatchKind;
  /** "seq 1 ack 2 [FIN|ACK] id 3" */
  packet: string;
  /** Capture packet number of the first copy, when the packet is in the replay. */
  index: number | null;
  kernel: string | null;
  model: string | null;
}

export interface AgreementResult {
  type: 'agreement';
  agree: boolean;
  /** Kernel lines about packets the replay holds (the ones compared). */
  compared: number;
  kernelLines: number;
  /** Kernel lines about packets the capture does not hold (not compared). */
  notCaptured: number;
  /** Lines the model says the kernel prints for the replayed packets. */
  modelLines: number;
  /** Kernel lines logged by another host (namespace) than the captured one (see `hostInterfaces`): not compared. */
  otherHost: number;
  mismatches: AgreementMismatch[];
}

const FLAG_BITS: Readonly<Record<string, number>> = {
  FIN: TcpFlag.FIN,
  SYN: TcpFlag.SYN,
  RST: TcpFlag.RST,
  PSH: TcpFlag.PSH,
  ACK: TcpFlag.ACK,
  URG: TcpFlag.URG,
  ECE: TcpFlag.ECE,
  CWR: TcpFlag.CWR,
};

/** Whitespace-normalised reason (the kernel's format strings end in a space; OLD ones in two). */
const norm = (r: string) => r.replace(/\s+/g, ' ').trim();

const identity = (seq: number, ack: number, flags: number, id: number | null) => `${seq >>> 0}|${ack >>> 0}|${flags & 0xff}|${id ?? ''}`;

function describe(seq: number, ack: number, flags: number, id: number | null): string {
  return `seq ${seq >>> 0} ack ${ack >>> 0} [${flagsToString(flags)}]${id === null ? '' : ` id ${id}`}`;
}

interface KernelPacketLine {
  key: string;
  /** The identity cannot tell retransmissions apart (no IP ID, or ID 0). */
  weak: boolean;
  reason: string;
  text: string;
  what: string;
}

/** A conntrack TCP line ("nf_ct_proto_6: <reason> IN=… SEQ=… ACK=… ACK FIN URGP=0") → its packet identity; null if not one. */
export function kernelLinePacket(line: string): Omit<KernelPacketLine, 'text'> | null {
  const e = parseKernelLogLine(line);
  if (!e || !e.source.startsWith('nf_ct_') || e.reason === null || e.seq === null || e.ack === null) return null;
  let flags = 0;
  for (const f of e.flags) flags |= FLAG_BITS[f] ?? 0;
  const id = e.id;
  return { key: identity(e.seq, e.ack, flags, id), weak: id === null || id === 0, reason: norm(e.reason), what: describe(e.seq, e.ack, flags, id) };
}

/** The replay record of an explained packet (copy what explain reuses). */
export function replayedPacket(p: ExplainedPacket): ReplayedPacket {
  const d = p.decision;
  const logged: string[] = [];
  if (d.logged && d.reason) logged.push(d.reason);
  if (d.secondaryReason) logged.push(d.secondaryReason);
  return { index: p.index, seq: p.seq, ack: p.ack, flags: p.tcpFlags, ipId: p.ipId, logged };
}

/** Remove one occurrence of `x` from `list`; true if there was one. */
function take(list: string[], x: string): boolean {
  const i = list.indexOf(x);
  if (i < 0) return false;
  list.splice(i, 1);
  return true;
}

export interface AgreementOptions {
  /**
   * The captured host's interface names. When packets cross several hosts (namespaces) that each
   * run conntrack, each logs them: a line naming only interfaces (IN=, OUT=, PHYSIN=, PHYSOUT=)
   * outside this set came from another host and is not compared. Lines naming none (5.10's empty
   * IN=/OUT= on locally generated packets) are kept.
   */
  hostInterfaces?: readonly string[];
}

/** The interface names a kernel log line carries (IN=, OUT=, PHYSIN=, PHYSOUT=), empty ones left out. */
export function lineInterfaces(line: string): string[] {
  const out: string[] = [];
  for (const m of line.matchAll(/\b(?:IN|OUT|PHYSIN|PHYSOUT)=(\S*)/g)) if (m[1]) out.push(m[1]);
  return out;
}

/**
 * Compare the model's replay with the kernel's log lines of the same run.
 * `kernelLines`: the raw lines (dmesg, /dev/kmsg or the lab's per-cell lines); lines that are not
 * conntrack TCP lines are reported as 'unparsed' mismatches.
 */
export function checkAgreement(replay: Iterable<ReplayedPacket>, kernelLines: readonly string[], o: AgreementOptions = {}): AgreementResult {
  const host = o.hostInterfaces ? new Set(o.hostInterfaces) : null;
  let otherHost = 0;
  const mismatches: AgreementMismatch[] = [];
  // identity → the replayed packets with it (retransmissions with the same identity share a key)
  const packets = new Map<string, { index: number; what: string; model: string[] }>();
  let modelLines = 0;
  for (const p of replay) {
    const key = identity(p.seq, p.ack, p.flags, p.ipId);
    let g = packets.get(key);
    if (!g) {
      g = { index: p.index, what: describe(p.seq, p.ack, p.flags, p.ipId), model: [] };
      packets.set(key, g);
    }
    for (const l of p.logged) g.model.push(norm(l));
    modelLines += p.logged.length;
  }

  const kernelByKey = new Map<string, KernelPacketLine[]>();
  let notCaptured = 0;
  let compared = 0;
  for (const text of kernelLines) {
    if (host) {
      const names = lineInterfaces(text);
      if (names.length && !names.some((n) => host.has(n))) {
        otherHost++;
        continue;
      }
    }
    const k = kernelLinePacket(text);
    if (!k) {
      mismatches.push({ kind: 'unparsed', packet: '', index: null, kernel: text.trim(), model: null });
      continue;
    }
    const key = k.key;
    if (!packets.has(key)) {
      notCaptured++;
      continue;
    }
    let l = kernelByKey.get(key);
    if (!l) kernelByKey.set(key, (l = []));
    l.push({ ...k, key, text: text.trim() });
  }

  for (const [key, g] of packets) {
    const model = [...g.model];
    const kernel = kernelByKey.get(key) ?? [];
    const kernelOnly: KernelPacketLine[] = [];
    for (const k of kernel) {
      if (take(model, k.reason)) compared++;
      else if (k.weak && g.model.includes(k.reason)) notCaptured++; // a later copy the capture does not hold
      else kernelOnly.push(k);
    }
    compared += kernelOnly.length;
    // Pair what is left on both sides: a different reason for the same packet.
    while (kernelOnly.length && model.length) {
      const k = kernelOnly.shift()!;
      mismatches.push({ kind: 'reason-differs', packet: g.what, index: g.index, kernel: k.reason, model: model.shift()! });
    }
    for (const k of kernelOnly) mismatches.push({ kind: 'kernel-only', packet: g.what, index: g.index, kernel: k.reason, model: null });
    for (const m of model) mismatches.push({ kind: 'model-only', packet: g.what, index: g.index, kernel: null, model: m });
  }
  return { type: 'agreement', agree: mismatches.length === 0, compared, kernelLines: kernelLines.length, notCaptured, modelLines, otherHost, mismatches };
}

/** One line per mismatch, for test failures and reports. */
export function describeMismatches(r: AgreementResult): string[] {
  return r.mismatches.map((m) => {
    const where = m.index === null ? '' : ` (packet #${m.index})`;
    switch (m.kind) {
      case 'unparsed':
        return `unparsed kernel line: ${m.kernel ?? ''}`;
      case 'kernel-only':
        return `${m.packet}${where}: kernel logged "${m.kernel ?? ''}", model logs nothing`;
      case 'model-only':
        return `${m.packet}${where}: model logs "${m.model ?? ''}", kernel logged nothing`;
      default:
        return `${m.packet}${where}: kernel "${m.kernel ?? ''}" vs model "${m.model ?? ''}"`;
    }
  });
}
