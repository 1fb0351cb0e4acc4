/**
 * IPv4 and IPv6 header encode/decode. Decoding never throws: a truncated or malformed header
 * comes back as a PacketError value, so hot paths (raw socket, capture replay) branch instead of
 * unwinding.
 */
import { sum16, finish } from './checksum.js';

export type PacketErrorCode = 'TRUNCATED' | 'BAD_VERSION' | 'BAD_HEADER' | 'NOT_TCP' | 'FRAGMENT';

export class PacketError {
  readonly code: PacketErrorCode;
  readonly message: string;
  constructor(code: PacketErrorCode, message: string) {
    this.code = code;
    this.message = message;
  }
}

export function isPacketError(x: unknown): x is PacketError {
  return x instanceof PacketError;
}

export const IPPROTO_TCP = 6;

export interface IpHeader {
  version: 4 | 6;
  /** Offsets of the source and destination addresses in the buffer (4 or 16 bytes each). */
  srcOffset: number;
  dstOffset: number;
  /** Offset of the IP header in the buffer. */
  offset: number;
  headerLength: number;
  /** Total datagram length claimed by the header (v6: 40 + payload length). */
  totalLength: number;
  /** Upper-layer protocol after any IPv6 extension headers. */
  protocol: number;
  ttl: number;
  /** IPv4 identification (0 for v6). */
  id: number;
  /** Views into the buffer (4 or 16 bytes), made on first use: hot loops read by offset instead. */
  readonly src: Uint8Array;
  readonly dst: Uint8Array;
  payloadOffset: number;
  payloadLength: number;
  /** IPv4 fragment offset/more-fragments set: not the first or only fragment. */
  fragment: boolean;
  /**
   * Where totalLength comes from: the header, an IPv6 jumbo payload option, or (TSO / BIG TCP,
   * captured on the sending host: the header says 0) the length of the frame on the wire.
   */
  lengthFrom: 'header' | 'jumbo' | 'wire';
}

const V6_EXT = new Set([0, 43, 60]); // hop-by-hop, routing, destination options

/** A decoded header; `decodeIp(…, into)` refills one instead of making one per packet. */
export class DecodedIp implements IpHeader {
  private buf: Uint8Array = EMPTY;
  version: 4 | 6 = 4;
  offset = 0;
  headerLength = 0;
  totalLength = 0;
  protocol = 0;
  ttl = 0;
  id = 0;
  srcOffset = 0;
  dstOffset = 0;
  payloadOffset = 0;
  payloadLength = 0;
  fragment = false;
  lengthFrom: IpHeader['lengthFrom'] = 'header';

  set(buf: Uint8Array, version: 4 | 6, offset: number, headerLength: number, totalLength: number, protocol: number, ttl: number, id: number, srcOffset: number, dstOffset: number, payloadOffset: number, payloadLength: number, fragment: boolean, lengthFrom: IpHeader['lengthFrom']): this {
    this.buf = buf;
    this.version = version;
    this.offset = offset;
    this.headerLength = headerLength;
    this.totalLength = totalLength;
    this.protocol = protocol;
    this.ttl = ttl;
    this.id = id;
    this.srcOffset = srcOffset;
    this.dstOffset = dstOffset;
    this.payloadOffset = payloadOffset;
    this.payloadLength = payloadLength;
    this.fragment = fragment;
    this.lengthFrom = lengthFrom;
    return this;
  }
  get src(): Uint8Array {
    return this.buf.subarray(this.srcOffset, this.srcOffset + (this.version === 4 ? 4 : 16));
  }
  get dst(): Uint8Array {
    return this.buf.subarray(this.dstOffset, this.dstOffset + (this.version === 4 ? 4 : 16));
  }
}
const EMPTY = new Uint8Array(0);

/**
 * Decode the IP header at `off`; `end` bounds the bytes actually captured, `wireEnd` (default
 * `end`) is where the datagram ended on the wire (a capture's original length): a segment
 * handed to the NIC for segmentation (TSO, BIG TCP) has an IPv4 total length or IPv6 payload
 * length of 0 when captured on the sending host, and its length is the frame's, as tcpdump and
 * Wireshark take it.
 */
export function decodeIp(buf: Uint8Array, off = 0, end = buf.length, wireEnd = end, into?: DecodedIp): IpHeader | PacketError {
  if (end - off < 1) return new PacketError('TRUNCATED', 'empty packet');
  const version = buf[off]! >> 4;
  if (version === 4) return decodeIPv4(buf, off, end, wireEnd, into ?? new DecodedIp());
  if (version === 6) return decodeIPv6(buf, off, end, wireEnd, into ?? new DecodedIp());
  return new PacketError('BAD_VERSION', `IP version ${version} is neither 4 nor 6`);
}

