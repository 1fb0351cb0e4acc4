/**
 * explain: replay a capture through the conntrack model and say, per TCP packet, what the kernel
 * does with it (ACCEPT / IGNORE / INVALID), why, in the kernel's own words, and what follows.
 *
 * Per packet: decode → drop copies of a packet already seen (copies.ts: by identity, for captures
 * on several interfaces such as `tcpdump -i any`) → find its conntrack entry as conntrack would,
 * through SNAT/MASQUERADE, DNAT, REDIRECT and NodePort (nat.ts: mappings learned from the capture
 * or given from `conntrack -L`) → the model (model.ts) → report.
 */
import { forEachPacket, LINKTYPE, type CaptureStats, type PacketRecord, type ReadProgress } from '../capture/reader.js';
import { decodeIp, DecodedIp, IPPROTO_TCP, isPacketError } from '../packet/ip.js';
import { decodeTcp, decodeTcpOptions, flagsToString, newTcpHeader, type TcpOptions } from '../packet/tcp.js';
import { capturePosition, HAS_TIMESTAMP, identityHead, PacketCopies } from './copies.js';
import { FlowLedger, FlowList, type FlowRowStore } from './flow-ledger.js';
export { FlowList, type FlowRowStore, type FlowSummary } from './flow-ledger.js';
import { CaptureGaps } from './gaps.js';
import { ConntrackTable, createDecision, segmentEnd, type Decision, type Sysctls, type TcpPacketView, type Verdict } from './model.js';
import { NatFollower, sameTuple, v4FlowKey, type Binding, type NatMapping, type Tuple } from './nat.js';
import { tupleDst, tupleKey, tupleSrc, v4TupleSlot } from './v4tuples.js';
import { v6FlowKey, v6TupleDst, v6TupleKey, v6TupleSlot, v6TupleSrc } from './v6tuples.js';
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
  /** Only packets with these verdicts reach onPacket (decided before the packet is described). */
  verdicts?: ReadonlySet<Verdict> | null;
  /**
   * Called when entries gone from the model's table (expired, deleted) have been swept, with what
   * says whether a table key is still live: a renderer that keeps per-connection state lets go of
   * the gone ones, so it too holds what the kernel would.
   */
  onSweep?: (live: (key: string) => boolean) => void;
  /** Called between chunks of the capture, with where the read is; a promise it returns is awaited (output backpressure). */
  pause?: (progress: ReadProgress) => Promise<void> | null | void;
  /**
   * Where the flows' final summary rows go past the first `flowRowsKept` (32,768) flows (explain's
   * CLI: a store that goes to disk past 2 MiB); in memory if not given.
   */
  flowRows?: FlowRowStore;
  flowRowsKept?: number;
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
  /** IPv4: `src` and `dst` as int32 (a.b.c.d: a << 24 | …), what a renderer's record sends instead of the text; null for IPv6. */
  src4: number | null;
  dst4: number | null;
  seq: number;
  ack: number;
  len: number;
  window: number;
  /** Set when the packet was matched to its flow through NAT: the flow's original tuple ("192.0.2.2:40000 → 198.51.100.2:9000"). */
  natMatchedTo: string | null;
  /** The conntrack entry's tuples when NAT rewrote them (null otherwise): who the peers are, whatever the packet shows. */
  entry: { orig: Tuple; reply: Tuple } | null;
  /** The model table's key of the packet's entry: the same for every packet of one connection (opaque). */
  entryKey: string;
  /**
   * The packet's row in the summary's flows (0 = the first): one per conntrack entry, so a new
   * entry for the same tuple (after the last expired, or a SYN reopening TIME_WAIT) has a new one.
   */
  flow: number;
  decision: Decision;
  consequence: string;
  /** Bytes this packet shows the capture missed (it ACKs data that was not captured); 0 mostly. */
  captureMissed: number;
}

