import { describe, expect, it } from 'vitest';
import { finish, internetChecksum, sum16, tcpChecksum, tcpChecksumOk } from './checksum.js';
import { ipv6ToString, parseIP, parseIPv6 } from './address.js';
import { decodeIp, encodeIPv4, encodeIPv6, ipv4ChecksumOk, isPacketError, PacketError } from './ip.js';
import { decodeTcp, decodeTcpOptions, encodeTcp, flagsToString, TCP_ACK, TCP_PSH, TCP_SYN } from './tcp.js';
import { seqAdd, seqAfter, seqBefore, seqDiff, seqSub } from './seq.js';

describe('internet checksum', () => {
  it('matches the known vectors', () => {
    // RFC 1071 pads an odd byte on the right: {0x55} sums to 0x5500, checksum 0xaaff, wire bytes aa ff.
    // Kubernetes' regression image gives {0x55} → 0xffaa: the same two wire bytes read as a
    // little-endian (host-order) integer.
    const c = internetChecksum(Uint8Array.of(0x55));
    expect(c).toBe(0xaaff);
    expect(((c & 0xff) << 8) | (c >> 8)).toBe(0xffaa);
    // RFC 1071 example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2, checksum 220d
    expect(internetChecksum(Uint8Array.of(0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7))).toBe(0x220d);
    expect(internetChecksum(new Uint8Array(0))).toBe(0xffff);
  });
  it('folds carries repeatedly', () => {
    expect(finish(0x1fffe)).toBe(0x0000);
    expect(finish(sum16(new Uint8Array(4000).fill(0xff)))).toBe(0x0000);
  });
  it('validates a real IPv4 header (from a capture)', () => {
    const hdr = Uint8Array.from(Buffer.from('4500003c1c4640004006b1e6ac100a63ac100a0c', 'hex'));
    expect(ipv4ChecksumOk(hdr)).toBe(true);
    hdr[8] = 63;
    expect(ipv4ChecksumOk(hdr)).toBe(false);
  });
});

describe('sequence arithmetic', () => {
  it('wraps around 2^32', () => {
    expect(seqAdd(0xffffffff, 1)).toBe(0);
    expect(seqAdd(0xfffffff0, 0x20)).toBe(0x10);
    expect(seqAdd(5, -10)).toBe(0xfffffffb);
    expect(seqSub(0, 1)).toBe(0xffffffff);
    expect(seqAdd(4294900000, 100000)).toBe(32704);
  });
  it('orders across the wrap', () => {
    expect(seqBefore(0xfffffff0, 0x10)).toBe(true);
    expect(seqAfter(0x10, 0xfffffff0)).toBe(true);
    expect(seqBefore(0x10, 0xfffffff0)).toBe(false);
    expect(seqBefore(7, 7)).toBe(false);
    expect(seqAfter(7, 7)).toBe(false);
    expect(seqDiff(0x10, 0xfffffff0)).toBe(0x20);
    expect(seqDiff(0xfffffff0, 0x10)).toBe(-0x20);
  });
  it('is antisymmetric except at exactly half the space', () => {
    for (const [a, b] of [[1, 2], [0, 0x7fffffff], [0x80000000, 0], [123456, 4000000000]] as const) {
      if (((a - b) >>> 0) !== 0x80000000) expect(seqBefore(a, b)).toBe(seqAfter(b, a));
    }
  });
});

