/**
 * TCP header encode/decode with options (MSS, window scale, SACK-permitted, SACK blocks,
 * timestamps). Decoding returns a PacketError value for a truncated or malformed header.
 */
import { InternalError } from '../errors.js';
import { tcpChecksum } from './checksum.js';
import { PacketError } from './ip.js';

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;
export const TCP_URG = 0x20;
export const TCP_ECE = 0x40;
export const TCP_CWR = 0x80;

const FLAG_NAMES: Array<[number, string]> = [
  [TCP_SYN, 'SYN'],
  [TCP_FIN, 'FIN'],
  [TCP_RST, 'RST'],
  [TCP_PSH, 'PSH'],
  [TCP_ACK, 'ACK'],
  [TCP_URG, 'URG'],
  [TCP_ECE, 'ECE'],
  [TCP_CWR, 'CWR'],
];

/** "SYN|ACK", "PSH|ACK", "RST" … */
export function flagsToString(flags: number): string {
  const parts: string[] = [];
  for (const [bit, name] of FLAG_NAMES) if (flags & bit) parts.push(name);
  return parts.length ? parts.join('|') : 'none';
}

export const OPT_EOL = 0;
export const OPT_NOP = 1;
export const OPT_MSS = 2;
export const OPT_WSCALE = 3;
export const OPT_SACK_PERM = 4;
export const OPT_SACK = 5;
export const OPT_TIMESTAMP = 8;

export interface TcpOptions {
  mss?: number;
  wscale?: number;
  sackPerm?: boolean;
  sackBlocks?: Array<[number, number]>;
  tsVal?: number;
  tsEcr?: number;
  /** The options are exactly NOP, NOP, TIMESTAMP (conntrack skips SACK parsing for these). */
  tsOnlyNopNop?: boolean;
}

export interface TcpHeader {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  /** Header length in bytes (data offset × 4). */
  dataOffset: number;
  flags: number;
  window: number;
  checksum: number;
  urgent: number;
  /** Absolute offsets into the buffer. */
  offset: number;
  payloadOffset: number;
  payloadLength: number;
}

function u32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

/** Decode a TCP header at `off`; `end` is the end of the IP payload; `into`: a header to refill instead of a new one. */
export const newTcpHeader = (): TcpHeader => ({ srcPort: 0, dstPort: 0, seq: 0, ack: 0, dataOffset: 20, flags: 0, window: 0, checksum: 0, urgent: 0, offset: 0, payloadOffset: 0, payloadLength: 0 });

export function decodeTcp(buf: Uint8Array, off: number, end: number, into?: TcpHeader): TcpHeader | PacketError {
  if (end - off < 20) return new PacketError('TRUNCATED', `TCP header needs 20 bytes, ${end - off} captured`);
  const doff = (buf[off + 12]! >> 4) * 4;
  if (doff < 20) return new PacketError('BAD_HEADER', `TCP data offset ${doff} < 20`);
  if (doff > end - off) return new PacketError('TRUNCATED', `TCP header of ${doff} bytes, ${end - off} captured`);
  if (into) {
    // a hot loop's one header, refilled
    into.srcPort = (buf[off]! << 8) | buf[off + 1]!;
    into.dstPort = (buf[off + 2]! << 8) | buf[off + 3]!;
    into.seq = u32(buf, off + 4);
    into.ack = u32(buf, off + 8);
    into.dataOffset = doff;
    into.flags = buf[off + 13]!;
    into.window = (buf[off + 14]! << 8) | buf[off + 15]!;
    into.checksum = (buf[off + 16]! << 8) | buf[off + 17]!;
    into.urgent = (buf[off + 18]! << 8) | buf[off + 19]!;
    into.offset = off;
    into.payloadOffset = off + doff;
    into.payloadLength = end - off - doff;
    return into;
  }
  return {
    srcPort: (buf[off]! << 8) | buf[off + 1]!,
    dstPort: (buf[off + 2]! << 8) | buf[off + 3]!,
    seq: u32(buf, off + 4),
    ack: u32(buf, off + 8),
    dataOffset: doff,
    flags: buf[off + 13]!,
    window: (buf[off + 14]! << 8) | buf[off + 15]!,
    checksum: (buf[off + 16]! << 8) | buf[off + 17]!,
    urgent: (buf[off + 18]! << 8) | buf[off + 19]!,
    offset: off,
    payloadOffset: off + doff,
    payloadLength: end - off - doff,
  };
}

/**
 * Parse the options of the header at `h.offset`. Malformed options stop the walk (as the kernel
 * does) rather than failing the packet. `timestamps`: false leaves tsVal / tsEcr alone (conntrack
 * does not read them, and a replay would box both u32s of nearly every Linux segment on the heap).
 */
