/**
 * Synthetic TCP flows as IPv4 packets, for explain's tests and benchmark: a client and a server
 * with real handshakes, data, optional forged out-of-window segments and a FIN close. `synthNatFlow`
 * renders a flow as a `tcpdump -i any` capture on a NAT host does (Linux cooked v2): every packet
 * once per interface it crosses, with the tuple NAT left it at that point.
 */
import { parseIP } from '../packet/address.js';
import { encodeIPv4, encodeIPv6 } from '../packet/ip.js';
import { seqAdd } from '../packet/seq.js';
import { encodeTcp, TCP_ACK, TCP_FIN, TCP_PSH, TCP_SYN, type TcpOptions } from '../packet/tcp.js';

export interface SynthPacket {
  ts: number;
  data: Uint8Array;
}

export interface SynthFlow {
  client: string;
  server: string;
  clientPort: number;
  serverPort: number;
  /** Address the server's packets are sent to (a NAT address), default the client's. */
  replyTo?: string;
  clientIsn: number;
  serverIsn: number;
  /** Data segments the server sends after the handshake (bytes each). */
  segments: number;
  segmentBytes?: number;
  /** A forged server segment at server next + this offset, right after the handshake. */
  forgedOffset?: number;
  start: number;
  /**
   * Every segment carries a TCP timestamp (NOP, NOP, TS), as Linux sends them: each side's clock
   * from its own random offset (a u32, most above 2³⁰), one tick a millisecond. Default: only the
   * handshake has options.
   */
  timestamps?: boolean;
}

/** The packets of one flow, in order (1 ms apart). */
export function synthFlow(f: SynthFlow): SynthPacket[] {
  const c = parseIP(f.client);
  const s = parseIP(f.server);
  const r = parseIP(f.replyTo ?? f.client);
  const out: SynthPacket[] = [];
  let t = f.start;
  let id = 1;
  const bytes = f.segmentBytes ?? 100;
  // (each side's clock offset: from its ISN, so a flow is the same each time it is made)
  const clientClock = Math.imul(f.clientIsn ^ 0x5bd1e995, 0x27d4eb2d) >>> 0;
  const serverClock = Math.imul(f.serverIsn ^ 0x68e31da4, 0x165667b1) >>> 0;
  let clientTs = 0;
  let serverTs = 0;
  const stamp = (options: TcpOptions | undefined, fromClient: boolean): TcpOptions | undefined => {
    if (!f.timestamps || options) return options;
    const ms = Math.round((t - f.start) * 1000);
    if (fromClient) clientTs = (clientClock + ms) >>> 0;
    else serverTs = (serverClock + ms) >>> 0;
    return fromClient ? { tsVal: clientTs, tsEcr: serverTs } : { tsVal: serverTs, tsEcr: clientTs };
  };
  const cli = (flags: number, seq: number, ack: number, given?: TcpOptions, payload?: Uint8Array) => {
    const ts = (t += 0.001);
    const options = stamp(given, true);
    out.push({ ts, data: encodeIPv4({ src: c, dst: s, protocol: 6, id: id++ }, encodeTcp({ srcPort: f.clientPort, dstPort: f.serverPort, seq, ack, flags, window: 502, ...(options ? { options } : {}), ...(payload ? { payload } : {}) }, c, s)) });
  };
  const srv = (flags: number, seq: number, ack: number, given?: TcpOptions, payload?: Uint8Array) => {
    const ts = (t += 0.001);
    const options = stamp(given, false);
    out.push({ ts, data: encodeIPv4({ src: s, dst: r, protocol: 6, id: id++ }, encodeTcp({ srcPort: f.serverPort, dstPort: f.clientPort, seq, ack, flags, window: 509, ...(options ? { options } : {}), ...(payload ? { payload } : {}) }, s, r)) });
  };
  let cs = f.clientIsn;
  let ss = f.serverIsn;
  if (f.timestamps) {
    clientTs = clientClock;
    serverTs = serverClock;
  }
  cli(TCP_SYN, cs, 0, { mss: 1460, sackPerm: true, tsVal: f.timestamps ? clientTs : 1, tsEcr: 0, wscale: 7 });
  cs = seqAdd(cs, 1);
  srv(TCP_SYN | TCP_ACK, ss, cs, { mss: 1460, sackPerm: true, tsVal: f.timestamps ? serverTs : 1, tsEcr: f.timestamps ? clientTs : 1, wscale: 7 });
  ss = seqAdd(ss, 1);
  cli(TCP_ACK, cs, ss);
  if (f.forgedOffset !== undefined) {
    srv(TCP_PSH | TCP_ACK, seqAdd(ss, f.forgedOffset), cs, undefined, new Uint8Array(4));
    cli(TCP_ACK, cs, ss);
  }
  const payload = new Uint8Array(bytes);
  for (let i = 0; i < f.segments; i++) {
    srv(TCP_PSH | TCP_ACK, ss, cs, undefined, payload);
    ss = seqAdd(ss, bytes);
    cli(TCP_ACK, cs, ss);
  }
  cli(TCP_FIN | TCP_ACK, cs, ss);
  cs = seqAdd(cs, 1);
  srv(TCP_FIN | TCP_ACK, ss, cs);
  ss = seqAdd(ss, 1);
  cli(TCP_ACK, cs, ss);
  return out;
}

export interface WireTuple {
  src: string;
  sport: number;
  dst: string;
  dport: number;
}