export interface ExplainSummary {
  packets: number;
  tcp: number;
  skipped: number;
  duplicates: number;
  accept: number;
  ignore: number;
  invalid: number;
  /** Per flow, in capture order: iterate it (summaries are built as they are read). */
  flows: FlowList;
  /** Bytes the capture missed, all flows. */
  captureMissed: number;
  /** Segments whose IP length said 0 (TSO / BIG TCP on the sending host): sized by the frame. */
  lengthFromFrame: number;
  /** Records longer than the snaplen, cut to it (as libpcap does). */
  cutToSnaplen: number;
  compression: CaptureStats['compression'];
  /** The table's limit modelled (nf_conntrack_max; 0: none). */
  conntrackMax: number;
  /** Entries early-dropped to make room: the table was full (see ConntrackTable). */
  earlyDrops: number;
  /** New lookups that found the table full and nothing to drop: the kernel dropped those packets. */
  tableFull: number;
}

/** What a verdict means for the packet, in plain words; through NAT (its entry's binding `b`), where an INVALID packet goes instead. */
export function consequenceOf(d: Decision, b: Binding | null = null): string {
  if (d.verdict === 'INVALID') {
    if (d.check === 'new' || d.check === 'loose')
      return 'INVALID: no conntrack entry, and this packet cannot start one: it passes untracked, without NAT (dropped where a ctstate INVALID DROP rule is)';
    if (b?.natted) {
      const o = b.orig;
      const r = b.reply;
      const reply = d.dir === 'reply';
      if (reply && r.dst !== o.src)
        return `INVALID: untracked, so not de-NATed: addressed to ${r.dst} (this host's NAT address), it reaches this host's own TCP, which answers with RST (as in Docker 1090: only an INVALID drop in INPUT stops it)`;
      if (reply)
        return `INVALID: untracked, so its source is not rewritten back to ${o.dst}: forwarded to ${o.src} from ${r.src}, a peer it never connected to, whose TCP answers with RST (as in Kubernetes 74839: an INVALID drop in FORWARD stops it)`;
      if (o.dst !== r.src || o.dport !== r.sport)
        return `INVALID: untracked, so not DNATed/redirected: it goes to ${o.dst}:${o.dport} itself, not to ${r.src}:${r.sport}`;
      return `INVALID: untracked, so not SNATed: it leaves with ${o.src} as its source, which the peer cannot answer`;
    }
    return 'INVALID: untracked, so not de-NATed — a NAT host delivers it to its own stack, which answers with RST (unless a ctstate INVALID DROP rule drops it)';
  }
  if (d.verdict === 'IGNORE') return 'IGNORE: passes (NAT applied) but conntrack state is not updated';
  if (d.deleted) return 'ACCEPT: tracked; the entry is deleted';
  if (d.stateBefore === d.stateAfter) return 'ACCEPT: tracked';
  // a replay says this a million times: one string per state change, built once
  let byAfter = acceptText.get(d.stateBefore);
  if (!byAfter) acceptText.set(d.stateBefore, (byAfter = new Map()));
  let t = byAfter.get(d.stateAfter);
  if (t === undefined) byAfter.set(d.stateAfter, (t = `ACCEPT: tracked, ${d.stateBefore} → ${d.stateAfter}`));
  return t;
}
const acceptText = new Map<string, Map<string, string>>();

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

/** Expired entries are swept this often (packet time), so the table holds what the kernel would keep. */
const GC_EVERY_S = 10;

/** flagsToString for every flag byte, computed once. */
const FLAGS_TEXT = Array.from({ length: 256 }, (_, f) => flagsToString(f));

const tsOpts: TcpOptions = {};
/** The TCP timestamp value of a segment with options (undefined without one). */
function timestampOf(d: Uint8Array, tcp: Parameters<typeof decodeTcpOptions>[1]): number | undefined {
  tsOpts.tsVal = undefined;
  decodeTcpOptions(d, tcp, tsOpts);
  return tsOpts.tsVal;
}

