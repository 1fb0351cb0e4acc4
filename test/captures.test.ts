/**
 * Captures from the field, end to end through `ctprobe explain` as a user runs it: TSO / BIG TCP,
 * NFLOG, records past the snaplen, gzip / zstd, standard input, capture loss, a link type with no
 * IP. Fixtures: test/fixtures/captures.ts (written by the project's capture writer).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { explainCapture, type ExplainedPacket } from '../src/conntrack/explain.js';
import { profileForRelease } from '../src/conntrack/profile.js';
import { captureLoss, hasZstd, writeCaptureFixtures } from './fixtures/captures.js';
import { CLI, ROOT } from './netns.js';

const dir = mkdtempSync(join(tmpdir(), 'ctp-capfix-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const f = writeCaptureFixtures(dir);

async function explain(path: string, kernel = '6.18') {
  const packets: Array<Pick<ExplainedPacket, 'index' | 'len' | 'captureMissed'> & { verdict: string; reason: string | null }> = [];
  const summary = await explainCapture(path, { profile: profileForRelease(kernel), onPacket: (p) => packets.push({ index: p.index, len: p.len, captureMissed: p.captureMissed, verdict: p.decision.verdict, reason: p.decision.reason }) });
  return { summary, packets };
}
const ctp = (args: string[], input?: Buffer) => spawnSync(process.execPath, [CLI, ...args], { input, encoding: 'utf8', timeout: 60_000 });

describe('captures from the field', () => {
  it('TSO / BIG TCP on the sender (IPv4 length 0): every segment modelled with its frame length, nothing INVALID', async () => {
    for (const kernel of ['6.18', '5.10']) {
      const { summary, packets } = await explain(f['tso-v4.pcap']!, kernel);
      expect(summary).toMatchObject({ packets: 11, tcp: 11, skipped: 0, invalid: 0, lengthFromFrame: 3 });
      expect(packets.filter((p) => p.len === 150_000)).toHaveLength(3);
    }
  });

  it('IPv6 BIG TCP: a jumbo option or none, payload length 0', async () => {
    const { summary, packets } = await explain(f['tso-v6.pcap']!);
    expect(summary).toMatchObject({ tcp: 9, skipped: 0, invalid: 0, lengthFromFrame: 1 });
    expect(packets.filter((p) => p.len === 100_000)).toHaveLength(2);
  });

  it('NFLOG (tcpdump -i nflog:N): IPv4 and IPv6 flows read from the payload TLV', async () => {
    const { summary } = await explain(f['nflog.pcap']!);
    expect(summary).toMatchObject({ packets: 16, tcp: 16, skipped: 0, invalid: 0 });
    expect(summary.flows.toArray().map((x) => x.flow)).toEqual(['192.0.2.2:40000 → 198.51.100.2:9000', '[2001:db8:1::2]:40000 → [2001:db8:2::2]:9000']);
  });

  it('records longer than the snaplen are cut and the file read on (the model uses the IP length)', async () => {
    const { summary, packets } = await explain(f['snaplen-overflow.pcap']!);
    expect(summary).toMatchObject({ tcp: 14, invalid: 0, cutToSnaplen: 4 });
    expect(packets.filter((p) => p.len === 1400)).toHaveLength(4);
  });

  it('capture loss: "the capture missed N bytes", and no INVALID blamed on the kernel', async () => {
    const { summary, packets } = await explain(f['capture-loss.pcap']!);
    expect(summary.invalid).toBe(0);
    expect(summary.captureMissed).toBe(captureLoss().missed);
    expect(summary.flows.at(0)!.captureMissed).toBe(10_000);
    expect(packets.filter((p) => p.captureMissed > 0).map((p) => p.captureMissed)).toEqual([6000, 1000, 1000, 1000, 1000]);
    const text = ctp(['explain', f['capture-loss.pcap']!, '--kernel', '6.18']);
    expect(text.status, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/the capture missed 6000 bytes this packet acknowledges/);
    expect(text.stdout).toMatch(/the capture missed 10000 bytes \(ACKed but never captured\)/);
    expect(text.stdout).toMatch(/192.0.2.2:40000 → 198.51.100.2:9000: the capture missed 10000 bytes/);
    expect(text.stdout).not.toMatch(/answers with RST/);
  });

  it('gzip and zstd read directly; - reads standard input (compressed or not); same answer as the plain file', () => {
    const plain = ctp(['explain', f['capture-loss.pcap']!, '--kernel', '6.18', '-o', 'json']);
    const gz = ctp(['explain', f['capture-loss.pcap.gz']!, '--kernel', '6.18', '-o', 'json']);
    const stdin = ctp(['explain', '-', '--kernel', '6.18', '-o', 'json'], readFileSync(f['capture-loss.pcap']!));
    const stdinGz = ctp(['explain', '-', '--kernel', '6.18', '-o', 'json'], readFileSync(f['capture-loss.pcap.gz']!));
    const tail = (r: { stdout: string }) => r.stdout.split('\n').slice(1).join('\n');
    for (const r of [gz, stdin, stdinGz]) {
      expect(r.status, r.stderr).toBe(0);
      expect(tail(r).replace(/"compression":"gzip"/, '"compression":null')).toBe(tail(plain));
    }
    expect(gz.stdout).toMatch(/"compression":"gzip"/);
    if (hasZstd) {
      const zst = ctp(['explain', f['nflog.pcap.zst']!, '-o', 'json']);
      expect(zst.status, zst.stderr).toBe(0);
      expect(zst.stdout).toMatch(/"type":"summary".*"tcp":16.*"compression":"zstd"/);
    }
  });

  it('a link type that carries no IP: one line naming it, exit 2; a corrupt .gz: one line, exit 2', () => {
    const r = ctp(['explain', f['netlink.pcap']!]);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/unsupported link type 253 NETLINK/);
    const bad = readFileSync(f['capture-loss.pcap.gz']!).subarray(0, 200);
    const g = ctp(['explain', '-'], bad);
    expect(g.status).toBe(2);
    expect(g.stderr.trim().split('\n')).toHaveLength(1);
    const empty = ctp(['explain', '-'], Buffer.alloc(0));
    expect(empty.status).toBe(2);
    expect(empty.stderr).toMatch(/standard input is empty/);
  });

  it('invalid-log show --log-file reads a saved kernel log in every form (JSON lines, one per logged packet)', () => {
    const r = ctp(['invalid-log', 'show', '--log-file', join(ROOT, 'test/fixtures/kernel-log-forms.txt'), '-o', 'json']);
    expect(r.status, r.stderr).toBe(0);
    const ev = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(ev).toHaveLength(11);
    for (const e of ev) expect(e).toMatchObject({ type: 'invalid', source: 'nf_ct_proto_6', sport: 9100, ack: 694987304 });
    const only = ctp(['invalid-log', 'show', '--log-file', join(ROOT, 'test/fixtures/kernel-log-prefixes.txt'), '--only-conntrack']);
    expect(only.stdout.trim().split('\n')).toHaveLength(6);
  });
});