/** Where a copy is captured: interface index, packet type (0 to us, 4 outgoing), the tuple there. */
export interface Hop {
  ifindex: number;
  pkttype: number;
  tuple: WireTuple;
}

export interface SynthNatFlow {
  /** Copies of the initiator's packets, in the order the host sees them. */
  forward: Hop[];
  /** Copies of the responder's packets. */
  backward: Hop[];
  clientIsn: number;
  serverIsn: number;
  segments: number;
  start: number;
  /** Seconds between logical packets (default 0.03). */
  gap?: number;
  /** Seconds between copies of one packet (default 0.000002; slow guests: up to 0.012). */
  copyDelay?: number;
  /** Stop after this many logical packets (e.g. 3: the handshake only). */
  limit?: number;
}

/** One logical TCP segment as the initiator (`fromClient`) or responder sent it. */
export interface SynthSegment {
  fromClient: boolean;
  flags: number;
  seq: number;
  ack: number;
  payload?: number;
  options?: TcpOptions;
  /** IPv4 ID (copies share it). */
  id: number;
  window?: number;
}

/** A Linux cooked v2 frame around an IP packet. */
export function sll2Frame(ip: Uint8Array, ifindex: number, pkttype: number): Uint8Array {
  const out = new Uint8Array(20 + ip.length);
  const v6 = (ip[0]! >> 4) === 6;
  out[0] = v6 ? 0x86 : 0x08;
  out[1] = v6 ? 0xdd : 0x00;
  out[4] = (ifindex >>> 24) & 0xff;
  out[5] = (ifindex >>> 16) & 0xff;
  out[6] = (ifindex >>> 8) & 0xff;
  out[7] = ifindex & 0xff;
  out[8] = 0x00;
  out[9] = 0x01; // ARPHRD_ETHER
  out[10] = pkttype;
  out[11] = 6;
  out.set(ip, 20);
  return out;
}

/** An IPv4 or IPv6 TCP packet for a tuple. */
export function tcpPacket(t: WireTuple, g: SynthSegment): Uint8Array {
  const src = parseIP(t.src);
  const dst = parseIP(t.dst);
  const tcp = encodeTcp(
    { srcPort: t.sport, dstPort: t.dport, seq: g.seq, ack: g.ack, flags: g.flags, window: g.window ?? (g.fromClient ? 502 : 509), ...(g.options ? { options: g.options } : {}), ...(g.payload ? { payload: new Uint8Array(g.payload) } : {}) },
    src,
    dst,
  );
  return src.length === 16 ? encodeIPv6({ src, dst, nextHeader: 6 }, tcp) : encodeIPv4({ src, dst, protocol: 6, id: g.id }, tcp);
}

/** The segments of a flow: handshake, `segments` server data segments with ACKs, FIN close. */
export function flowSegments(f: { clientIsn: number; serverIsn: number; segments: number }): SynthSegment[] {
  const out: SynthSegment[] = [];
  let id = 100;
  let cs = f.clientIsn;
  let ss = f.serverIsn;
  const push = (fromClient: boolean, flags: number, seq: number, ack: number, payload = 0, options?: TcpOptions) =>
    out.push({ fromClient, flags, seq, ack, payload, id: fromClient ? id++ : 0, ...(options ? { options } : {}) });
  push(true, TCP_SYN, cs, 0, 0, { mss: 1460, sackPerm: true, tsVal: 1, tsEcr: 0, wscale: 7 });
  cs = seqAdd(cs, 1);
  push(false, TCP_SYN | TCP_ACK, ss, cs, 0, { mss: 1460, sackPerm: true, tsVal: 1, tsEcr: 1, wscale: 7 });
  ss = seqAdd(ss, 1);
  push(true, TCP_ACK, cs, ss);
  for (let i = 0; i < f.segments; i++) {
    out.push({ fromClient: false, flags: TCP_PSH | TCP_ACK, seq: ss, ack: cs, payload: 100, id: 5000 + i });
    ss = seqAdd(ss, 100);
    push(true, TCP_ACK, cs, ss);
  }
  push(true, TCP_FIN | TCP_ACK, cs, ss);
  cs = seqAdd(cs, 1);
  out.push({ fromClient: false, flags: TCP_FIN | TCP_ACK, seq: ss, ack: cs, id: 6000 });
  ss = seqAdd(ss, 1);
  push(true, TCP_ACK, cs, ss);
  return out;
}

/** Frames of the given segments, each once per hop of its direction, sorted by time. */
export function renderHops(segments: SynthSegment[], f: Pick<SynthNatFlow, 'forward' | 'backward' | 'start' | 'gap' | 'copyDelay'>): SynthPacket[] {
  const out: SynthPacket[] = [];
  const gap = f.gap ?? 0.03;
  const copyDelay = f.copyDelay ?? 0.000002;
  segments.forEach((g, i) => {
    const hops = g.fromClient ? f.forward : f.backward;
    hops.forEach((h, j) => out.push({ ts: f.start + i * gap + j * copyDelay, data: sll2Frame(tcpPacket(h.tuple, g), h.ifindex, h.pkttype) }));
  });
  return out.sort((a, b) => a.ts - b.ts);
}

/** A whole flow through NAT as `tcpdump -i any` on the host shows it. */
export function synthNatFlow(f: SynthNatFlow): SynthPacket[] {
  const segs = flowSegments(f);
  return renderHops(f.limit === undefined ? segs : segs.slice(0, f.limit), f);
}
