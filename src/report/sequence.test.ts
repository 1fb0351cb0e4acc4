import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { PcapWriter } from '../capture/writer.js';
import { explainCapture, type ExplainSummary } from '../conntrack/explain.js';
import { profileFromFlag } from '../conntrack/profile.js';
import { synthFlow, type SynthFlow } from '../conntrack/synth.js';
import { parseIP } from '../packet/address.js';
import { encodeIPv4 } from '../packet/ip.js';
import { encodeTcp, TCP_RST } from '../packet/tcp.js';
import { ExplainText } from './explain-text.js';
import { FlowTracker, type FlowTrace, type PacketRow } from './flows.js';
import { explainHtml } from './html.js';
import { parseParty, partiesSvg, sequenceSvg } from './sequence.js';

const dir = mkdtempSync(`${tmpdir()}/ctp-seq-`);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const base: SynthFlow = { client: '192.0.2.2', server: '198.51.100.2', replyTo: '198.51.100.1', clientPort: 40000, serverPort: 9000, clientIsn: 1000, serverIsn: 4294967000, segments: 2, forgedOffset: 100000, start: 1000 };

/** The Docker-1090 exchange through a NAT host, ending with the host's own RST to the server. */
function natCapture(withCleanFlow = false): string {
  const packets = synthFlow(base);
  const natAddr = parseIP('198.51.100.1');
  const server = parseIP('198.51.100.2');
  // after the server's FIN (INVALID on 6.18, not de-NATed), the host's TCP answers with RST
  const finAt = packets.length - 1;
  const rst = encodeIPv4({ src: natAddr, dst: server, protocol: 6, id: 0 }, encodeTcp({ srcPort: 40000, dstPort: 9000, seq: 1002, ack: 0, flags: TCP_RST, window: 0 }, natAddr, server));
  packets.splice(finAt, 0, { ts: packets[finAt - 1]!.ts + 0.0001, data: rst });
  // a clean connection whose data segments are accepted: not shown by default, only its FINs and handshake
  if (withCleanFlow) packets.push(...synthFlow({ ...base, clientPort: 40001, forgedOffset: undefined, segments: 5, start: 2000 }));
  const path = `${dir}/nat${withCleanFlow ? '2' : ''}.pcap`;
  writeFileSync(path, PcapWriter.toBuffer(packets, { linkType: 101 }));
  return path;
}

