import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../errors.js';
import { forEachPacket, forEachPacketInBuffer, parseCaptureBuffer, readCapture, type PacketRecord, type ReadOptions } from './reader.js';
import { PcapWriter } from './writer.js';

// ---------------------------------------------------------------------------------------------
// Frame builders

function ipv4Tcp(sport: number, dport: number, payload = 0): Buffer {
  const b = Buffer.alloc(40 + payload);
  b[0] = 0x45;
  b.writeUInt16BE(40 + payload, 2);
  b[8] = 64;
  b[9] = 6;
  Buffer.from([203, 0, 113, 1, 203, 0, 113, 2]).copy(b, 12);
  b.writeUInt16BE(sport, 20);
  b.writeUInt16BE(dport, 22);
  b[32] = 0x50;
  return b;
}

function ipv6Tcp(sport: number, dport: number): Buffer {
  const b = Buffer.alloc(60);
  b[0] = 0x60;
  b.writeUInt16BE(20, 4);
  b[6] = 6;
  b[7] = 64;
  b.writeUInt16BE(sport, 40);
  b.writeUInt16BE(dport, 42);
  return b;
}

function eth(etherType: number, payload: Buffer, vlans: number[] = []): Buffer {
  const parts: Buffer[] = [Buffer.alloc(12, 0xaa)];
  for (const tpid of vlans) {
    const t = Buffer.alloc(4);
    t.writeUInt16BE(tpid, 0);
    t.writeUInt16BE(100, 2);
    parts.push(t);
  }
  const et = Buffer.alloc(2);
  et.writeUInt16BE(etherType, 0);
  return Buffer.concat([...parts, et, payload]);
}

function sll(proto: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(16);
  h.writeUInt16BE(0, 0); // to us
  h.writeUInt16BE(1, 2); // ARPHRD_ETHER
  h.writeUInt16BE(6, 4);
  h.writeUInt16BE(proto, 14);
  return Buffer.concat([h, payload]);
}

function sll2(proto: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(20);
  h.writeUInt16BE(proto, 0);
  h.writeUInt32BE(7, 4); // ifindex
  h.writeUInt16BE(1, 8);
  h[10] = 4; // outgoing
  h[11] = 6;
  return Buffer.concat([h, payload]);
}

function tcpPorts(r: PacketRecord): [number, number] {
  const ip = r.ipOffset;
  const hl = r.ipVersion === 4 ? (r.data[ip]! & 0x0f) * 4 : 40;
  const t = ip + hl;
  return [(r.data[t]! << 8) | r.data[t + 1]!, (r.data[t + 2]! << 8) | r.data[t + 3]!];
}

// ---------------------------------------------------------------------------------------------
// pcapng builder

interface Opt {
  code: number;
  value: Buffer;
}

function u32(v: number, le: boolean): Buffer {
  const b = Buffer.alloc(4);
  if (le) b.writeUInt32LE(v >>> 0);
  else b.writeUInt32BE(v >>> 0);
  return b;
}
function u16(v: number, le: boolean): Buffer {
  const b = Buffer.alloc(2);
  if (le) b.writeUInt16LE(v);
  else b.writeUInt16BE(v);
  return b;
}
function pad4(b: Buffer): Buffer {
  return b.length % 4 ? Buffer.concat([b, Buffer.alloc(4 - (b.length % 4))]) : b;
}
function options(opts: Opt[], le: boolean): Buffer {
  if (opts.length === 0) return Buffer.alloc(0);
  const parts = opts.map((o) => Buffer.concat([u16(o.code, le), u16(o.value.length, le), pad4(o.value)]));
  return Buffer.concat([...parts, Buffer.alloc(4)]);
}
function block(type: number, body: Buffer, le: boolean): Buffer {
  const b = pad4(body);
  const len = 12 + b.length;
  return Buffer.concat([u32(type, le), u32(len, le), b, u32(len, le)]);
}
const ng = {
  shb(le: boolean): Buffer {
    const body = Buffer.concat([u32(0x1a2b3c4d, le), u16(1, le), u16(0, le), Buffer.alloc(8, 0xff)]);
    return block(0x0a0d0d0a, body, le);
  },
  idb(le: boolean, linkType: number, snaplen: number, opts: Opt[] = []): Buffer {
    return block(1, Buffer.concat([u16(linkType, le), u16(0, le), u32(snaplen, le), options(opts, le)]), le);
  },
  epb(le: boolean, ifId: number, units: bigint, data: Buffer, origLen = data.length, capLen = data.length): Buffer {
    const hi = Number(units >> 32n);
    const lo = Number(units & 0xffffffffn);
    return block(6, Buffer.concat([u32(ifId, le), u32(hi, le), u32(lo, le), u32(capLen, le), u32(origLen, le), data]), le);
  },
  spb(le: boolean, data: Buffer, origLen = data.length): Buffer {
    return block(3, Buffer.concat([u32(origLen, le), data]), le);
  },
  tsresol(v: number): Opt {
    return { code: 9, value: Buffer.from([v]) };
  },
};

