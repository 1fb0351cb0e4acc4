/**
 * explain: replay a capture through the conntrack model and say, per TCP packet, what the kernel
 * does with it (ACCEPT / IGNORE / INVALID), why, in the kernel's own words, and what follows.
 *
 * Per packet: decode → drop copies of a packet already seen (copies.ts: by identity, for captures
 * on several interfaces such as `tcpdump -i any`) → find its conntrack entry as conntrack would,
 * through SNAT/MASQUERADE, DNAT, REDIRECT and NodePort (nat.ts: mappings learned from the capture
 * or given from `conntrack -L`) → the model (model.ts) → report.
 */
import { forEachPacket, LINKTYPE, type PacketRecord } from '../capture/reader.js';
import { ipv4ToString, ipv6ToString } from '../packet/address.js';
import { decodeIp, IPPROTO_TCP, isPacketError } from '../packet/ip.js';
import { decodeTcp, decodeTcpOptions, flagsToString, type TcpOptions } from '../packet/tcp.js';
import { capturePosition, PacketCopies } from './copies.js';
import { ConntrackTable, createDecision, segmentEnd, type Decision, type Sysctls, type TcpPacketView } from './model.js';
import { flowKeyOf, NatFollower, tupleText, v4DirKey, v4FlowKey, type Binding, type NatMapping, type Tuple } from './nat.js';
import type { KernelProfile } from './profile.js';

export interface ExplainOptions {
  profile: KernelProfile;
  sysctls?: Partial<Sysctls>;
  /** Only report packets of flows matching this filter (ADDR, PORT, :PORT or ADDR:PORT). All packets still feed the model. */
  flow?: string | null;
  /** Drop duplicate copies of a packet seen on several interfaces. Default: on for Linux cooked (any-interface) captures. */
  dedupe?: boolean | 'auto';
  /** conntrack entries (orig and reply tuples, e.g. from `conntrack -L`) naming NAT mappings the capture may not show. */
  natMappings?: readonly NatMapping[];
  /** Called per reported packet. The objects are reused: copy what you keep. */
  onPacket?: (p: ExplainedPacket) => void;
}

export interface ExplainedPacket {
  index: number;
  tsSec: number;
  src: string;
  srcPort: number;
  dst: string;
  dstPort: number;
  flags: string;
  /** TCP flag byte. */
  tcpFlags: number;
  /** IPv4 identification (unchanged by NAT; identifies copies of a packet); null for IPv6. */
  ipId: number | null;
  seq: number;
  ack: number;
  len: number;
  window: number;
  /** Set when the packet was matched to its flow through NAT: the flow's original tuple ("192.0.2.2:40000 → 198.51.100.2:9000"). */
  natMatchedTo: string | null;
  decision: Decision;
  consequence: string;
}

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
}

export interface ExplainSummary {
  packets: number;
  tcp: number;
  skipped: number;
  duplicates: number;
  accept: number;
  ignore: number;
  invalid: number;
  flows: FlowSummary[];
}

/** What a verdict means for the packet, in plain words; through NAT, where an INVALID packet goes instead. */
export function consequenceOf(d: Decision, nat: { binding: Binding; dir: 0 | 1 } | null = null): string {
  if (d.verdict === 'INVALID') {
    if (d.check === 'new' || d.check === 'loose')
      return 'INVALID: no conntrack entry, and this packet cannot start one: it passes untracked, without NAT (dropped where a ctstate INVALID DROP rule is)';
    const b = nat?.binding;
    if (b?.natted) {
      const o = b.orig;
      const r = b.reply;
      if (nat!.dir === 1 && r.dst !== o.src)
        return `INVALID: untracked, so not de-NATed: addressed to ${r.dst} (this host's NAT address), it reaches this host's own TCP, which answers with RST (as in Docker 1090: only an INVALID drop in INPUT stops it)`;
      if (nat!.dir === 1)
        return `INVALID: untracked, so its source is not rewritten back to ${o.dst}: forwarded to ${o.src} from ${r.src}, a peer it never connected to, whose TCP answers with RST (as in Kubernetes 74839: an INVALID drop in FORWARD stops it)`;
      if (o.dst !== r.src || o.dport !== r.sport)
        return `INVALID: untracked, so not DNATed/redirected: it goes to ${o.dst}:${o.dport} itself, not to ${r.src}:${r.sport}`;
      return `INVALID: untracked, so not SNATed: it leaves with ${o.src} as its source, which the peer cannot answer`;
    }
    return 'INVALID: untracked, so not de-NATed — a NAT host delivers it to its own stack, which answers with RST (unless a ctstate INVALID DROP rule drops it)';
  }
  if (d.verdict === 'IGNORE') return 'IGNORE: passes (NAT applied) but conntrack state is not updated';
  if (d.deleted) return 'ACCEPT: tracked; the entry is deleted';
  return d.stateBefore === d.stateAfter ? 'ACCEPT: tracked' : `ACCEPT: tracked, ${d.stateBefore} → ${d.stateAfter}`;
}

