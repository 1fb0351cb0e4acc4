import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { PcapWriter } from '../capture/writer.js';
import { explainCapture, parseFlowFilter, type ExplainedPacket } from './explain.js';
import { profileFromFlag } from './profile.js';
import { synthFlow, tcpPacket, type SynthFlow } from './synth.js';

const dir = mkdtempSync(`${tmpdir()}/ctp-explain-`);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function pcap(name: string, packets: Array<{ ts: number; data: Uint8Array }>): string {
  const path = `${dir}/${name}.pcap`;
  writeFileSync(path, PcapWriter.toBuffer(packets, { linkType: 101 }));
  return path;
}

const base: SynthFlow = { client: '192.0.2.2', server: '198.51.100.2', clientPort: 40000, serverPort: 9000, clientIsn: 1000, serverIsn: 4294967000, segments: 3, start: 1000 };

async function run(path: string, kernel: string, extra: Partial<Parameters<typeof explainCapture>[1]> = {}) {
  const packets: Array<Pick<ExplainedPacket, 'index' | 'flags' | 'natMatchedTo'> & { verdict: string; reason: string | null; state: string }> = [];
  const summary = await explainCapture(path, {
    profile: profileFromFlag(kernel),
    onPacket: (p) => packets.push({ index: p.index, flags: p.flags, natMatchedTo: p.natMatchedTo, verdict: p.decision.verdict, reason: p.decision.reason, state: p.decision.stateAfter }),
    ...extra,
  });
  return { summary, packets };
}