async function replay(path: string, onRow?: (t: ExplainText) => void) {
  const tracker = new FlowTracker();
  const text = new ExplainText({ verbose: false, time: 'relative', only: null });
  const verbose = new ExplainText({ verbose: true, time: 'relative', only: null });
  const lines: string[] = [];
  const all: string[] = [];
  const summary: ExplainSummary = await explainCapture(path, {
    profile: profileFromFlag('6.18'),
    onPacket: (p) => {
      tracker.add(p);
      // one block per packet (its head starts a line with '#', its meaning is indented)
      const shown = text.packet(p);
      if (shown !== null) lines.push(...shown.split(/\n(?=#\d)/));
      all.push(verbose.packet(p)!);
    },
  });
  onRow?.(text);
  return { tracker, summary, text, lines, all };
}

/** Every tag opened is closed in order (a cheap well-formedness check). */
function balanced(xml: string): boolean {
  const stack: string[] = [];
  for (const m of xml.matchAll(/<(\/?)([a-zA-Z][\w-]*)[^>]*?(\/?)>/g)) {
    if (m[3]) continue;
    if (!m[1]) stack.push(m[2]!);
    else if (stack.pop() !== m[2]) return false;
  }
  return stack.length === 0;
}

describe('sequence diagram', () => {
  it('draws one arrow per packet, INVALID in its colour with the kernel’s reason, the host’s RST as a reset', async () => {
    const { tracker, summary } = await replay(natCapture());
    expect(tracker.order).toHaveLength(1); // the host's RST joins the connection it resets
    const flow = tracker.order[0]!;
    expect(flow.nat).toEqual({ addr: '198.51.100.1', port: 40000 });
    const svg = sequenceSvg(flow, { time: 'relative', t0: flow.rows[0]!.tsSec }).s;
    expect(balanced(svg)).toBe(true);
    const groups = [...svg.matchAll(/<g class="pkt (\w+)" data-index="(\d+)" data-verdict="(\w+)">([\s\S]*?)<\/g>/g)];
    expect(groups).toHaveLength(summary.tcp);
    expect(svg.match(/class="arrow"/g)).toHaveLength(summary.tcp);
    const invalid = groups.filter((g) => g[1] === 'invalid');
    expect(invalid.length).toBeGreaterThan(0);
    const notes = (g: string) => [...g.matchAll(/<text class="note"[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]).join(' ');
    for (const g of invalid) {
      expect(g[4]).toContain('stroke="#c00000"');
      expect(notes(g[4]!)).toMatch(/INVALID &quot;ACK is over upper bound \d+ \(ACKed data not seen yet\)&quot;/);
    }
    const ignored = groups.filter((g) => g[1] === 'ignore');
    expect(ignored.length).toBeGreaterThan(0);
    for (const g of ignored) {
      expect(g[4]).toContain('stroke-dasharray');
      expect(notes(g[4]!)).toMatch(/^IGNORE &quot;/);
    }
    const reset = groups.filter((g) => g[1] === 'reset');
    expect(reset).toHaveLength(1);
    expect(notes(reset[0]![4]!)).toMatch(/^RESET by the NAT host: #\d+ was not de-NATed/);
    expect(reset[0]![4]).toMatch(/x1="430"[^>]*x2="678"/); // from the NAT host's column to the server's
    // the INVALID reply stops at the NAT host: it is not de-NATed
    expect(invalid[0]![4]).toMatch(/x1="680"[^>]*x2="440"/);
    // relative sequence numbers on the arrows
    expect(groups[0]![4]).toContain('SYN seq 0 len 0');
    expect(svg).toContain('PSH|ACK seq 100001 ack 1 len 4');
  });

  it('escapes every text it draws', () => {
    const row: PacketRow = { index: 1, tsSec: 1, src: { addr: '2001:db8::1', port: 80 }, dst: { addr: '2001:db8::2', port: 5 }, flags: 'ACK', tcpFlags: 16, seq: 1, ack: 1, len: 0, relSeq: 0, relAck: 0, dir: 'original', fromClient: true, stateBefore: 'ESTABLISHED', stateAfter: 'ESTABLISHED', verdict: 'INVALID', reasonText: '<script>alert("x")</script> & more', reasonForm: -1, reasonArg: 0, logged: true, note: null, secondaryReason: null, natted: false, consequence: 'INVALID: untracked', fromNatHost: false, answers: null, handshake: false, matters: true };
    const flow: FlowTrace = { id: '<b>[2001:db8::1]:80 → [2001:db8::2]:5', client: row.src, server: row.dst, nat: null, rows: [row], omitted: 0, counts: { packets: 1, accept: 0, ignore: 0, invalid: 1, hostResets: 0 }, finalState: 'ESTABLISHED', firstInvalid: null };
    const svg = sequenceSvg(flow, { time: 'epoch', t0: 0 }).s;
    expect(svg).not.toContain('<script');
    expect(svg).not.toContain('<b>');
    expect(svg).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more');
    expect(svg).toContain('[2001:db8::1]:80');
    expect(balanced(svg)).toBe(true);
  });

  it('makes a self-contained page: no scripts, nothing fetched, one diagram per connection', async () => {
    const { tracker, summary } = await replay(natCapture());
    const page = explainHtml({ file: 'nat.pcap', kernel: '6.18', profile: 'modern-challenge', profileLabel: '6.2+', summary, flows: tracker.order, time: 'relative', t0: 1000, flowsOmitted: 0 });
    expect(page.startsWith('<!DOCTYPE html>')).toBe(true);
    expect(page).not.toMatch(/<script|<link|<img|@import|url\(http/);
    expect(page.replace(/xmlns="http:\/\/www\.w3\.org\/2000\/svg"/g, '')).not.toMatch(/https?:/);
    expect(page.match(/<svg /g)).toHaveLength(tracker.order.length);
    expect(page).toContain('@media print');
  });
});

describe('parties diagram', () => {
  it('draws every connection in one diagram, a column per named party, one arrow per packet', async () => {
    const { tracker, summary } = await replay(natCapture(true));
    expect(parseParty('app=192.0.2.2:*')).toEqual({ name: 'app', endpoints: ['192.0.2.2:*'] });
    expect(parseParty('proxy=[2001:db8::1]:15001,*:15001')).toEqual({ name: 'proxy', endpoints: ['[2001:db8::1]:15001', '*:15001'] });
    expect(parseParty('nonsense')).toBeNull();
    expect(parseParty('x=host.example:80')).toBeNull();
    const parties = [parseParty('container=192.0.2.2:*')!, parseParty('NAT host=198.51.100.1:*')!, parseParty('server=198.51.100.2:9000')!];
    const svg = partiesSvg('test', tracker.order, parties, { time: 'relative', t0: 1000 }).s;
    expect(balanced(svg)).toBe(true);
    expect(svg.match(/<g class="party">/g)).toHaveLength(3); // every endpoint named: no "other" column
    expect(svg.match(/class="arrow"/g)).toHaveLength(summary.tcp);
    const indexes = [...svg.matchAll(/data-index="(\d+)"/g)].map((m) => Number(m[1]));
    expect(indexes).toEqual([...indexes].sort((a, b) => a - b)); // time goes down across connections
    const unnamed = partiesSvg('test', tracker.order, parties.slice(0, 1), { time: 'relative', t0: 1000 }).s;
    expect(unnamed).toContain('>other<');
  });
});

describe('explain text', () => {
  it('shows the packets that matter and the handshake of their connection; -v every packet; 80 columns', async () => {
    const { summary, text, lines, all } = await replay(natCapture(true));
    const heads = (ls: string[]) => ls.map((l) => l.replace(/\n {4}\[/, ' [').split('\n')[0]!);
    expect(heads(all)).toHaveLength(summary.tcp);
    // the clean connection: its handshake and FINs; its data and final ACK are not shown
    const clean = heads(lines).filter((l) => l.includes(':40001 '));
    expect(clean.map((l) => /\[([A-Z|]+)\]/.exec(l)![1])).toEqual(['SYN', 'SYN|ACK', 'ACK', 'FIN|ACK', 'FIN|ACK']);
    expect(heads(lines)[0]).toMatch(/^#0 \+0\.000000 192\.0\.2\.2:40000 > 198\.51\.100\.2:9000 \[SYN\] seq 0 len 0$/);
    const unwrapped = (l: string) => l.replace(/\n {4}/g, ' ');
    expect(unwrapped(lines.join('\n'))).toMatch(/IGNORE "\d+ bytes more than expected"/);
    expect(lines.join('\n')).not.toMatch(/ACCEPT/);
    const rst = unwrapped(lines.find((l) => l.includes('[RST]'))!);
    expect(rst).toMatch(/RESET sent by the NAT host itself: packet #\d+ was INVALID, so not de-NATed/);
    expect(rst).not.toMatch(/answers with RST/);
    const sum = text.summary(summary);
    expect(sum).toMatch(/192\.0\.2\.2:40000 → 198\.51\.100\.2:9000 via NAT 198\.51\.100\.1:40000/);
    expect(sum).toMatch(/reset by the NAT host/);
    expect(sum).toMatch(/not shown: accepted without FIN or RST; -v shows every packet/);
    for (const l of [...lines, ...all, sum].join('\n').split('\n')) expect(l.length).toBeLessThanOrEqual(80);
  });

  it('holds only the connections whose entry lives; the summary still lists every one, in order, and a tuple reused after expiry is a new connection', async () => {
    // 300 connections 30 s apart (each entry gone 120 s after its FIN), then the first tuple again
    const flows = Array.from({ length: 300 }, (_, i) => synthFlow({ ...base, replyTo: undefined, clientPort: 20000 + i, forgedOffset: undefined, clientIsn: 1000 + i, segments: 3, start: 1000 + i * 30 }));
    const reused = synthFlow({ ...base, replyTo: undefined, clientPort: 20000, forgedOffset: undefined, clientIsn: 777_777, serverIsn: 5, segments: 1, start: 1000 + 300 * 30 });
    const path = `${dir}/sequential.pcap`;
    writeFileSync(path, PcapWriter.toBuffer([...flows.flat(), ...reused], { linkType: 101 }));
    const t = new ExplainText({ verbose: true, time: 'relative', only: null });
    let most = 0;
    const blocks: string[] = [];
    const summary = await explainCapture(path, {
      profile: profileFromFlag('6.18'),
      onPacket: (p) => {
        blocks.push(t.packet(p)!);
        most = Math.max(most, t.openConnections);
      },
      onSweep: (live) => t.sweep(live),
    });
    expect(most).toBeLessThanOrEqual(8); // the table's few live entries, not 300
    // the JSON flows agree: 301, the reused tuple a flow of its own
    expect(summary.flows).toHaveLength(301);
    expect(summary.flows.at(-1)).toMatchObject({ flow: '192.0.2.2:20000 → 198.51.100.2:9000', packets: reused.length });
    const text = t.summary(summary);
    expect(text).toMatch(/^connections \(301\):$/m);
    const ids = [...text.matchAll(/^ {2}(\S+) → /gm)].map((m) => m[1]);
    expect(ids).toEqual([...flows.map((_, i) => `192.0.2.2:${20000 + i}`), '192.0.2.2:20000']);
    // counts kept through closing: every connection says its own packets
    expect(text.match(/^ {6}\d+ packets/gm)).toHaveLength(301);
    expect(text).toContain(`${flows[0]!.length} packets: ${flows[0]!.length} accept, 0 ignore, 0 INVALID; final state TIME_WAIT`);
    // the new connection's sequence numbers are relative to its own SYN
    expect(blocks.at(-reused.length)).toMatch(/\[SYN\] seq 0 len 0/);
  });

  it('prints times relative, as wall clock or epoch', async () => {
    const path = natCapture();
    for (const [time, re] of [['relative', /^#0 \+0\.000000 /], ['wall', /^#0 00:16:40\.001000 /], ['epoch', /^#0 1000\.001000 /]] as const) {
      const t = new ExplainText({ verbose: true, time, only: null });
      const out: string[] = [];
      await explainCapture(path, { profile: profileFromFlag('6.18'), onPacket: (p) => out.push(t.packet(p)!) });
      expect(out[0]).toMatch(re);
    }
  });
});