describe('addresses', () => {
  it('round-trips IPv6 text with compression', () => {
    for (const t of ['2001:db8::1', '::1', '2001:db8:0:1:0:0:0:2', 'fe80::a:b:c:d', '::', '2001:db8::ffff:192.0.2.1']) {
      const b = parseIPv6(t);
      expect(parseIPv6(ipv6ToString(b))).toEqual(b);
    }
    expect(ipv6ToString(parseIPv6('2001:db8:0:1:0:0:0:2'))).toBe('2001:db8:0:1::2');
  });
  it('writes IPv6 text as RFC 5952 says (the WHATWG URL serializer agrees): the longest zero run, the first of equal ones', () => {
    let seed = 7;
    const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
    for (let n = 0; n < 3000; n++) {
      const b = new Uint8Array(16);
      // groups mostly zero or small, so that runs of every length and position occur
      for (let g = 0; g < 8; g++) {
        const v = rnd() < 0.5 ? 0 : rnd() < 0.5 ? Math.floor(rnd() * 16) : Math.floor(rnd() * 65536);
        b[2 * g] = v >> 8;
        b[2 * g + 1] = v & 255;
      }
      const full = Array.from({ length: 8 }, (_, g) => ((b[2 * g]! << 8) | b[2 * g + 1]!).toString(16)).join(':');
      // (an address whose first 96 bits are ::ffff: the URL serializer writes in hex as well)
      expect(ipv6ToString(b)).toBe(new URL(`http://[${full}]/`).hostname.slice(1, -1));
    }
  });
});

