/**
 * explain: replay a capture through the conntrack model and say, per TCP packet, what the kernel
 * does with it (ACCEPT / IGNORE / INVALID), why, in the kernel's own words, and what follows.
 *
 * Captures taken on a NAT host with `tcpdump -i any` show a forwarded packet once per interface it
 * crosses (bridge port, bridge, uplink; before and after NAT); conntrack sees it once, on the way
 * in. `dedupe` keeps the first copy of a packet (same ports, seq, ack, flags, window, length and
 * IP id within 5 ms). Replies to a masqueraded flow are addressed to the NAT address, not the
 * original source: when a packet matches no flow, it is matched to the flow whose original
 * destination sent it to that original source port (SNAT/MASQUERADE-aware).
 */
import { forEachPacket, LINKTYPE, type PacketRecord } from '../capture/reader.js';
import { ipv4ToString, ipv6ToString } from '../packet/address.js';
import { decodeIp, IPPROTO_TCP, isPacketError } from '../packet/ip.js';
import { decodeTcp, decodeTcpOptions, flagsToString, type TcpOptions } from '../packet/tcp.js';
import { ConntrackTable, createDecision, flowKey, type Decision, type Sysctls, type TcpPacketView } from './model.js';
import type { KernelProfile } from './profile.js';

export interface ExplainOptions {
  profile: KernelProfile;
  sysctls?: Partial<Sysctls>;
  /** Only report packets of flows matching this filter (ADDR, PORT, :PORT or ADDR:PORT). All packets still feed the model. */
  flow?: string | null;
  /** Drop duplicate copies of a packet seen on several interfaces. Default: on for Linux cooked (any-interface) captures. */
  dedupe?: boolean | 'auto';
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
  /** Set when the packet was matched to its flow through NAT (the flow's original source address). */
  natMatchedTo: string | null;
  decision: Decision;
  consequence: string;
}