/** A flow filter: ADDR, PORT, :PORT or ADDR:PORT (IPv6 in brackets); matches either endpoint. */
export function parseFlowFilter(text: string): (addr: string, port: number) => boolean {
  const t = text.trim();
  if (/^:?\d+$/.test(t)) {
    const port = Number(t.replace(':', ''));
    return (_a, p) => p === port;
  }
  const m = /^\[?([0-9a-fA-F:.]+?)\]?(?::(\d+))?$/.exec(t);
  if (t.includes('.') && m) {
    const addr = m[1]!;
    const port = m[2] ? Number(m[2]) : null;
    return (a, p) => a === addr && (port === null || p === port);
  }
  if (t.startsWith('[')) {
    const mm = /^\[([^\]]+)\](?::(\d+))?$/.exec(t);
    if (mm) return (a, p) => a === mm[1] && (!mm[2] || p === Number(mm[2]));
  }
  return (a) => a === t;
}

const tsOpts: TcpOptions = {};
/** The TCP timestamp value of a segment with options, as text ('' without one). */
function timestampOf(d: Uint8Array, tcp: Parameters<typeof decodeTcpOptions>[1]): string {
  tsOpts.tsVal = undefined;
  decodeTcpOptions(d, tcp, tsOpts);
  return tsOpts.tsVal === undefined ? '' : String(tsOpts.tsVal);
}