describe('explain', () => {
  it('accepts a normal flow whose sequence numbers wrap, ending in TIME_WAIT', async () => {
    const { summary, packets } = await run(pcap('clean', synthFlow(base)), '6.18');
    expect(summary.invalid).toBe(0);
    expect(summary.ignore).toBe(0);
    expect(packets.every((p) => p.verdict === 'ACCEPT')).toBe(true);
    expect(packets.at(-1)!.state).toBe('TIME_WAIT');
    expect(summary.flows).toHaveLength(1);
  });

  it('says what 6.18 and 5.10 do with a segment 100000 beyond the window', async () => {
    const path = pcap('oow', synthFlow({ ...base, forgedOffset: 100000, segments: 0 }));
    const modern = await run(path, '6.18');
    expect(modern.packets[3]!.verdict).toBe('IGNORE');
    expect(modern.packets[3]!.reason).toMatch(/^\d+ bytes more than expected$/);
    expect(modern.packets[4]!.reason).toMatch(/^ignored ACK under lower bound \d+ \(possible overly delayed\)$/);
    const firstInvalid = modern.packets.find((p) => p.verdict === 'INVALID')!;
    expect(firstInvalid.flags).toBe('FIN|ACK'); // the server's FIN acking the client's: delayed failure
    expect(firstInvalid.reason).toMatch(/^ACK is over upper bound \d+ \(ACKed data not seen yet\)$/);

    const old = await run(path, '5.10');
    expect(old.packets[3]!.verdict).toBe('INVALID');
    expect(old.packets[3]!.reason).toBe('SEQ is over the upper bound (over the window of the receiver)');

    const liberal = await run(path, '6.18', { sysctls: { beLiberal: true } });
    expect(liberal.summary.invalid).toBe(0);
  });

  it('matches replies addressed to a masquerade address to their flow', async () => {
    const path = pcap('nat', synthFlow({ ...base, replyTo: '198.51.100.1' }));
    const { summary, packets } = await run(path, '6.18');
    expect(summary.invalid).toBe(0);
    expect(packets[1]!.natMatchedTo).toBe('192.0.2.2:40000 → 198.51.100.2:9000');
    // every server packet (SYN/ACK, 3 data segments, FIN) went to the NAT address and was matched
    expect(packets.filter((p) => p.natMatchedTo).length).toBe(2 + base.segments);
    expect(summary.flows).toHaveLength(1);
    expect(summary.flows.at(0)).toMatchObject({ flow: '192.0.2.2:40000 → 198.51.100.2:9000', reply: '198.51.100.2:9000 → 198.51.100.1:40000', natLearnedFrom: 'handshake' });
  });

  it('counts a packet seen on several interfaces once when asked to', async () => {
    const flow = synthFlow(base);
    const doubled = flow.flatMap((p) => [p, { ts: p.ts + 0.000002, data: p.data }]);
    const path = pcap('dup', doubled);
    const d = await run(path, '6.18', { dedupe: true });
    expect(d.summary.duplicates).toBe(flow.length);
    expect(d.summary.invalid).toBe(0);
    const nd = await run(path, '6.18', { dedupe: false });
    expect(nd.summary.duplicates).toBe(0);
    expect(nd.summary.tcp).toBe(flow.length * 2);
  });

  it('filters the report by endpoint but feeds every packet to the model', async () => {
    const a = synthFlow(base);
    const b = synthFlow({ ...base, clientPort: 40001, serverPort: 7777, start: 2000 });
    const path = pcap('two', [...a, ...b]);
    const all = await run(path, '6.18');
    expect(all.summary.flows).toHaveLength(2);
    const only = await run(path, '6.18', { flow: '7777' });
    expect(only.summary.flows).toHaveLength(1);
    expect(only.packets).toHaveLength(b.length);
    expect(parseFlowFilter('198.51.100.2:9000')('198.51.100.2', 9000)).toBe(true);
    expect(parseFlowFilter('198.51.100.2:9000')('198.51.100.2', 9001)).toBe(false);
    expect(parseFlowFilter(':9000')('x', 9000)).toBe(true);
    expect(parseFlowFilter('[2001:db8::1]:80')('2001:db8::1', 80)).toBe(true);
  });

  it('keeps a NATed flow\'s names after its entry expired, and counts thousands of flows (the ledger grows)', async () => {
    // a NATed flow, then 3000 plain flows an hour later: the first entry expires (its binding is
    // let go at the next sweep) but its summary keeps the NAT tuples it had learned
    const nat = synthFlow({ ...base, replyTo: '198.51.100.1' });
    const later = Array.from({ length: 3000 }, (_, i) =>
      synthFlow({ ...base, client: `192.0.2.${10 + (i % 200)}`, clientPort: 20000 + i, clientIsn: i * 7919, serverIsn: i * 104729, segments: 1, start: 4600 + i * 0.01 }),
    ).flat();
    const { summary } = await run(pcap('expire', [...nat, ...later]), '6.18');
    expect(summary.flows).toHaveLength(3001);
    expect(summary.flows.at(0)).toMatchObject({ flow: '192.0.2.2:40000 → 198.51.100.2:9000', reply: '198.51.100.2:9000 → 198.51.100.1:40000', natLearnedFrom: 'handshake', packets: nat.length });
    const last = summary.flows.at(-1)!;
    expect(last).toMatchObject({ flow: '192.0.2.209:22999 → 198.51.100.2:9000', reply: null, invalid: 0, finalState: 'TIME_WAIT' });
    expect(last.packets).toBe(later.length / 3000);
    expect(summary.flows.toArray().reduce((n, f) => n + f.packets, 0)).toBe(summary.tcp);
  });

  it('one row per conntrack entry: a SYN reopening TIME_WAIT, or a connection after its tuple\'s entry expired, is a new one (summary and text)', async () => {
    const t = (fromClient: boolean, flags: number, seq: number, ack: number, id: number) =>
      tcpPacket(fromClient ? { src: '192.0.2.2', sport: 40000, dst: '198.51.100.2', dport: 9000 } : { src: '198.51.100.2', sport: 9000, dst: '192.0.2.2', dport: 40000 }, { fromClient, flags, seq, ack, id });
    const handshake = (at: number, c: number, s: number) => [
      { ts: at, data: t(true, 0x02, c, 0, 1) },
      { ts: at + 0.001, data: t(false, 0x12, s, c + 1, 2) },
      { ts: at + 0.002, data: t(true, 0x10, c + 1, s + 1, 3) },
    ];
    // closed by FIN (TIME_WAIT, 120 s): a SYN a second later is NF_REPEAT — the kernel kills the entry and makes another
    const fin = [{ ts: 0.003, data: t(true, 0x11, 1001, 5001, 4) }, { ts: 0.004, data: t(false, 0x11, 5001, 1002, 5) }, { ts: 0.005, data: t(true, 0x10, 1002, 5002, 6) }];
    // closed by RST (CLOSE, 10 s): a packet of another flow at 10 s (the replay's sweep runs then, before the entry
    // expires), then a SYN at 12 s — after it expired, before the next sweep
    const rst = [{ ts: 0.003, data: t(true, 0x04, 1001, 0, 4) }, { ts: 10, data: tcpPacket({ src: '192.0.2.3', sport: 1, dst: '198.51.100.3', dport: 2 }, { fromClient: true, flags: 0x02, seq: 1, ack: 0, id: 7 }) }];
    const cli = new URL('../../dist/cli/main.js', import.meta.url).pathname;
    const cases = [
      { name: 'repeat', close: fin, again: 1, rows: [[6, 'TIME_WAIT'], [3, 'ESTABLISHED']], connections: 2 },
      { name: 'expired', close: rst, again: 12, rows: [[4, 'CLOSE'], [3, 'ESTABLISHED']], connections: 3 },
    ];
    for (const { name, close, again, rows, connections } of cases) {
      const path = pcap(`reuse-${name}`, [...handshake(0, 1000, 5000), ...close, ...handshake(again, 900000, 700000)]);
      const { summary, packets } = await run(path, '6.18');
      expect(packets.every((p) => p.verdict === 'ACCEPT')).toBe(true);
      const mine = [...summary.flows].filter((f) => f.flow === '192.0.2.2:40000 → 198.51.100.2:9000');
      expect(mine.map((f) => [f.packets, f.finalState])).toEqual(rows);
      // the text: two connections, the new one's sequence numbers relative to its own first
      const text = spawnSync('node', [cli, 'explain', path, '--kernel', '6.18', '-v'], { encoding: 'utf8' }).stdout;
      expect(text).toMatch(new RegExp(`connections \\(${connections}\\)`));
      expect(text).toMatch(/\+(1|12)\.000000 192\.0\.2\.2:40000 > 198\.51\.100\.2:9000 \[SYN\] seq 0 len 0/);
      expect(text).not.toMatch(/seq 899000/);
      // the default text shows the SYN that reopened the entry (NF_REPEAT), not the new handshake's other packets
      const plain = spawnSync('node', [cli, 'explain', path, '--kernel', '6.18'], { encoding: 'utf8' }).stdout.replace(/\n {4}/g, ' ');
      expect(plain.includes('(NF_REPEAT)')).toBe(name === 'repeat');
      expect(plain).not.toContain(`+${again}.001000`);
    }
    // what the capture missed is the old entry's: the new one's ACKs do not confirm its holes
    const hole = [{ ts: 0.003, data: tcpPacket({ src: '198.51.100.2', sport: 9000, dst: '192.0.2.2', dport: 40000 }, { fromClient: false, flags: 0x18, seq: 5201, ack: 1001, id: 8, payload: 100 }) }];
    for (const again of [1, 12]) {
      // RST: CLOSE, 10 s — a SYN a second later reopens it (NF_REPEAT), 12 s later finds it expired
      const ticks = again === 12 ? [rst[1]!] : [];
      const path = pcap(`reuse-hole-${again}`, [...handshake(0, 1000, 5000), ...hole, { ts: 0.004, data: t(true, 0x04, 1001, 0, 4) }, ...ticks, ...handshake(again, 900000, 700000)]);
      const { summary } = await run(path, '6.18');
      expect([summary.captureMissed, ...[...summary.flows].map((f) => f.captureMissed)]).toEqual([0, 0, ...ticks.map(() => 0), 0]);
    }
  });

  it('the CLI gives one clear line and exit 2 for a malformed or missing file, exit 1 for INVALID', () => {
    const cli = new URL('../../dist/cli/main.js', import.meta.url).pathname;
    const bad = `${dir}/bad.pcap`;
    writeFileSync(bad, Buffer.from('not a capture at all, just text'));
    const r = spawnSync('node', [cli, 'explain', bad], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^ctprobe: .*not a pcap or pcapng file/);
    const missing = spawnSync('node', [cli, 'explain', `${dir}/nope.pcap`], { encoding: 'utf8' });
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/^ctprobe: /);
    const oow = spawnSync('node', [cli, 'explain', `${dir}/oow.pcap`, '--kernel', '6.18', '-o', 'json'], { encoding: 'utf8' });
    expect(oow.status).toBe(1);
    const last = JSON.parse(oow.stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
    expect(last).toMatchObject({ type: 'summary', profile: 'modern-challenge' });
    expect(last.invalid).toBeGreaterThan(0);
    const k = spawnSync('node', [cli, 'explain', bad, '--kernel', 'banana'], { encoding: 'utf8' });
    expect(k.status).toBe(2);
    expect(k.stderr).toMatch(/^ctprobe: --kernel: unknown kernel profile/);
  });

  it('holds the table at nf_conntrack_max through a SYN flood, dropping unassured entries early, and says so', async () => {
    // 3,000 SYNs from distinct ports, a real connection among them (ASSURED once its handshake completes)
    const packets: Array<{ ts: number; data: Uint8Array }> = [];
    for (let i = 0; i < 3000; i++) {
      packets.push({ ts: 1 + i / 1e4, data: tcpPacket({ src: '203.0.113.9', sport: 1024 + i, dst: '198.51.100.2', dport: 9000 }, { fromClient: true, seq: i * 7919, ack: 0, flags: 0x02, id: i & 0xffff }) });
      if (i === 1500) for (const p of synthFlow({ ...base, start: 1 + i / 1e4 })) packets.push(p);
    }
    const path = pcap('flood', packets.sort((a, b) => a.ts - b.ts));
    const { summary, packets: seen } = await run(path, '6.18', { sysctls: { conntrackMax: 500 } });
    expect([summary.conntrackMax, summary.earlyDrops, summary.tableFull, summary.flows.length]).toEqual([500, 3001 - 500, 0, 3001]);
    // the real connection was never dropped: every packet of it accepted, through to TIME_WAIT
    expect(seen.filter((p) => p.verdict !== 'ACCEPT')).toEqual([]);
    expect([...summary.flows].filter((f) => f.packets > 1).map((f) => f.finalState)).toEqual(['TIME_WAIT']);
    // no limit: every SYN keeps its entry
    const free = await run(path, '6.18');
    expect([free.summary.conntrackMax, free.summary.earlyDrops]).toEqual([0, 0]);

    const cli = new URL('../../dist/cli/main.js', import.meta.url).pathname;
    const text = spawnSync('node', [cli, 'explain', path, '--kernel', '6.18', '--conntrack-max', '500'], { encoding: 'utf8' });
    expect(text.stdout.replace(/\n/g, ' ')).toMatch(/conntrack table full \(nf_conntrack_max 500\): 2,501 entries dropped early to make room/);
    const json = spawnSync('node', [cli, 'explain', path, '--kernel', '6.18', '--conntrack-max', '500', '-o', 'json'], { encoding: 'utf8', maxBuffer: 1 << 26 });
    expect(JSON.parse(json.stdout.trim().split('\n').at(-1)!)).toMatchObject({ type: 'summary', conntrackMax: 500, earlyDrops: 2501, tableFull: 0 });
    const bad = spawnSync('node', [cli, 'explain', path, '--conntrack-max', '-5'], { encoding: 'utf8' });
    expect([bad.status, bad.stderr.trim().split('\n').length]).toEqual([2, 1]);
  });
});