export interface FlowSummary {
  flow: string;
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

/** What a verdict means for the packet, in plain words. */
export function consequenceOf(d: Decision): string {
  if (d.verdict === 'INVALID')
    return 'INVALID: untracked, so not de-NATed — a NAT host delivers it to its own stack, which answers with RST (unless a ctstate INVALID DROP rule drops it)';
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

const DEDUPE_WINDOW_S = 0.005;

/**
 * A short canonical key for an IPv4 4-tuple (6 UTF-16 units, same for both directions): cheaper to
 * build and hash per packet than the table's text key. The table accepts any key that is the same
 * for both directions of a flow and distinct between flows; IPv6 uses the text key.
 */
function v4Key(a: number, pa: number, b: number, pb: number): string {
  const aFirst = a < b || (a === b && pa <= pb);
  return aFirst
    ? String.fromCharCode(a >>> 16, a & 0xffff, pa, b >>> 16, b & 0xffff, pb)
    : String.fromCharCode(b >>> 16, b & 0xffff, pb, a >>> 16, a & 0xffff, pa);
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

export async function explainCapture(path: string, o: ExplainOptions): Promise<ExplainSummary> {
  const table = new ConntrackTable(o.profile, o.sysctls);
  const filter = o.flow ? parseFlowFilter(o.flow) : null;
  const view: TcpPacketView = { src: '', dst: '', srcPort: 0, dstPort: 0, seq: 0, ack: 0, flags: 0, window: 0, payloadLength: 0, dataOffset: 20, options: {}, hasOptions: false, tsSec: 0 };
  const decision = createDecision();
  const opts: TcpOptions = {};
  const out: ExplainedPacket = { index: 0, tsSec: 0, src: '', srcPort: 0, dst: '', dstPort: 0, flags: '', tcpFlags: 0, ipId: null, seq: 0, ack: 0, len: 0, window: 0, natMatchedTo: null, decision, consequence: '' };
  const s: ExplainSummary = { packets: 0, tcp: 0, skipped: 0, duplicates: 0, accept: 0, ignore: 0, invalid: 0, flows: [] };
  const flows = new Map<string, FlowSummary>();
  // "serverAddr|serverPort>clientPort" → original client address (text, and u32 for IPv4), for
  // replies addressed to a NAT address
  const natIndex = new Map<string, { text: string; v4: number }>();
  const recent = new Map<string, number>();
  let lastPrune = 0;
  let dedupe: boolean | null = o.dedupe === true ? true : o.dedupe === false ? false : null;

  const onRecord = (rec: PacketRecord): void => {
    s.packets++;
    if (dedupe === null) dedupe = rec.linkType === LINKTYPE.LINUX_SLL || rec.linkType === LINKTYPE.LINUX_SLL2;
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
    if (dedupe) {
      const key = `${tcp.srcPort},${tcp.dstPort},${tcp.seq},${tcp.ack},${tcp.flags},${tcp.window},${payloadLength},${ip.id}`;
      const seen = recent.get(key);
      if (seen !== undefined && rec.tsSec - seen <= DEDUPE_WINDOW_S) {
        s.duplicates++;
        return;
      }
      recent.set(key, rec.tsSec);
      if (rec.tsSec - lastPrune > 1) {
        for (const [k, t] of recent) if (rec.tsSec - t > DEDUPE_WINDOW_S) recent.delete(k);
        lastPrune = rec.tsSec;
      }
    }
    s.tcp++;
    const v6 = ip.version === 6;
    view.src = v6 ? ipv6ToString(d, ip.srcOffset) : v4Text(d, ip.srcOffset);
    view.dst = v6 ? ipv6ToString(d, ip.dstOffset) : v4Text(d, ip.dstOffset);
    view.srcPort = tcp.srcPort;
    view.dstPort = tcp.dstPort;
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

    let natMatchedTo: string | null = null;
    const srcN = v6 ? 0 : u32At(d, ip.srcOffset);
    let key = v6 ? flowKey(view) : v4Key(srcN, view.srcPort, u32At(d, ip.dstOffset), view.dstPort);
    const known = table.lookup(view, key);
    if (!known) {
      const orig = natIndex.get(`${view.src}|${view.srcPort}>${view.dstPort}`);
      if (orig !== undefined && orig.text !== view.dst) {
        const alias = { src: view.src, srcPort: view.srcPort, dst: orig.text, dstPort: view.dstPort };
        const aliasKey = v6 ? flowKey(alias) : v4Key(srcN, view.srcPort, orig.v4, view.dstPort);
        if (table.lookup(alias, aliasKey)) {
          natMatchedTo = orig.text;
          view.dst = orig.text;
          key = aliasKey;
        }
      }
    }
    table.process(view, decision, key);
    if (!known && !natMatchedTo && table.lookup(view, key)) natIndex.set(`${view.dst}|${view.dstPort}>${view.srcPort}`, { text: view.src, v4: srcN });

    if (decision.verdict === 'INVALID') s.invalid++;
    else if (decision.verdict === 'IGNORE') s.ignore++;
    else s.accept++;

    if (filter && !filter(view.src, view.srcPort) && !filter(view.dst, view.dstPort)) return;
    let f = flows.get(key);
    if (!f) {
      const label = decision.dir === 'original' ? `${view.src}:${view.srcPort} → ${view.dst}:${view.dstPort}` : `${view.dst}:${view.dstPort} → ${view.src}:${view.srcPort}`;
      f = { flow: label, packets: 0, accept: 0, ignore: 0, invalid: 0, firstInvalid: null, finalState: '' };
      flows.set(key, f);
    }
    f.packets++;
    if (decision.verdict === 'INVALID') {
      f.invalid++;
      f.firstInvalid ??= { index: rec.index, reason: decision.reason };
    } else if (decision.verdict === 'IGNORE') f.ignore++;
    else f.accept++;
    f.finalState = decision.stateAfter;
    if (o.onPacket) {
      out.index = rec.index;
      out.tsSec = rec.tsSec;
      out.src = view.src;
      out.srcPort = view.srcPort;
      out.dst = natMatchedTo ? (v6 ? ipv6ToString(d, ip.dstOffset) : v4Text(d, ip.dstOffset)) : view.dst;
      out.dstPort = view.dstPort;
      out.flags = flagsToString(tcp.flags);
      out.tcpFlags = tcp.flags;
      out.ipId = v6 ? null : ip.id;
      out.seq = tcp.seq;
      out.ack = tcp.ack;
      out.len = payloadLength;
      out.window = tcp.window;
      out.natMatchedTo = natMatchedTo;
      out.consequence = consequenceOf(decision);
      o.onPacket(out);
    }
  };
  await forEachPacket(path, onRecord, { unknownLinkType: 'pass' });
  s.flows = [...flows.values()];
  return s;
}
