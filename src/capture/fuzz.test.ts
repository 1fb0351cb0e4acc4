/**
 * Fuzz (seeded, bounded) for the capture reader's new paths and the gap detector: random frames
 * on every link type that carries IP (NFLOG TLVs, PPP, C-HDLC, IPoIB, SLL2…), mutated compressed
 * files, random TCP streams through CaptureGaps — only InputError may come out.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { prng } from '../bench/pathological.js';
import { CaptureGaps } from '../conntrack/gaps.js';
import { InputError } from '../errors.js';
import { decodeIp, isPacketError } from '../packet/ip.js';
import { forEachPacket, forEachPacketInBuffer } from './reader.js';
import { PcapWriter } from './writer.js';

const SEED = Number(process.env.CTPROBE_FUZZ_SEED ?? 0x5eed11);
const dir = mkdtempSync(join(tmpdir(), 'ctp-capfuzz-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const LINKTYPES = [0, 1, 9, 12, 14, 50, 101, 104, 108, 113, 228, 229, 239, 242, 276];

function randomFrame(rnd: () => number): Uint8Array {
  const b = new Uint8Array(Math.floor(rnd() * 120));
  for (let i = 0; i < b.length; i++) b[i] = Math.floor(rnd() * 256);
  // often a plausible IP header somewhere, so the decoders get past the first checks
  if (b.length > 30 && rnd() < 0.5) b[Math.floor(rnd() * 24)] = rnd() < 0.5 ? 0x45 : 0x60;
  return b;
}

describe(`capture fuzz (seed 0x${SEED.toString(16)})`, () => {
  it('random frames on every link type: decoded or skipped, IP decode never throws', () => {
    const rnd = prng(SEED);
    let ip = 0;
    for (const lt of LINKTYPES) {
      const pkts = Array.from({ length: 300 }, (_, i) => ({ data: randomFrame(rnd), ts: i, origLen: rnd() < 0.1 ? 100_000 : undefined }));
      const buf = PcapWriter.toBuffer(pkts, { linkType: lt, bigEndian: rnd() < 0.3 });
      forEachPacketInBuffer(buf, (r) => {
        if (r.ipOffset < 0) return;
        expect(r.ipOffset).toBeLessThan(r.capLen);
        const h = decodeIp(r.data, r.ipOffset, r.data.length, Math.max(r.data.length, r.origLen));
        if (!isPacketError(h)) {
          ip++;
          expect(h.payloadOffset + h.payloadLength).toBeLessThanOrEqual(r.data.length);
        }
      });
    }
    expect(ip).toBeGreaterThan(0);
  });

  it('mutated gzip captures: packets or one InputError', async () => {
    const rnd = prng(SEED + 1);
    const base = gzipSync(PcapWriter.toBuffer(Array.from({ length: 50 }, (_, i) => ({ data: randomFrame(rnd), ts: i }))));
    for (let k = 0; k < 40; k++) {
      const m = Buffer.from(base.subarray(0, Math.floor(rnd() * base.length) + 2));
      for (let j = 0; j < 3; j++) {
        const at = 2 + Math.floor(rnd() * (m.length - 2));
        m[at] = m[at]! ^ (1 << Math.floor(rnd() * 8));
      }
      const p = join(dir, `m${k}.pcap.gz`);
      writeFileSync(p, m);
      try {
        await forEachPacket(p, () => undefined);
      } catch (e) {
        expect(e).toBeInstanceOf(InputError);
      }
    }
  });

  it('random TCP streams through the gap detector: no exception, missed bytes never negative', () => {
    const rnd = prng(SEED + 2);
    const g = new CaptureGaps();
    for (let i = 0; i < 20_000; i++) {
      const c = rnd() < 0.5;
      const missed = g.observe(
        { src: c ? 'a' : 'b', dst: c ? 'b' : 'a', srcPort: 1, dstPort: 2, seq: Math.floor(rnd() * 2 ** 32), ack: Math.floor(rnd() * 2 ** 32), flags: Math.floor(rnd() * 256), window: Math.floor(rnd() * 65536), payloadLength: Math.floor(rnd() * 3000), dataOffset: 20, options: rnd() < 0.1 ? { wscale: Math.floor(rnd() * 20) } : {}, hasOptions: false, tsSec: i },
        `k${i % 7}`,
      );
      expect(missed).toBeGreaterThanOrEqual(0);
      expect(g.fills.length).toBeLessThanOrEqual(2 * 64);
    }
  });
});
