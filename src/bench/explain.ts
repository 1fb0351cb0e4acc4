/**
 * explain throughput: a synthetic capture of ≥ 1M packets across many flows (handshake, data,
 * some forged out-of-window segments, FIN close) replayed through the model; packets/s and peak
 * memory, next to `tshark -r FILE -q -z conv,tcp` on the same file when tshark is installed.
 * Targets: ≥ 1M packets/s and ≥ 3× tshark.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, statSync } from 'node:fs';
import { release } from 'node:os';
import { PcapWriter } from '../capture/writer.js';
import { explainCapture } from '../conntrack/explain.js';
import { profileForRelease } from '../conntrack/profile.js';
import { synthFlow } from '../conntrack/synth.js';
import { findTool } from '../host/exec.js';

const FLOWS = 20_000;
const CONCURRENT = 200; // flows interleaved at once, as on a busy host

export async function benchExplain(): Promise<void> {
  const dir = '.bench';
  mkdirSync(dir, { recursive: true });
  const path = `${dir}/explain-1m.pcap`;
  const t0 = performance.now();
  const w = PcapWriter.create(path, { linkType: 101 });
  // Interleave CONCURRENT flows at a time; each has 23 packets (≈ 1.0M packets in all with forged ones).
  for (let g = 0; g < FLOWS; g += CONCURRENT) {
    const flows = [];
    for (let i = g; i < Math.min(FLOWS, g + CONCURRENT); i++) {
      flows.push(
        synthFlow({
          client: `192.0.2.${1 + (i % 250)}`,
          server: `198.51.100.${1 + ((i >> 8) % 250)}`,
          clientPort: 20000 + (i % 40000),
          serverPort: 9000,
          clientIsn: (i * 2654435761) >>> 0,
          serverIsn: (i * 40503 * 65537) >>> 0,
          segments: 24,
          segmentBytes: 64,
          ...(i % 10 === 0 ? { forgedOffset: 100000 } : {}),
          start: g,
        }),
      );
    }
    for (let k = 0; k < 60; k++) for (const f of flows) if (f[k]) w.writePacket(f[k]!.data, f[k]!.ts);
  }
  w.close();
  const packets = w.packets;
  console.log(`generated ${packets} packets in ${FLOWS} flows (${(statSync(path).size / 1e6).toFixed(0)} MB) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  let peak = process.memoryUsage().rss;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  const t1 = performance.now();
  const s = await explainCapture(path, { profile: profileForRelease(release()) });
  const secs = (performance.now() - t1) / 1000;
  clearInterval(sampler);
  peak = Math.max(peak, process.memoryUsage().rss);
  const rate = s.tcp / secs;
  console.log(`explain: ${s.tcp} packets in ${secs.toFixed(2)} s = ${(rate / 1e6).toFixed(2)} M packets/s (target ≥ 1M/s); ${s.invalid} INVALID, ${s.ignore} IGNORE; peak RSS ${(peak / 1e6).toFixed(0)} MB`);

  const tshark = findTool('tshark');
  if (tshark) {
    const t2 = performance.now();
    const r = spawnSync(tshark, ['-r', path, '-q', '-z', 'conv,tcp'], { stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 1 << 30 });
    const ts = (performance.now() - t2) / 1000;
    console.log(`tshark -q -z conv,tcp: ${ts.toFixed(2)} s = ${(packets / ts / 1e6).toFixed(2)} M packets/s${r.status === 0 ? '' : ' (failed)'}; explain is ${(ts / secs).toFixed(1)}× faster (target ≥ 3×)`);
  } else console.log('tshark not installed (apt-get install -y tshark) — no comparison');
  rmSync(path, { force: true });
}
