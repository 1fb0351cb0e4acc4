/**
 * Real captures from the field, made in a namespace: `tcpdump -i nflog:N` (an nft `log group`
 * rule, as iptables users capture) piped straight into `ctprobe explain -`, and the same capture
 * gzip-compressed on its way to a file.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { CLI, hasTool, isRoot, sh, uniqueName } from './netns.js';

const ready = isRoot && hasTool('tcpdump') && hasTool('nft') && hasTool('nc') && hasTool('gzip');
const made: string[] = [];
const dir = mkdtempSync(`${tmpdir()}/ctp-field-`);
afterAll(() => {
  made.forEach((n) => sh(`ip netns del ${n}`, true));
  rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!ready)('real NFLOG captures', () => {
  it('tcpdump -i nflog:5 -U -w - | ctprobe explain -: every logged TCP packet explained; and from a .pcap.gz', async () => {
    const n = uniqueName('ctp-t-nfl-');
    sh(`ip netns add ${n} && ip -n ${n} link set lo up`);
    made.push(n);
    sh(`ip netns exec ${n} nft 'add table inet t; add chain inet t o { type filter hook output priority 0; policy accept; }; add rule inet t o tcp dport 7402 log group 5; add rule inet t o tcp sport 7402 log group 5'`);
    const srv = spawn('ip', ['netns', 'exec', n, 'nc', '-l', '127.0.0.1', '7402'], { stdio: 'ignore' });
    // one tcpdump, its output both explained from stdin and kept gzip-compressed
    const pipe = spawn('ip', ['netns', 'exec', n, 'bash', '-c', `timeout -s INT 4 tcpdump -i nflog:5 -U -w - 2>/dev/null | tee >(gzip > ${dir}/nflog.pcap.gz) | node ${CLI} explain - --kernel 6.18 -o json`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    pipe.stdout.on('data', (c: Buffer) => (out += c.toString()));
    pipe.stderr.on('data', (c: Buffer) => (err += c.toString()));
    await sleep(1500);
    sh(`ip netns exec ${n} sh -c 'echo hello | nc -N 127.0.0.1 7402'`);
    const code = await new Promise<number | null>((r) => pipe.on('close', r));
    srv.kill('SIGKILL');
    expect(code, err).toBe(0);
    const lines = out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const summary = lines.at(-1)!;
    expect(summary).toMatchObject({ type: 'summary', skipped: 0, invalid: 0 });
    expect(summary.tcp).toBeGreaterThanOrEqual(7); // SYN, SYN/ACK, ACK, data, ACK, FINs…
    expect(lines.filter((l) => l.type === 'packet').map((l) => l.verdict)).not.toContain('INVALID');
    // the gzip of the tee'd copy may finish writing after the pipeline's last process
    let gz = spawnSync(process.execPath, [CLI, 'explain', `${dir}/nflog.pcap.gz`, '--kernel', '6.18', '-o', 'json'], { encoding: 'utf8' });
    for (let i = 0; i < 10 && gz.status !== 0; i++) {
      await sleep(300);
      gz = spawnSync(process.execPath, [CLI, 'explain', `${dir}/nflog.pcap.gz`, '--kernel', '6.18', '-o', 'json'], { encoding: 'utf8' });
    }
    expect(gz.status, gz.stderr).toBe(0);
    expect(JSON.parse(gz.stdout.trim().split('\n').at(-1)!)).toMatchObject({ type: 'summary', tcp: summary.tcp, compression: 'gzip' });
  });
});