function u32At(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

/** IPv4 address text by its 32-bit value: captures repeat a few addresses millions of times. */
const v4Cache = new Map<number, string>();
function v4Text(b: Uint8Array, o: number): string {
  const n = ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
  let t = v4Cache.get(n);
  if (t === undefined) {
    t = ipv4ToString(b, o);
    if (v4Cache.size < 1 << 16) v4Cache.set(n, t);
  }
  return t;
}

/** What explain remembers about the first copy of a packet. */
interface FirstCopy {
  binding: Binding | null;
  dir: 0 | 1;
  tuple: Tuple;
}

export async function explainCapture(path: string, o: ExplainOptions): Promise<ExplainSummary> {
  const table = new ConntrackTable(o.profile, o.sysctls);
  const nat = new NatFollower(table, o.natMappings);
  const copies = new PacketCopies<FirstCopy>();
  const filter = o.flow ? parseFlowFilter(o.flow) : null;
  const view: TcpPacketView = { src: '', dst: '', srcPort: 0, dstPort: 0, seq: 0, ack: 0, flags: 0, window: 0, payloadLength: 0, dataOffset: 20, options: {}, hasOptions: false, tsSec: 0 };
  const decision = createDecision();
  const opts: TcpOptions = {};
  const out: ExplainedPacket = { index: 0, tsSec: 0, src: '', srcPort: 0, dst: '', dstPort: 0, flags: '', tcpFlags: 0, ipId: null, seq: 0, ack: 0, len: 0, window: 0, natMatchedTo: null, decision, consequence: '' };
  const s: ExplainSummary = { packets: 0, tcp: 0, skipped: 0, duplicates: 0, accept: 0, ignore: 0, invalid: 0, flows: [] };
  const flows = new Map<string, { summary: FlowSummary; binding: Binding | null }>();
  let dedupe: boolean | null = o.dedupe === true ? true : o.dedupe === false ? false : null;

  const onRecord = (rec: PacketRecord): void => {
    s.packets++;
    if (dedupe === null) dedupe = rec.linkType === LINKTYPE.LINUX_SLL || rec.linkType === LINKTYPE.LINUX_SLL2;
    // decode
    if (rec.ipOffset < 0) {
      s.skipped++;
      return;
    }
    const d = rec.data;
    const ip = decodeIp(d, rec.ipOffset, d.length);
    if (isPacketError(ip) || ip.protocol !== IPPROTO_TCP || ip.fragment) {
      s.skipped++;
      return;
    }
    const tcp = decodeTcp(d, ip.payloadOffset, ip.payloadOffset + ip.payloadLength);
    if (isPacketError(tcp)) {
      s.skipped++;
      return;
    }
    // The IP header's length is what the kernel sees even when the capture was cut by snaplen.
    const payloadLength = ip.totalLength - ip.headerLength - tcp.dataOffset;
    const v6 = ip.version === 6;
    const tuple: Tuple = {
      src: v6 ? ipv6ToString(d, ip.srcOffset) : v4Text(d, ip.srcOffset),
      sport: tcp.srcPort,
      dst: v6 ? ipv6ToString(d, ip.dstOffset) : v4Text(d, ip.dstOffset),
      dport: tcp.dstPort,
    };

    // copies of one packet (several interfaces, before and after NAT): conntrack saw it once
    let identity = '';
    let position = -1;
    if (dedupe) {
      // IPv6 has no ID: the TCP timestamp tells a retransmission from a copy
      const tsVal = v6 && tcp.dataOffset > 20 ? timestampOf(d, tcp) : '';
      identity = `${v6 ? 'v6' : ip.id},${tcp.seq},${tcp.ack},${tcp.flags},${payloadLength},${tcp.window},${tsVal}`;
      position = capturePosition(rec);
      const first = copies.copyOf(identity, position, rec.tsSec);
      if (first) {
        s.duplicates++;
        if (first.binding) nat.learnFromCopy(first.binding, first.dir, first.tuple, tuple);
        return;
      }
    }
    s.tcp++;
    view.seq = tcp.seq;
    view.ack = tcp.ack;
    view.flags = tcp.flags;
    view.window = tcp.window;
    view.payloadLength = payloadLength;
    view.dataOffset = tcp.dataOffset;
    view.hasOptions = tcp.dataOffset > 20;
    opts.mss = opts.wscale = opts.tsVal = opts.tsEcr = undefined;
    opts.sackPerm = false;
    opts.sackBlocks = undefined;
    opts.tsOnlyNopNop = false;
    if (view.hasOptions) decodeTcpOptions(d, tcp, opts);
    view.options = opts;
    view.tsSec = rec.tsSec;

    // the conntrack entry, through NAT: the model sees the entry's own tuple in either direction
    const a = v6 ? 0 : u32At(d, ip.srcOffset);
    const b = v6 ? 0 : u32At(d, ip.dstOffset);
    const dk = v6 ? undefined : v4DirKey(a, tcp.srcPort, b, tcp.dstPort);
    const r = nat.resolve(tuple, tcp.flags, tcp.ack, rec.tsSec, dk);
    const t = r ? (r.dir === 0 ? r.binding.canon : r.binding.canonInv) : tuple;
    const key = r ? r.binding.key : v6 ? flowKeyOf(tuple) : v4FlowKey(a, tcp.srcPort, b, tcp.dstPort);
    view.src = t.src;
    view.srcPort = t.sport;
    view.dst = t.dst;
    view.dstPort = t.dport;
    table.process(view, decision, key);
    const pureSyn = (tcp.flags & 0x17) === 0x02;
    const binding = nat.afterPacket(r, tuple, key, pureSyn ? segmentEnd(view) : null, dk);
    if (dedupe) copies.remember(identity, position, rec.tsSec, { binding, dir: decision.dir === 'original' ? 0 : 1, tuple });

    if (decision.verdict === 'INVALID') s.invalid++;
    else if (decision.verdict === 'IGNORE') s.ignore++;
    else s.accept++;

    // report
    // an endpoint as seen in the packet, or in its entry's original or reply tuple (through NAT)
    const tuples = binding ? [tuple, binding.orig, binding.reply] : [tuple];
    if (filter && !tuples.some((x) => filter(x.src, x.sport) || filter(x.dst, x.dport))) return;
    let f = flows.get(key);
    if (!f) {
      const label = tupleText(decision.dir === 'original' ? t : { src: t.dst, sport: t.dport, dst: t.src, dport: t.sport });
      f = { summary: { flow: label, reply: null, natLearnedFrom: null, packets: 0, accept: 0, ignore: 0, invalid: 0, firstInvalid: null, finalState: '' }, binding: null };
      flows.set(key, f);
    }
    if (binding) f.binding = binding;
    const fs = f.summary;
    fs.packets++;
    if (decision.verdict === 'INVALID') {
      fs.invalid++;
      fs.firstInvalid ??= { index: rec.index, reason: decision.reason };
    } else if (decision.verdict === 'IGNORE') fs.ignore++;
    else fs.accept++;
    fs.finalState = decision.stateAfter;
    if (o.onPacket) {
      out.index = rec.index;
      out.tsSec = rec.tsSec;
      out.src = tuple.src;
      out.srcPort = tuple.sport;
      out.dst = tuple.dst;
      out.dstPort = tuple.dport;
      out.flags = flagsToString(tcp.flags);
      out.tcpFlags = tcp.flags;
      out.ipId = v6 ? null : ip.id;
      out.seq = tcp.seq;
      out.ack = tcp.ack;
      out.len = payloadLength;
      out.window = tcp.window;
      out.natMatchedTo = r?.viaNat ? tupleText(r.binding.orig) : null;
      out.consequence = consequenceOf(decision, binding ? { binding, dir: decision.dir === 'original' ? 0 : 1 } : null);
      o.onPacket(out);
    }
  };
  await forEachPacket(path, onRecord, { unknownLinkType: 'pass' });
  for (const { summary, binding } of flows.values()) {
    if (!binding?.natted) continue;
    summary.flow = tupleText(binding.orig);
    summary.reply = tupleText(binding.reply);
    summary.natLearnedFrom = binding.learnedFrom;
  }
  s.flows = [...flows.values()].map((f) => f.summary);
  return s;
}