describe('TCP encode/decode', () => {
  const src = parseIP('198.51.100.2');
  const dst = parseIP('192.0.2.2');
  it('round-trips every field and option', () => {
    const seg = encodeTcp(
      {
        srcPort: 9000,
        dstPort: 40000,
        seq: 0xfffffff0,
        ack: 12345,
        flags: TCP_SYN | TCP_ACK,
        window: 64240,
        options: { mss: 1460, sackPerm: true, tsVal: 0xdeadbeef, tsEcr: 7, wscale: 7, sackBlocks: [[0xffffff00, 5]] },
        payload: Uint8Array.of(1, 2, 3),
      },
      src,
      dst,
    );
    const h = decodeTcp(seg, 0, seg.length);
    if (isPacketError(h)) throw new Error(h.message);
    expect(h).toMatchObject({ srcPort: 9000, dstPort: 40000, seq: 0xfffffff0, ack: 12345, flags: TCP_SYN | TCP_ACK, window: 64240, payloadLength: 3 });
    expect(h.dataOffset % 4).toBe(0);
    const o = decodeTcpOptions(seg, h);
    expect(o).toMatchObject({ mss: 1460, sackPerm: true, tsVal: 0xdeadbeef, tsEcr: 7, wscale: 7, sackBlocks: [[0xffffff00, 5]] });
    expect(() => encodeTcp({ srcPort: 1, dstPort: 2, seq: 0, ack: 0, flags: 0, window: 0, options: { mss: 1, tsVal: 1, wscale: 1, sackBlocks: [[1, 2], [3, 4], [5, 6]] } }, src, dst)).toThrow(/TCP options need/);
    expect(tcpChecksumOk(seg, src, dst)).toBe(true);
    expect(tcpChecksumOk(seg, src, parseIP('192.0.2.3'))).toBe(false);
  });
  it('recognises NOP,NOP,TIMESTAMP-only options', () => {
    const seg = encodeTcp({ srcPort: 1, dstPort: 2, seq: 0, ack: 0, flags: TCP_ACK, window: 1, options: { tsVal: 1, tsEcr: 2 } }, src, dst);
    const h = decodeTcp(seg, 0, seg.length) as Exclude<ReturnType<typeof decodeTcp>, PacketError>;
    expect(decodeTcpOptions(seg, h).tsOnlyNopNop).toBe(true);
  });
  it('leaves the timestamps alone when asked not to read them, and reads the rest', () => {
    const full = encodeTcp({ srcPort: 1, dstPort: 2, seq: 0, ack: 0, flags: TCP_SYN, window: 1, options: { mss: 1460, tsVal: 0xfffffff0, tsEcr: 2, wscale: 7 } }, src, dst);
    const h = decodeTcp(full, 0, full.length) as Exclude<ReturnType<typeof decodeTcp>, PacketError>;
    expect(decodeTcpOptions(full, h, {}, false)).toEqual({ tsOnlyNopNop: false, mss: 1460, wscale: 7 });
    expect(decodeTcpOptions(full, h, {}, true)).toMatchObject({ mss: 1460, wscale: 7, tsVal: 0xfffffff0, tsEcr: 2 });
    const tsOnly = encodeTcp({ srcPort: 1, dstPort: 2, seq: 0, ack: 0, flags: TCP_ACK, window: 1, options: { tsVal: 1, tsEcr: 2 } }, src, dst);
    const t = decodeTcp(tsOnly, 0, tsOnly.length) as Exclude<ReturnType<typeof decodeTcp>, PacketError>;
    expect(decodeTcpOptions(tsOnly, t, {}, false)).toEqual({ tsOnlyNopNop: true });
  });
  it('computes the v6 pseudo-header checksum', () => {
    const s6 = parseIP('2001:db8::1');
    const d6 = parseIP('2001:db8::2');
    const seg = encodeTcp({ srcPort: 9000, dstPort: 1, seq: 1, ack: 2, flags: TCP_PSH | TCP_ACK, window: 100, payload: new Uint8Array(9) }, s6, d6);
    expect(tcpChecksumOk(seg, s6, d6)).toBe(true);
    expect(tcpChecksum(seg, s6, d6)).toBe((seg[16]! << 8) | seg[17]!);
    const pkt = encodeIPv6({ src: s6, dst: d6, nextHeader: 6 }, seg);
    const ip = decodeIp(pkt);
    if (isPacketError(ip)) throw new Error(ip.message);
    expect(ip).toMatchObject({ version: 6, protocol: 6, payloadOffset: 40, payloadLength: seg.length });
  });
  it('decodes a whole IPv4 packet', () => {
    const seg = encodeTcp({ srcPort: 9000, dstPort: 40000, seq: 5, ack: 6, flags: TCP_ACK, window: 10 }, src, dst);
    const pkt = encodeIPv4({ src, dst, protocol: 6, id: 77 }, seg);
    const ip = decodeIp(pkt);
    if (isPacketError(ip)) throw new Error(ip.message);
    expect(ipv4ChecksumOk(pkt)).toBe(true);
    expect(ip).toMatchObject({ version: 4, protocol: 6, id: 77, headerLength: 20, payloadLength: 20 });
    expect(flagsToString(TCP_PSH | TCP_ACK)).toBe('PSH|ACK');
  });
  it('returns typed errors for truncated or malformed input, never throws', () => {
    const seg = encodeTcp({ srcPort: 1, dstPort: 2, seq: 0, ack: 0, flags: TCP_ACK, window: 1, options: { mss: 1 } }, src, dst);
    expect(decodeTcp(seg, 0, 10)).toBeInstanceOf(PacketError);
    expect((decodeTcp(seg, 0, 21) as PacketError).code).toBe('TRUNCATED');
    const bad = Uint8Array.from(seg);
    bad[12] = 0x20; // data offset 8 bytes
    expect((decodeTcp(bad, 0, bad.length) as PacketError).code).toBe('BAD_HEADER');
    expect((decodeIp(Uint8Array.of(0x75)) as PacketError).code).toBe('BAD_VERSION');
    expect((decodeIp(Uint8Array.of(0x45, 0, 0)) as PacketError).code).toBe('TRUNCATED');
    expect((decodeIp(new Uint8Array(0)) as PacketError).code).toBe('TRUNCATED');
    // random garbage: only values, never exceptions
    for (let i = 0; i < 2000; i++) {
      const g = Uint8Array.from({ length: (i * 7) % 90 }, () => Math.floor(Math.random() * 256));
      const ip = decodeIp(g);
      if (!isPacketError(ip)) decodeTcp(g, ip.payloadOffset, ip.payloadOffset + ip.payloadLength);
    }
  });
});