export function decodeTcpOptions(buf: Uint8Array, h: TcpHeader, into: TcpOptions = {}, timestamps = true): TcpOptions {
  const start = h.offset + 20;
  const end = h.offset + h.dataOffset;
  into.tsOnlyNopNop =
    end - start === 12 && buf[start] === OPT_NOP && buf[start + 1] === OPT_NOP && buf[start + 2] === OPT_TIMESTAMP && buf[start + 3] === 10;
  // (most segments of a Linux host: the timestamp alone, nothing else to read)
  if (into.tsOnlyNopNop && !timestamps) return into;
  let p = start;
  while (p < end) {
    const kind = buf[p]!;
    if (kind === OPT_EOL) break;
    if (kind === OPT_NOP) {
      p++;
      continue;
    }
    if (p + 1 >= end) break;
    const len = buf[p + 1]!;
    if (len < 2 || p + len > end) break;
    if (kind === OPT_MSS && len === 4) into.mss = (buf[p + 2]! << 8) | buf[p + 3]!;
    else if (kind === OPT_WSCALE && len === 3) into.wscale = buf[p + 2]!;
    else if (kind === OPT_SACK_PERM && len === 2) into.sackPerm = true;
    else if (kind === OPT_TIMESTAMP && len === 10) {
      if (timestamps) {
        into.tsVal = u32(buf, p + 2);
        into.tsEcr = u32(buf, p + 6);
      }
    } else if (kind === OPT_SACK && len >= 10 && (len - 2) % 8 === 0) {
      const blocks: Array<[number, number]> = [];
      for (let q = p + 2; q + 8 <= p + len; q += 8) blocks.push([u32(buf, q), u32(buf, q + 4)]);
      into.sackBlocks = blocks;
    }
    p += len;
  }
  return into;
}

export interface TcpFields {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  urgent?: number;
  options?: TcpOptions;
  payload?: Uint8Array;
}

function encodeOptions(o: TcpOptions | undefined): number[] {
  const out: number[] = [];
  if (!o) return out;
  if (o.mss !== undefined) out.push(OPT_MSS, 4, (o.mss >> 8) & 0xff, o.mss & 0xff);
  if (o.sackPerm) out.push(OPT_SACK_PERM, 2);
  if (o.tsVal !== undefined) {
    const v = o.tsVal >>> 0;
    const e = (o.tsEcr ?? 0) >>> 0;
    out.push(OPT_NOP, OPT_NOP, OPT_TIMESTAMP, 10, v >>> 24, (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff, e >>> 24, (e >> 16) & 0xff, (e >> 8) & 0xff, e & 0xff);
  }
  if (o.wscale !== undefined) out.push(OPT_NOP, OPT_WSCALE, 3, o.wscale);
  if (o.sackBlocks?.length) {
    out.push(OPT_NOP, OPT_NOP, OPT_SACK, 2 + 8 * o.sackBlocks.length);
    for (const [l, r] of o.sackBlocks)
      for (const v of [l >>> 0, r >>> 0]) out.push(v >>> 24, (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff);
  }
  while (out.length % 4) out.push(OPT_EOL);
  if (out.length > 40) throw new InternalError(`TCP options need ${out.length} bytes, 40 at most`);
  return out;
}

/**
 * Encode a TCP segment with its checksum computed over the pseudo-header of src/dst
 * (4 or 16 bytes each). The raw socket sends exactly these bytes; the kernel adds the IP header.
 */
export function encodeTcp(f: TcpFields, src: Uint8Array, dst: Uint8Array): Uint8Array {
  const opts = encodeOptions(f.options);
  const hlen = 20 + opts.length;
  const payload = f.payload ?? new Uint8Array(0);
  const out = new Uint8Array(hlen + payload.length);
  const seq = f.seq >>> 0;
  const ack = f.ack >>> 0;
  out[0] = f.srcPort >> 8;
  out[1] = f.srcPort & 0xff;
  out[2] = f.dstPort >> 8;
  out[3] = f.dstPort & 0xff;
  out[4] = seq >>> 24;
  out[5] = (seq >> 16) & 0xff;
  out[6] = (seq >> 8) & 0xff;
  out[7] = seq & 0xff;
  out[8] = ack >>> 24;
  out[9] = (ack >> 16) & 0xff;
  out[10] = (ack >> 8) & 0xff;
  out[11] = ack & 0xff;
  out[12] = (hlen / 4) << 4;
  out[13] = f.flags & 0xff;
  out[14] = (f.window >> 8) & 0xff;
  out[15] = f.window & 0xff;
  out[18] = ((f.urgent ?? 0) >> 8) & 0xff;
  out[19] = (f.urgent ?? 0) & 0xff;
  out.set(opts, 20);
  out.set(payload, hlen);
  const c = tcpChecksum(out, src, dst);
  out[16] = c >> 8;
  out[17] = c & 0xff;
  return out;
}