function decodeIPv4(buf: Uint8Array, off: number, end: number, wireEnd: number, into: DecodedIp): IpHeader | PacketError {
  if (end - off < 20) return new PacketError('TRUNCATED', `IPv4 header needs 20 bytes, ${end - off} captured`);
  const ihl = (buf[off]! & 0x0f) * 4;
  if (ihl < 20) return new PacketError('BAD_HEADER', `IPv4 header length ${ihl} < 20`);
  if (end - off < ihl) return new PacketError('TRUNCATED', `IPv4 header of ${ihl} bytes, ${end - off} captured`);
  let total = (buf[off + 2]! << 8) | buf[off + 3]!;
  const fromWire = total === 0 && wireEnd - off >= ihl;
  if (fromWire) total = wireEnd - off;
  if (total < ihl) return new PacketError('BAD_HEADER', `IPv4 total length ${total} < header length ${ihl}`);
  const fragField = ((buf[off + 6]! << 8) | buf[off + 7]!) & 0x3fff;
  const avail = Math.min(total, end - off);
  return into.set(buf, 4, off, ihl, total, buf[off + 9]!, buf[off + 8]!, (buf[off + 4]! << 8) | buf[off + 5]!, off + 12, off + 16, off + ihl, avail - ihl, (fragField & 0x1fff) !== 0, fromWire ? 'wire' : 'header');
}

/** The Jumbo Payload option (RFC 2675) in a hop-by-hop header at `p`, or -1. */
function jumboLength(buf: Uint8Array, p: number, end: number): number {
  if (end - p < 8) return -1;
  const hend = Math.min(p + (buf[p + 1]! + 1) * 8, end);
  let o = p + 2;
  while (o < hend) {
    const type = buf[o]!;
    if (type === 0) {
      o++; // Pad1
      continue;
    }
    if (o + 1 >= hend) break;
    const len = buf[o + 1]!;
    if (type === 0xc2 && len === 4 && o + 6 <= hend) return ((buf[o + 2]! << 24) | (buf[o + 3]! << 16) | (buf[o + 4]! << 8) | buf[o + 5]!) >>> 0;
    o += 2 + len;
  }
  return -1;
}

function decodeIPv6(buf: Uint8Array, off: number, end: number, wireEnd: number, into: DecodedIp): IpHeader | PacketError {
  if (end - off < 40) return new PacketError('TRUNCATED', `IPv6 header needs 40 bytes, ${end - off} captured`);
  let plen = (buf[off + 4]! << 8) | buf[off + 5]!;
  let next = buf[off + 6]!;
  let lengthFrom: IpHeader['lengthFrom'] = 'header';
  if (plen === 0) {
    // a jumbogram carries its length in a hop-by-hop option; BIG TCP on the sender has none
    const jumbo = next === 0 ? jumboLength(buf, off + 40, end) : -1;
    if (jumbo > 0) {
      plen = jumbo;
      lengthFrom = 'jumbo';
    } else if (wireEnd - off > 40) {
      plen = wireEnd - off - 40;
      lengthFrom = 'wire';
    }
  }
  let p = off + 40;
  const limit = Math.min(off + 40 + plen, end);
  let fragment = false;
  while (V6_EXT.has(next) || next === 44) {
    if (limit - p < 8) return new PacketError('TRUNCATED', 'IPv6 extension header truncated');
    if (next === 44) {
      fragment = (((buf[p + 2]! << 8) | buf[p + 3]!) & 0xfff8) !== 0;
      next = buf[p]!;
      p += 8;
    } else {
      const len = (buf[p + 1]! + 1) * 8;
      next = buf[p]!;
      p += len;
    }
  }
  if (p > limit) return new PacketError('TRUNCATED', 'IPv6 extension headers run past the packet');
  return into.set(buf, 6, off, p - off, 40 + plen, next, buf[off + 7]!, 0, off + 8, off + 24, p, limit - p, fragment, lengthFrom);
}

export interface IPv4Fields {
  src: Uint8Array;
  dst: Uint8Array;
  protocol: number;
  ttl?: number;
  id?: number;
  dontFragment?: boolean;
}

/** Encode an IPv4 header (no options) in front of `payload`, with its header checksum. */
export function encodeIPv4(f: IPv4Fields, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(20 + payload.length);
  const total = out.length;
  out[0] = 0x45;
  out[2] = total >> 8;
  out[3] = total & 0xff;
  out[4] = ((f.id ?? 0) >> 8) & 0xff;
  out[5] = (f.id ?? 0) & 0xff;
  out[6] = f.dontFragment === false ? 0 : 0x40;
  out[8] = f.ttl ?? 64;
  out[9] = f.protocol;
  out.set(f.src, 12);
  out.set(f.dst, 16);
  const c = finish(sum16(out, 0, 20));
  out[10] = c >> 8;
  out[11] = c & 0xff;
  out.set(payload, 20);
  return out;
}

export interface IPv6Fields {
  src: Uint8Array;
  dst: Uint8Array;
  nextHeader: number;
  hopLimit?: number;
  flowLabel?: number;
}

/** Encode an IPv6 header (no extension headers) in front of `payload`. */
export function encodeIPv6(f: IPv6Fields, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(40 + payload.length);
  const fl = f.flowLabel ?? 0;
  out[0] = 0x60;
  out[1] = (fl >> 16) & 0x0f;
  out[2] = (fl >> 8) & 0xff;
  out[3] = fl & 0xff;
  out[4] = payload.length >> 8;
  out[5] = payload.length & 0xff;
  out[6] = f.nextHeader;
  out[7] = f.hopLimit ?? 64;
  out.set(f.src, 8);
  out.set(f.dst, 24);
  out.set(payload, 40);
  return out;
}

/** True when the IPv4 header checksum at `off` is right. */
export function ipv4ChecksumOk(buf: Uint8Array, off = 0): boolean {
  const ihl = (buf[off]! & 0x0f) * 4;
  return finish(sum16(buf, off, off + ihl)) === 0;
}
