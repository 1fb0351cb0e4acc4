/**
 * The output thread (offload.ts) as a user meets it: `explain BIG.pcap -o json` through a pipe, to
 * a file, into `head`, and interrupted while its reader reads nothing. Runs the built CLI (a
 * worker thread loads built modules).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { PcapWriter } from '../capture/writer.js';
import { synthFlow } from '../conntrack/synth.js';

const dir = mkdtempSync(`${tmpdir()}/ctp-offload-`);
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const cli = new URL('../../dist/cli/main.js', import.meta.url).pathname;

/** A capture over the size that gets an output thread (4 MB): 1500 flows, some with an out-of-window segment (IGNORE lines, written whole). */
function bigCapture(): string {
  const packets = Array.from({ length: 1500 }, (_, i) =>
    synthFlow({ client: `192.0.2.${1 + (i % 250)}`, server: '198.51.100.2', clientPort: 20000 + i, serverPort: 9000, clientIsn: i * 7919, serverIsn: 4294960000 + i, segments: 12, segmentBytes: 1000, ...(i % 7 === 0 ? { forgedOffset: 100000 } : {}), start: 1000 + i * 0.01 }),
  ).flat();
  packets.sort((a, b) => a.ts - b.ts);
  const path = `${dir}/big.pcap`;
  writeFileSync(path, PcapWriter.toBuffer(packets, { linkType: 101 }));
  return path;
}
const capture = bigCapture();

describe('explain -o json through the output thread', () => {
  it('writes the very bytes the main thread writes, to a pipe and to a file', () => {
    expect(statSync(capture).size).toBeGreaterThan(4 << 20);
    // from standard input: no output thread (what the main thread writes itself)
    const plain = spawnSync('sh', ['-c', `node ${cli} explain - --kernel 6.18 -o json < ${capture}`], { maxBuffer: 1 << 30 });
    const piped = spawnSync('node', [cli, 'explain', capture, '--kernel', '6.18', '-o', 'json'], { maxBuffer: 1 << 30 });
    spawnSync('sh', ['-c', `node ${cli} explain ${capture} --kernel 6.18 -o json > ${dir}/out.json`]);
    const body = (b: Buffer) => b.subarray(b.indexOf(10) + 1); // the header names the file
    expect(plain.status).toBe(1); // some INVALID
    expect(piped.status).toBe(1);
    const lines = body(plain.stdout).toString().split('\n');
    expect(lines.length).toBeGreaterThan(40000);
    expect(lines.filter((l) => l.includes('"verdict":"IGNORE"')).length).toBeGreaterThan(100);
    expect(body(piped.stdout).equals(body(plain.stdout))).toBe(true);
    expect(body(readFileSync(`${dir}/out.json`)).equals(body(plain.stdout))).toBe(true);
  });

  it('stops quietly when its reader goes away, and on Ctrl-C while its reader reads nothing', async () => {
    const head = spawnSync('bash', ['-c', `set -o pipefail; node ${cli} explain ${capture} --kernel 6.18 -o json | head -c 1000 > /dev/null`], { timeout: 20000 });
    expect(head.status).toBe(0);
    // a reader that never reads: the thread waits on a full pipe, and exit must not wait for it
    const child = spawn('node', [cli, 'explain', capture, '--kernel', '6.18', '-o', 'json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.pause();
    await new Promise((r) => setTimeout(r, 1500));
    const t0 = Date.now();
    child.kill('SIGINT');
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    expect(code).toBe(130);
    expect(Date.now() - t0).toBeLessThan(3000);
  });
});
