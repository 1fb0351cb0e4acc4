/**
 * One real capture: tcpdump in a network namespace (`-i any` → Linux cooked SLL/SLL2, and the
 * veth itself → Ethernet with nanosecond timestamps) while nc makes a TCP connection; the
 * reader must find that connection's packets. Root and tcpdump/nc only.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findTool, isRoot, runSync } from '../host/exec.js';
import { readCapture, type PacketRecord } from './reader.js';

const tcpdump = ['/usr/bin/tcpdump', '/usr/sbin/tcpdump'].find((p) => {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
});
const canRun = isRoot() && tcpdump !== undefined && findTool('nc') !== null && findTool('ip') !== null;

const id = randomBytes(3).toString('hex');
const nsA = `ctp-t-cap-${id}-a`;
const nsB = `ctp-t-cap-${id}-b`;
const vethA = `ctpc${id}a`;
const vethB = `ctpc${id}b`;
const procs: ChildProcess[] = [];
let dir = '';

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Start tcpdump in nsA and resolve once it is capturing. */
function startTcpdump(args: string[]): Promise<ChildProcess> {
  const p = spawn('ip', ['netns', 'exec', nsA, tcpdump!, '-n', '-U', '--immediate-mode', '-Z', 'root', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  procs.push(p);
  return new Promise((resolve, reject) => {
    let err = '';
    const timer = setTimeout(() => reject(new Error(`tcpdump did not start: ${err}`)), 10_000);
    p.stderr!.setEncoding('utf8').on('data', (d: string) => {
      err += d;
      if (err.includes('listening on')) {
        clearTimeout(timer);
        resolve(p);
      }
    });
    p.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`tcpdump exited (${code}): ${err}`));
    });
  });
}

function stop(p: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (p.exitCode !== null || p.signalCode !== null) return resolve();
    const t = setTimeout(() => p.kill('SIGKILL'), 5000);
    p.on('close', () => {
      clearTimeout(t);
      resolve();
    });
    p.kill('SIGINT');
  });
}

function ports(r: PacketRecord): [number, number] | null {
  if (r.ipOffset < 0 || r.ipVersion !== 4) return null;
  const ip = r.ipOffset;
  if (r.data[ip + 9] !== 6) return null;
  const t = ip + (r.data[ip]! & 0x0f) * 4;
  if (t + 4 > r.data.length) return null;
  return [(r.data[t]! << 8) | r.data[t + 1]!, (r.data[t + 2]! << 8) | r.data[t + 3]!];
}

afterAll(() => {
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  if (canRun) {
    runSync('ip', ['netns', 'del', nsA], { allowFail: true });
    runSync('ip', ['netns', 'del', nsB], { allowFail: true });
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('real capture', () => {
  it.skipIf(!canRun)('reads tcpdump -i any (cooked) and -i veth (Ethernet, ns) captures of a TCP connection', async () => {
    dir = mkdtempSync(join(tmpdir(), 'ctp-t-cap-'));
    runSync('ip', ['netns', 'add', nsA]);
    runSync('ip', ['netns', 'add', nsB]);
    runSync('ip', ['link', 'add', vethA, 'netns', nsA, 'type', 'veth', 'peer', 'name', vethB, 'netns', nsB]);
    runSync('ip', ['-n', nsA, 'addr', 'add', '203.0.113.1/24', 'dev', vethA]);
    runSync('ip', ['-n', nsB, 'addr', 'add', '203.0.113.2/24', 'dev', vethB]);
    for (const [ns, dev] of [
      [nsA, vethA],
      [nsB, vethB],
    ] as const) {
      runSync('ip', ['-n', ns, 'link', 'set', dev, 'up']);
      runSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    }

    const anyFile = join(dir, 'any.pcap');
    const vethFile = join(dir, 'veth.pcap');
    const dumps = await Promise.all([
      startTcpdump(['-i', 'any', '-w', anyFile, 'tcp']),
      startTcpdump(['-i', vethA, '--time-stamp-precision=nano', '-w', vethFile, 'tcp']),
    ]);

    const sport = 41000 + Math.floor(Math.random() * 1000);
    const dport = 5555;
    const server = spawn('ip', ['netns', 'exec', nsB, 'nc', '-l', '203.0.113.2', String(dport)], { stdio: ['pipe', 'pipe', 'ignore'] });
    procs.push(server);
    let got = '';
    server.stdout!.setEncoding('utf8').on('data', (d: string) => (got += d));
    for (let i = 0; i < 50; i++) {
      if (runSync('ss', ['-Hltn', `sport = :${dport}`], { netns: nsB }).stdout.includes(`:${dport}`)) break;
      await sleep(100);
    }
    const t0 = Date.now() / 1000;
    runSync('nc', ['-N', '-w', '5', '-p', String(sport), '203.0.113.2', String(dport)], { netns: nsA, input: 'hello ctprobe\n' });
    for (let i = 0; i < 50 && !got.includes('hello'); i++) await sleep(100);
    expect(got).toContain('hello ctprobe');
    server.stdin!.end();
    await sleep(500); // FINs and ACKs
    await Promise.all([...dumps.map(stop), stop(server)]);

    const check = async (file: string): Promise<PacketRecord[]> => {
      const recs: PacketRecord[] = [];
      for await (const r of readCapture(file, { tsNs: true })) {
        const p = ports(r);
        if (p && ((p[0] === sport && p[1] === dport) || (p[0] === dport && p[1] === sport))) recs.push(r);
      }
      if (recs.length < 5) throw new Error(`${file}: only ${recs.length} packets of the connection (file ${readFileSync(file).length} bytes)`);
      // SYN, SYN-ACK, ACK, data, FINs…
      expect(recs.length).toBeGreaterThanOrEqual(5);
      expect(recs.some((r) => ports(r)![0] === sport)).toBe(true);
      expect(recs.some((r) => ports(r)![0] === dport)).toBe(true);
      for (const r of recs) {
        expect(Math.abs(r.tsSec - t0)).toBeLessThan(30);
        expect(r.capLen).toBe(r.data.length);
      }
      return recs;
    };

    const any = await check(anyFile);
    expect([113, 276]).toContain(any[0]!.linkType);
    expect(any[0]!.ipOffset).toBe(any[0]!.linkType === 276 ? 20 : 16);

    const veth = await check(vethFile);
    expect(veth[0]!.linkType).toBe(1);
    expect(veth[0]!.ipOffset).toBe(14);
    expect(readFileSync(vethFile).readUInt32LE(0)).toBe(0xa1b23c4d); // nanosecond pcap
    // Nanosecond timestamps survive exactly.
    expect(veth.some((r) => r.tsNs! % 1000n !== 0n)).toBe(true);
  });
});