/** An IPv4 address as an int32 (a small integer to V8: no number boxed per packet). */
function i32At(b: Uint8Array, o: number): number {
  return (b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!;
}

/** `into` made the inverse of t (a scratch tuple: what keeps it copies it). */
function invertInto(into: Tuple, t: Tuple): Tuple {
  into.src = t.dst;
  into.sport = t.dport;
  into.dst = t.src;
  into.dport = t.sport;
  return into;
}

const matches = (filter: (addr: string, port: number) => boolean, t: Tuple): boolean => filter(t.src, t.sport) || filter(t.dst, t.dport);

/** What explain remembers about the first copy of a packet. */
export async function explainCapture(path: string, o: ExplainOptions): Promise<ExplainSummary> {
  const table = new ConntrackTable(o.profile, o.sysctls);
  const nat = new NatFollower(table, o.natMappings);
  const copies = new PacketCopies<Binding>();
  const filter = o.flow ? parseFlowFilter(o.flow) : null;
  const view: TcpPacketView = { src: '', dst: '', srcPort: 0, dstPort: 0, seq: 0, ack: 0, flags: 0, window: 0, payloadLength: 0, dataOffset: 20, options: {}, hasOptions: false, tsSec: 0 };
  const decision = createDecision();
  const opts: TcpOptions = {};
  const out: ExplainedPacket = { index: 0, tsSec: 0, src: '', srcPort: 0, dst: '', dstPort: 0, flags: '', tcpFlags: 0, ipId: null, src4: null, dst4: null, seq: 0, ack: 0, len: 0, window: 0, natMatchedTo: null, entry: null, entryKey: '', flow: 0, decision, consequence: '', captureMissed: 0 };
  const s: Omit<ExplainSummary, 'flows'> & { flows: FlowList | null } = { packets: 0, tcp: 0, skipped: 0, duplicates: 0, accept: 0, ignore: 0, invalid: 0, flows: null, captureMissed: 0, lengthFromFrame: 0, cutToSnaplen: 0, compression: null, conntrackMax: table.max, earlyDrops: 0, tableFull: 0 };
  const stats: CaptureStats = { cutToSnaplen: 0, compression: null };
  const gaps = new CaptureGaps();
  const scratch = createDecision();
  const flows = new FlowLedger(o.flowRows, o.flowRowsKept);
  let lastGc = 0;
  let dropsAtGc = 0;
  const dropsBetweenGc = Math.max(4096, table.max >> 1);
  const pt: Tuple = { src: '', sport: 0, dst: '', dport: 0 };
  const inv: Tuple = { src: '', sport: 0, dst: '', dport: 0 };
  const firstCopy: Tuple = { src: '', sport: 0, dst: '', dport: 0 };
  const ipHeader = new DecodedIp();
  const tcpHeader = newTcpHeader();
  const inTable = (k: string): boolean => table.byKey(k) !== undefined;
  let dedupe: boolean | null = o.dedupe === true ? true : o.dedupe === false ? false : null;
  // which verdicts reach onPacket (no set lookup per packet)
  const reportAccept = !o.verdicts || o.verdicts.has('ACCEPT');
  const reportIgnore = !o.verdicts || o.verdicts.has('IGNORE');
  const reportInvalid = !o.verdicts || o.verdicts.has('INVALID');

  const onRecord = (rec: PacketRecord): void => {
    s.packets++;
    if (dedupe === null) dedupe = rec.linkType === LINKTYPE.LINUX_SLL || rec.linkType === LINKTYPE.LINUX_SLL2;
    // decode
    if (rec.ipOffset < 0) {
      s.skipped++;
      return;
    }
    // read in place in the read buffer (offsets are the buffer's): no view or header per packet
    const d = rec.buf;
    const frame = rec.dataOffset;
    // the frame's length on the wire sizes a TSO / BIG TCP segment whose IP length says 0
    const ip = decodeIp(d, frame + rec.ipOffset, frame + rec.capLen, frame + Math.max(rec.capLen, rec.origLen), ipHeader);
    if (isPacketError(ip) || ip.protocol !== IPPROTO_TCP || ip.fragment) {
      s.skipped++;
      return;
    }
    const tcp = decodeTcp(d, ip.payloadOffset, ip.payloadOffset + ip.payloadLength, tcpHeader);
    if (isPacketError(tcp)) {
      s.skipped++;
      return;
    }
    // The IP header's length is what the kernel sees even when the capture was cut by snaplen.
    const payloadLength = ip.totalLength - ip.headerLength - tcp.dataOffset;
    const v6 = ip.version === 6;
    // the packet's tuple: a scratch object (what keeps it copies it)
    const tuple = pt;
    // the tuple's addresses as text and its keys, from the tuple caches (built once per tuple)
    const a = v6 ? 0 : i32At(d, ip.srcOffset);
    const b = v6 ? 0 : i32At(d, ip.dstOffset);
    const slot = v6 ? v6TupleSlot(d, ip.srcOffset, tcp.srcPort, ip.dstOffset, tcp.dstPort) : v4TupleSlot(a, tcp.srcPort, b, tcp.dstPort);
    tuple.src = v6 ? v6TupleSrc(slot) : tupleSrc(slot);
    tuple.sport = tcp.srcPort;
    tuple.dst = v6 ? v6TupleDst(slot) : tupleDst(slot);
    tuple.dport = tcp.dstPort;
    // (read now: another tuple may take the slot)
    const dk = v6 ? v6TupleKey(slot) : tupleKey(slot);
    const fk = v6 ? v6FlowKey(slot) : '';

    // copies of one packet (several interfaces, before and after NAT): conntrack saw it once
    let position = -1;
    if (dedupe) {
      // (its identity as numbers: see copies.ts) IPv6 has no ID: the TCP timestamp tells a
      // retransmission from a copy
      const tsVal = v6 && tcp.dataOffset > 20 ? timestampOf(d, tcp) : undefined;
      const win = tsVal === undefined ? tcp.window : tcp.window | HAS_TIMESTAMP;
      position = capturePosition(rec);
      copies.now = rec.tsSec;
      const first = copies.copyOf(identityHead(ip.id, v6, tcp.flags), tcp.seq | 0, tcp.ack | 0, payloadLength, win, tsVal === undefined ? 0 : tsVal | 0, position);
      if (first >= 0) {
        s.duplicates++;
        const fb = copies.bindingOf(first);
        // (the same tuple: nothing NAT rewrote, nothing to learn)
        if (fb !== null && !copies.sameTuple(first, tuple)) nat.learnFromCopy(fb, copies.dirOf(first), copies.firstTupleInto(first, firstCopy), tuple);
        return;
      }
    }
    s.tcp++;
    if (ip.lengthFrom === 'wire') s.lengthFromFrame++;
    // (and when a full table has dropped half as many entries as it holds since: a flood past
    // nf_conntrack_max fills it in less; what goes with the dropped entries goes then)
    if (rec.tsSec - lastGc >= GC_EVERY_S || table.earlyDrops - dropsAtGc >= dropsBetweenGc) {
      // what explain remembers per flow goes with the kernel's entry: bounded by the flow table
      table.gc(rec.tsSec);
      nat.sweep(rec.tsSec);
      flows.settleGone(rec.tsSec);
      gaps.sweep(inTable);
      o.onSweep?.(inTable);
      lastGc = rec.tsSec;
      dropsAtGc = table.earlyDrops;
    }
    view.seq = tcp.seq;
    view.ack = tcp.ack;
    view.flags = tcp.flags;
    view.window = tcp.window;
    view.payloadLength = payloadLength;
    view.dataOffset = tcp.dataOffset;
    view.hasOptions = tcp.dataOffset > 20;
    // (the timestamps are not read: conntrack does not look at them)
    opts.mss = opts.wscale = undefined;
    opts.sackPerm = false;
    opts.sackBlocks = undefined;
    opts.tsOnlyNopNop = false;
    if (view.hasOptions) decodeTcpOptions(d, tcp, opts, false);
    view.options = opts;
    view.tsSec = rec.tsSec;

    // the conntrack entry, through NAT: the model sees the entry's own tuple in either direction
    nat.now = rec.tsSec;
    const r = nat.resolve(tuple, tcp.flags, tcp.ack | 0, dk);
    // the entry's tuple in the packet's direction: its canonical tuple, or that turned round (in a scratch tuple)
    const t = r === null ? tuple : r.dir === 0 ? r.binding.canon : invertInto(inv, r.binding.canon);
    const key = r ? r.binding.key : v6 ? fk : v4FlowKey(a, tcp.srcPort, b, tcp.dstPort);
    view.src = t.src;
    view.srcPort = t.sport;
    view.dst = t.dst;
    view.dstPort = t.dport;
    // what the capture lost is fed to the model first, so the kernel is not blamed for it
    const missed = gaps.observe(view, key, r !== null ? r.binding : null);
    if (r !== null && gaps.fills.length === 0) {
      // the entry is the binding's (resolve found it live): no table lookup; its direction is the
      // alias's, but the table's for a tuple that is its own inverse (a self-connection)
      const dir = r.dir === 0 || sameTuple(t, r.binding.canon) ? 0 : 1;
      table.processIn(r.binding.tracker, dir, view, decision, key);
    } else {
      for (const g of gaps.fills) table.process(g, scratch, key);
      table.process(view, decision, key);
    }
    const pureSyn = (tcp.flags & 0x17) === 0x02;
    const binding = nat.afterPacket(r, tuple, key, pureSyn ? segmentEnd(view) : null, dk, gaps.fills.length === 0 && !decision.repeat && !decision.deleted);
    // (NF_REPEAT: the entry is a new one, its capture-gap state too)
    if (decision.repeat) gaps.restart(view, key, binding);
    if (dedupe) copies.remember(position, binding, decision.dir === 'original' ? 0 : 1, tuple);

    // (every counter touched for every packet: a capture's first INVALID does not meet code
    // V8 never ran, which would throw the optimized replay away)
    s.invalid += decision.verdict === 'INVALID' ? 1 : 0;
    s.ignore += decision.verdict === 'IGNORE' ? 1 : 0;
    s.accept += decision.verdict === 'ACCEPT' ? 1 : 0;

    // report
    // an endpoint as seen in the packet, or in its entry's original or reply tuple (through NAT)
    // (an entry not NATed: its reply tuple has orig's endpoints, not made to be read)
    if (filter && !matches(filter, tuple) && !(binding && (matches(filter, binding.orig) || (binding.natted && matches(filter, binding.reply))))) return;
    const f = flows.flowOf(key, binding, t, decision.dir !== 'original');
    flows.count(f, decision, missed, rec.index);
    if (o.onPacket && (decision.verdict === 'ACCEPT' ? reportAccept : decision.verdict === 'IGNORE' ? reportIgnore : reportInvalid)) {
      out.index = rec.index;
      out.tsSec = rec.tsSec;
      out.src = tuple.src;
      out.srcPort = tuple.sport;
      out.dst = tuple.dst;
      out.dstPort = tuple.dport;
      out.flags = FLAGS_TEXT[tcp.flags & 0xff]!;
      out.tcpFlags = tcp.flags;
      out.ipId = v6 ? null : ip.id;
      out.src4 = v6 ? null : a;
      out.dst4 = v6 ? null : b;
      out.seq = tcp.seq;
      out.ack = tcp.ack;
      out.len = payloadLength;
      out.window = tcp.window;
      out.natMatchedTo = r?.viaNat ? r.binding.origText : null;
      out.entry = binding !== null ? binding.entry : null;
      out.entryKey = key;
      out.flow = flows.rowOfFlow(f);
      out.consequence = consequenceOf(decision, binding);
      out.captureMissed = missed;
      o.onPacket(out);
    }
  };
  // a link type carrying no IP is an error naming it, not a clean run over 0 TCP packets
  await forEachPacket(path, onRecord, { stats, transientData: true, ...(o.pause ? { pause: o.pause } : {}) });
  s.captureMissed = gaps.missed;
  s.earlyDrops = table.earlyDrops;
  s.tableFull = table.tableFull;
  s.cutToSnaplen = stats.cutToSnaplen;
  s.compression = stats.compression;
  return { ...s, flows: flows.list() };
}