// ---------------------------------------------------------------------------------------------

const dir = mkdtempSync(join(tmpdir(), 'ctp-cap-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let fileNo = 0;
function tmpFile(buf: Uint8Array): string {
  const p = join(dir, `f${fileNo++}.cap`);
  writeFileSync(p, buf);
  return p;
}

async function readAll(path: string, opts: ReadOptions = {}): Promise<PacketRecord[]> {
  const out: PacketRecord[] = [];
  for await (const r of readCapture(path, opts)) out.push(r);
  return out;
}

function strip(r: PacketRecord): object {
  return { ...r, data: Buffer.from(r.data).toString('hex') };
}

function inputError(fn: () => unknown): InputError {
  try {
    fn();
  } catch (e) {
    if (e instanceof InputError) return e;
    throw e;
  }
  throw new Error('expected an InputError');
}

async function inputErrorAsync(p: Promise<unknown>): Promise<InputError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof InputError) return e;
    throw e;
  }
  throw new Error('expected an InputError');
}

describe('pcap writer → reader round trips', () => {
  for (const nanosecond of [false, true])
    for (const bigEndian of [false, true])
      it(`raw IP, ${nanosecond ? 'ns' : 'µs'}, ${bigEndian ? 'big' : 'little'}-endian`, () => {
        const w = new PcapWriter({ linkType: 101, nanosecond, bigEndian });
        w.writePacket(ipv4Tcp(1234, 80), 1700000000.123456);
        w.writePacket(ipv6Tcp(40000, 443), 1700000000123456789n);
        w.writePacket(Buffer.from([0x00, 0x01]), 5); // not IP
        const recs = [...parseCaptureBuffer(w.toBuffer(), { tsNs: true })];
        expect(recs).toHaveLength(3);
        const [a, b, c] = recs as [PacketRecord, PacketRecord, PacketRecord];
        expect(a).toMatchObject({ index: 0, linkType: 101, ipOffset: 0, ipVersion: 4, capLen: 40, origLen: 40 });
        expect(a.tsSec).toBeCloseTo(1700000000.123456, 6);
        // The float 1700000000.123456 is really …123456001.28 ns.
        expect(a.tsNs).toBe(nanosecond ? 1700000000123456001n : 1700000000123456000n);
        expect(tcpPorts(a)).toEqual([1234, 80]);
        expect(b).toMatchObject({ index: 1, ipOffset: 0, ipVersion: 6 });
        expect(b.tsNs).toBe(nanosecond ? 1700000000123456789n : 1700000000123456000n);
        expect(tcpPorts(b)).toEqual([40000, 443]);
        expect(c).toMatchObject({ ipOffset: -1, ipVersion: 0, tsSec: 5 });
      });

  it('Ethernet with VLAN tags, snaplen truncation, origLen', () => {
    const w = new PcapWriter({ linkType: 1, snaplen: 100 });
    w.writePacket(eth(0x0800, ipv4Tcp(1, 2)), 1);
    w.writePacket(eth(0x86dd, ipv6Tcp(3, 4), [0x8100]), 2);
    w.writePacket(eth(0x0800, ipv4Tcp(5, 6), [0x88a8, 0x8100]), 3);
    w.writePacket(eth(0x0806, Buffer.alloc(28)), 4); // ARP
    w.writePacket(eth(0x0800, ipv4Tcp(7, 8, 200)), 5); // cut to 100
    const recs = [...parseCaptureBuffer(w.toBuffer())];
    expect(recs.map((r) => [r.ipOffset, r.ipVersion])).toEqual([
      [14, 4],
      [18, 6],
      [22, 4],
      [-1, 0],
      [14, 4],
    ]);
    expect(recs.slice(0, 3).map(tcpPorts)).toEqual([
      [1, 2],
      [3, 4],
      [5, 6],
    ]);
    expect(recs[4]).toMatchObject({ capLen: 100, origLen: 254 });
  });

  it('streams to a file and reads it back in small chunks, same as in memory', async () => {
    const path = join(dir, 'stream.pcap');
    const w = PcapWriter.create(path, { linkType: 1, nanosecond: true });
    const n = 3000;
    for (let i = 0; i < n; i++) w.writePacket(eth(0x0800, ipv4Tcp(10000 + (i % 50000), 80, i % 1600)), 1700000000n * 1_000_000_000n + BigInt(i));
    w.close();
    expect(w.packets).toBe(n);
    const mem = [...parseCaptureBuffer(await import('node:fs').then((f) => f.readFileSync(path)), { tsNs: true })];
    expect(mem).toHaveLength(n);
    for (const chunkSize of [64, 1000, 1 << 20]) {
      const recs = await readAll(path, { chunkSize, tsNs: true });
      expect(recs.map(strip)).toEqual(mem.map(strip));
    }
    let seen = 0;
    let ports = 0;
    const count = await forEachPacket(path, (r) => {
      seen++;
      if (tcpPorts(r)[0] === 10000 + r.index) ports++;
    });
    expect([count, seen, ports]).toEqual([n, n, n]);
    // One reused read buffer (transientData), records cut at every chunk boundary, a pause between chunks.
    for (const chunkSize of [64, 1000, 1 << 20]) {
      const got: Array<[number, number, number]> = [];
      let pauses = 0;
      const pause = () => (++pauses % 2 ? new Promise<void>((r) => setTimeout(r, 0)) : null);
      await forEachPacket(path, (r) => void got.push([r.index, tcpPorts(r)[0]!, r.data.length]), { chunkSize, transientData: true, pause });
      expect(got).toEqual(mem.map((r) => [r.index, 10000 + (r.index % 50000), r.data.length]));
      expect(pauses).toBeGreaterThan(0);
    }
    // Where the read is, given to each pause: packets and the file's fraction only grow, and end at all of them.
    const at: Array<[number, number | null]> = [];
    await forEachPacket(path, () => undefined, { chunkSize: 4096, pause: (p) => void at.push([p.packets, p.fraction]) });
    expect(at.length).toBeGreaterThan(2);
    expect(at.every(([k, f], i) => f !== null && f >= 0 && f <= 1 && (i === 0 || (k >= at[i - 1]![0] && f >= at[i - 1]![1]!)))).toBe(true);
    expect(at.at(-1)).toEqual([n, 1]);
    // Early stop.
    expect(await forEachPacket(path, (r) => r.index < 9)).toBe(10);
    let yielded = 0;
    for await (const _r of readCapture(path, { chunkSize: 64 })) if (++yielded === 5) break;
    expect(yielded).toBe(5);
  });

  it('keeps data views valid after later reads (generator, reused record)', async () => {
    const w = new PcapWriter({ linkType: 101 });
    for (let i = 0; i < 200; i++) w.writePacket(ipv4Tcp(i + 1, 80, 100), i);
    const path = tmpFile(w.toBuffer());
    const datas: Uint8Array[] = [];
    for await (const r of readCapture(path, { chunkSize: 256, reuse: true })) datas.push(r.data);
    expect(datas.map((d) => (d[20]! << 8) | d[21]!)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
  });
});

describe('link types', () => {
  it('SLL and SLL2 (tcpdump -i any)', () => {
    for (const [lt, mk, hdr] of [
      [113, sll, 16],
      [276, sll2, 20],
    ] as const) {
      const w = new PcapWriter({ linkType: lt });
      w.writePacket(mk(0x0800, ipv4Tcp(1000, 2000)), 1);
      w.writePacket(mk(0x86dd, ipv6Tcp(3000, 4000)), 2);
      w.writePacket(mk(0x8100, Buffer.concat([Buffer.from([0, 5, 0x08, 0x00]), ipv4Tcp(5, 6)])), 3);
      w.writePacket(mk(0x0806, Buffer.alloc(28)), 4);
      w.writePacket(mk(0x0800, Buffer.alloc(0)), 5); // header only
      const recs = [...parseCaptureBuffer(w.toBuffer())];
      expect(recs.map((r) => [r.linkType, r.ipOffset, r.ipVersion])).toEqual([
        [lt, hdr, 4],
        [lt, hdr, 6],
        [lt, hdr + 4, 4],
        [lt, -1, 0],
        [lt, -1, 0],
      ]);
      expect(tcpPorts(recs[0]!)).toEqual([1000, 2000]);
      expect(tcpPorts(recs[2]!)).toEqual([5, 6]);
    }
  });

  it('raw IP variants, IPv4/IPv6 link types and loopback', () => {
    const cases: [number, Buffer, number, number][] = [
      [12, ipv4Tcp(1, 2), 0, 4],
      [14, ipv6Tcp(1, 2), 0, 6],
      [228, ipv4Tcp(1, 2), 0, 4],
      [228, ipv6Tcp(1, 2), -1, 0],
      [229, ipv6Tcp(1, 2), 0, 6],
      [101, Buffer.from([0x15, 0]), -1, 0],
      [0, Buffer.concat([Buffer.from([2, 0, 0, 0]), ipv4Tcp(1, 2)]), 4, 4], // little-endian AF_INET
      [0, Buffer.concat([Buffer.from([0, 0, 0, 30]), ipv6Tcp(1, 2)]), 4, 6], // big-endian AF_INET6 (Darwin)
      [0, Buffer.concat([Buffer.from([10, 0, 0, 0]), ipv6Tcp(1, 2)]), 4, 6], // Linux AF_INET6
      [0, Buffer.concat([Buffer.from([7, 0, 0, 0]), ipv4Tcp(1, 2)]), -1, 0],
      [108, Buffer.concat([Buffer.from([0, 0, 0, 2]), ipv4Tcp(1, 2)]), 4, 4],
    ];
    for (const [lt, frame, off, ver] of cases) {
      const w = new PcapWriter({ linkType: lt });
      w.writePacket(frame, 0);
      const [r] = [...parseCaptureBuffer(w.toBuffer())];
      expect([lt, r!.ipOffset, r!.ipVersion]).toEqual([lt, off, ver]);
    }
  });

  it('unknown link type: InputError at the packet, or passed through on request', () => {
    const w = new PcapWriter({ linkType: 147 });
    w.writePacket(ipv4Tcp(1, 2), 0);
    const buf = w.toBuffer();
    const e = inputError(() => [...parseCaptureBuffer(buf)]);
    expect(e.message).toMatch(/^byte 24: unsupported link type 147 USER0: it carries no IP ctprobe can read/);
    const [r] = [...parseCaptureBuffer(buf, { unknownLinkType: 'pass' })];
    expect(r).toMatchObject({ linkType: 147, ipOffset: -1, ipVersion: 0 });
    // A header alone with an unknown link type is fine.
    expect([...parseCaptureBuffer(new PcapWriter({ linkType: 147 }).toBuffer())]).toEqual([]);
  });
});

describe('pcapng', () => {
  function twoInterfaces(le: boolean): Buffer {
    return Buffer.concat([
      ng.shb(le),
      ng.idb(le, 1, 262144, [ng.tsresol(6)]), // µs, Ethernet
      ng.idb(le, 276, 65535, [{ code: 2, value: Buffer.from('any') }, ng.tsresol(9)]), // ns, SLL2
      block(0x0badcafe, Buffer.alloc(20, 1), le), // unknown block: skipped
      ng.epb(le, 0, 1700000000_123456n, eth(0x0800, ipv4Tcp(1111, 80))),
      block(5, Buffer.alloc(16), le), // ISB: skipped
      ng.epb(le, 1, 1700000000_987654321n, sll2(0x86dd, ipv6Tcp(2222, 443)), 1000),
      ng.spb(le, eth(0x0800, ipv4Tcp(3333, 22))),
    ]);
  }

  for (const le of [true, false])
    it(`two interfaces, different tsresol, ${le ? 'little' : 'big'}-endian section`, () => {
      const recs = [...parseCaptureBuffer(twoInterfaces(le), { tsNs: true })];
      expect(recs.map((r) => [r.index, r.ifId, r.linkType, r.ipOffset, r.ipVersion, r.capLen, r.origLen])).toEqual([
        [0, 0, 1, 14, 4, 54, 54],
        [1, 1, 276, 20, 6, 80, 1000],
        [2, 0, 1, 14, 4, 54, 54],
      ]);
      expect(recs[0]!.tsNs).toBe(1700000000_123456000n);
      expect(recs[0]!.tsSec).toBeCloseTo(1700000000.123456, 6);
      expect(recs[1]!.tsNs).toBe(1700000000_987654321n);
      expect(recs[1]!.tsSec).toBeCloseTo(1700000000.987654, 5);
      expect(recs[2]!.tsSec).toBe(0); // SPB: no timestamp
      expect(recs.map(tcpPorts)).toEqual([
        [1111, 80],
        [2222, 443],
        [3333, 22],
      ]);
    });

  it('multiple sections with different byte orders reset the interfaces', () => {
    const buf = Buffer.concat([
      ng.shb(true),
      ng.idb(true, 101, 0),
      ng.epb(true, 0, 1_000_000n, ipv4Tcp(1, 2)),
      ng.shb(false),
      ng.idb(false, 1, 0, [ng.tsresol(0x80 | 10)]), // 2^-10 s
      ng.epb(false, 0, 2048n, eth(0x0800, ipv4Tcp(3, 4))),
      ng.shb(true),
      ng.epb(true, 0, 1n, ipv4Tcp(5, 6)), // no IDB in this section
    ]);
    const recs: PacketRecord[] = [];
    const e = inputError(() => {
      for (const r of parseCaptureBuffer(buf, { tsNs: true })) recs.push(r);
    });
    expect(recs.map((r) => [r.linkType, r.tsSec, r.tsNs])).toEqual([
      [101, 1, 1_000_000_000n],
      [1, 2, 2_000_000_000n],
    ]);
    const off = buf.length - (12 + 20 + 40); // the last EPB
    expect(e.where).toBe(`byte ${off}`);
    expect(e.message).toMatch(/interface 0 but the section has 0 interface/);
  });

  it('if_tsoffset and streaming across chunk boundaries', async () => {
    const off = Buffer.alloc(8);
    off.writeBigInt64LE(1000n);
    const parts = [ng.shb(true), ng.idb(true, 101, 0, [{ code: 14, value: off }])];
    for (let i = 0; i < 300; i++) parts.push(ng.epb(true, 0, BigInt(i) * 1_000_000n, ipv4Tcp(i, 1, i * 7)));
    const buf = Buffer.concat(parts);
    const mem = [...parseCaptureBuffer(buf, { tsNs: true })];
    expect(mem[5]!.tsSec).toBe(1005);
    expect(mem[5]!.tsNs).toBe(1005_000_000_000n);
    const path = tmpFile(buf);
    for (const chunkSize of [64, 333, 4096]) expect((await readAll(path, { chunkSize, tsNs: true })).map(strip)).toEqual(mem.map(strip));
  });

  it('a section header only yields nothing', async () => {
    expect([...parseCaptureBuffer(ng.shb(false))]).toEqual([]);
    expect(await readAll(tmpFile(ng.shb(true)))).toEqual([]);
  });
});

describe('malformed input', () => {
  const pcapHdr = new PcapWriter({ linkType: 1, snaplen: 1514 }).toBuffer();
  function rec(capLen: number, origLen = capLen): Buffer {
    const b = Buffer.alloc(16);
    b.writeUInt32LE(capLen, 8);
    b.writeUInt32LE(origLen, 12);
    return b;
  }
  const good = Buffer.concat([rec(54), eth(0x0800, ipv4Tcp(1, 2))]);

  const cases: [string, Buffer, string, string | RegExp][] = [
    ['bad magic', Buffer.from('\x7fELF-and-more-bytes-here', 'latin1'), 'byte 0', 'not a pcap or pcapng file (magic 0x7f454c46)'],
    ['tiny file', Buffer.from([0xd4, 0xc3]), 'byte 0', 'not a pcap or pcapng file (only 2 bytes)'],
    ['truncated pcap header', pcapHdr.subarray(0, 10), 'byte 0', 'truncated pcap file header (need 24 bytes, 10 left)'],
    ['truncated record header', Buffer.concat([pcapHdr, good, rec(54).subarray(0, 5)]), 'byte 94', 'truncated packet record header (need 16 bytes, 5 left)'],
    ['truncated packet record', Buffer.concat([pcapHdr, good, rec(1514), Buffer.alloc(20)]), 'byte 94', 'truncated packet record (need 1514 bytes, 20 left)'],
    ['capLen no capture can have', Buffer.concat([pcapHdr, good, rec(0x7fffffff), Buffer.alloc(1515)]), 'byte 94', /captured length 2147483647 is larger than any capture's/],
    ['pcapng bad byte-order magic', Buffer.concat([ng.shb(true).fill(0x77, 8, 12)]), 'byte 0', /bad byte-order magic 0x77777777/],
    [
      'pcapng block length not a multiple of 4',
      (() => {
        const b = Buffer.concat([ng.shb(true), ng.idb(true, 1, 0)]);
        b.writeUInt32LE(22, 28 + 4);
        return b;
      })(),
      'byte 28',
      'block length 22 is not a multiple of 4',
    ],
    [
      'pcapng block length too small',
      (() => {
        const b = Buffer.concat([ng.shb(true), ng.idb(true, 1, 0)]);
        b.writeUInt32LE(8, 28 + 4);
        return b;
      })(),
      'byte 28',
      'block length 8 is too small',
    ],
    ['pcapng truncated block', Buffer.concat([ng.shb(true), ng.idb(true, 1, 0), ng.epb(true, 0, 0n, eth(0x0800, ipv4Tcp(1, 2))).subarray(0, 40)]), 'byte 48', 'truncated block (need 88 bytes, 40 left)'],
    ['pcapng truncated block header', Buffer.concat([ng.shb(true), Buffer.alloc(6)]), 'byte 28', 'truncated block header (need 12 bytes, 6 left)'],
    [
      'pcapng trailing length mismatch',
      (() => {
        const b = Buffer.concat([ng.shb(true), ng.idb(true, 1, 0)]);
        b.writeUInt32LE(24, b.length - 4);
        return b;
      })(),
      'byte 28',
      'block trailing length 24 does not match leading length 20',
    ],
    [
      'pcapng capLen > block',
      Buffer.concat([ng.shb(true), ng.idb(true, 1, 0), ng.epb(true, 0, 0n, eth(0x0800, ipv4Tcp(1, 2)), 54, 100)]),
      'byte 48',
      'truncated packet (captured length 100, block holds 56 bytes)',
    ],
    ['pcapng unknown link type', Buffer.concat([ng.shb(true), ng.idb(true, 147, 0), ng.epb(true, 0, 0n, ipv4Tcp(1, 2))]), 'byte 48', /unsupported link type 147 USER0 \(interface 0\)/],
    [
      'pcapng option overrun',
      (() => {
        const b = Buffer.concat([ng.shb(true), ng.idb(true, 1, 0, [ng.tsresol(9)])]);
        b.writeUInt16LE(200, 28 + 16 + 2);
        return b;
      })(),
      'byte 28',
      'option 9 (length 200) overruns its block',
    ],
  ];

  for (const [name, buf, where, msg] of cases)
    it(name, async () => {
      const e = inputError(() => [...parseCaptureBuffer(buf)]);
      expect(e.where).toBe(where);
      if (typeof msg === 'string') expect(e.message).toBe(`${where}: ${msg}`);
      else expect(e.message).toMatch(msg);
      // The streaming reader says the same, whatever the chunking.
      const path = tmpFile(buf);
      for (const chunkSize of [64, 1 << 20]) {
        const s = await inputErrorAsync(readAll(path, { chunkSize }));
        expect(s.message).toBe(e.message);
        const f = await inputErrorAsync(forEachPacket(path, () => undefined, { chunkSize }));
        expect(f.message).toBe(e.message);
      }
    });

  it('a header-only file yields no packets; an empty file is an InputError', async () => {
    expect([...parseCaptureBuffer(new Uint8Array(0))]).toEqual([]);
    expect([...parseCaptureBuffer(pcapHdr)]).toEqual([]);
    await expect(readAll(tmpFile(Buffer.alloc(0)))).rejects.toThrow(/the file is empty/);
    expect(await readAll(tmpFile(pcapHdr))).toEqual([]);
    expect(await forEachPacket(tmpFile(pcapHdr), () => undefined)).toBe(0);
  });

  it('a missing file is an InputError', async () => {
    const e = await inputErrorAsync(readAll(join(dir, 'nope.pcap')));
    expect(e.message).toMatch(/cannot open capture/);
  });

  it('fuzz: truncations and bit flips only ever raise InputError', async () => {
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    const w = new PcapWriter({ linkType: 1, snaplen: 2000 });
    for (let i = 0; i < 30; i++) w.writePacket(eth(0x0800, ipv4Tcp(i, 80, rnd(200)), rnd(3) ? [] : [0x8100]), i);
    const ngParts = [ng.shb(true), ng.idb(true, 1, 0, [ng.tsresol(9)]), ng.idb(true, 276, 0)];
    for (let i = 0; i < 30; i++)
      ngParts.push(i % 5 === 4 ? ng.spb(true, eth(0x0800, ipv4Tcp(i, 1))) : ng.epb(true, i % 2, BigInt(i), i % 2 ? sll2(0x0800, ipv4Tcp(i, 1, rnd(100))) : eth(0x86dd, ipv6Tcp(i, 2))));
    ngParts.push(ng.shb(false), ng.idb(false, 113, 0), ng.epb(false, 0, 5n, sll(0x0800, ipv4Tcp(9, 9))));
    const seeds = [w.toBuffer(), Buffer.concat(ngParts)];
    let errors = 0;
    let runs = 0;
    for (const base of seeds)
      for (let iter = 0; iter < 1500; iter++) {
        let buf = Buffer.from(base);
        const mode = rnd(3);
        if (mode === 0 || mode === 2) buf = buf.subarray(0, rnd(buf.length + 1));
        if (mode >= 1) for (let k = 1 + rnd(4); k > 0 && buf.length > 0; k--) buf[rnd(buf.length)]! ^= 1 << rnd(8);
        runs++;
        try {
          forEachPacketInBuffer(buf, (r) => {
            // touch everything a consumer would
            if (r.data.length !== r.capLen || r.ipOffset >= r.capLen) throw new Error('inconsistent record');
          });
        } catch (e) {
          if (!(e instanceof InputError)) throw new Error(`iteration ${iter}: ${(e as Error).stack}`);
          expect(e.where).toMatch(/^byte \d+$/);
          errors++;
        }
        if (iter % 100 === 0) {
          // and through the streaming path with tiny chunks
          try {
            await forEachPacket(tmpFile(buf), () => undefined, { chunkSize: 64 });
          } catch (e) {
            if (!(e instanceof InputError)) throw e;
          }
        }
      }
    expect(runs).toBe(3000);
    expect(errors).toBeGreaterThan(100);
  });
});

describe('compressed captures and snaplen', () => {
  it('reads .pcapng.gz and .pcap.gz by their magic, in small chunks, and counts records cut to the snaplen', async () => {
    const { gzipSync } = await import('node:zlib');
    const ngFile = Buffer.concat([ng.shb(true), ng.idb(true, 1, 60), ng.epb(true, 0, 1n, eth(0x0800, ipv4Tcp(1, 2, 40))), ng.epb(true, 0, 2n, eth(0x0800, ipv4Tcp(3, 4)))]);
    const stats = { cutToSnaplen: 0, compression: null as 'gzip' | 'zstd' | null };
    const recs = await readAll(tmpFile(gzipSync(ngFile)), { chunkSize: 64, stats });
    expect(recs.map(tcpPorts)).toEqual([
      [1, 2],
      [3, 4],
    ]);
    expect(recs[0]!.capLen).toBe(60);
    expect(stats).toEqual({ cutToSnaplen: 1, compression: 'gzip' });
    // a compressed file's progress: how much of the compressed file was taken, all of it at the end
    const fractions: Array<number | null> = [];
    await forEachPacket(tmpFile(gzipSync(ngFile)), () => undefined, { chunkSize: 64, pause: (p) => void fractions.push(p.fraction) });
    expect(fractions.at(-1)).toBe(1);
    expect(fractions.every((f) => f !== null && f >= 0 && f <= 1)).toBe(true);
    const e = await inputErrorAsync(readAll(tmpFile(gzipSync(ngFile).subarray(0, 40))));
    expect(e.message).toMatch(/cannot read the gzip-compressed file .*: unexpected end of file|truncated/);
  });
});
