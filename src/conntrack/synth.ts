/**
 * Synthetic TCP flows as IPv4 packets, for explain's tests and benchmark: a client and a server
 * with real handshakes, data, optional forged out-of-window segments and a FIN close.
 */
import { parseIP } from '../packet/address.js';
import { encodeIPv4 } from '../packet/ip.js';
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
  const cli = (flags: number, seq: number, ack: number, options?: TcpOptions, payload?: Uint8Array) =>
    out.push({ ts: (t += 0.001), data: encodeIPv4({ src: c, dst: s, protocol: 6, id: id++ }, encodeTcp({ srcPort: f.clientPort, dstPort: f.serverPort, seq, ack, flags, window: 502, ...(options ? { options } : {}), ...(payload ? { payload } : {}) }, c, s)) });
  const srv = (flags: number, seq: number, ack: number, options?: TcpOptions, payload?: Uint8Array) =>
    out.push({ ts: (t += 0.001), data: encodeIPv4({ src: s, dst: r, protocol: 6, id: id++ }, encodeTcp({ srcPort: f.serverPort, dstPort: f.clientPort, seq, ack, flags, window: 509, ...(options ? { options } : {}), ...(payload ? { payload } : {}) }, s, r)) });
  let cs = f.clientIsn;
  let ss = f.serverIsn;
  cli(TCP_SYN, cs, 0, { mss: 1460, sackPerm: true, tsVal: 1, tsEcr: 0, wscale: 7 });
  cs = seqAdd(cs, 1);
  srv(TCP_SYN | TCP_ACK, ss, cs, { mss: 1460, sackPerm: true, tsVal: 1, tsEcr: 1, wscale: 7 });
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
