/**
 * explain through NAT on synthetic `tcpdump -i any` captures (Linux cooked v2, one copy per
 * interface a packet crosses, with the tuple NAT left it at): one flow per conntrack entry, with its
 * original and reply tuples, whatever NAT rewrote; copies counted once by identity.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { PcapWriter } from '../capture/writer.js';
import { parseConntrackLine } from '../inspect/conntrack.js';
import { seqAdd } from '../packet/seq.js';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN } from '../packet/tcp.js';
import { explainCapture, type ExplainOptions } from './explain.js';
import { MAX_PENDING_SYNS, natMappingsFromConntrack } from './nat.js';
import { profileFromFlag } from './profile.js';
import { flowSegments, renderHops, sll2Frame, synthNatFlow, tcpPacket, type Hop, type SynthPacket, type SynthSegment, type WireTuple } from './synth.js';

const dir = mkdtempSync(`${tmpdir()}/ctp-nat-`);
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
function pcap(packets: SynthPacket[]): string {
  const path = `${dir}/${n++}.pcap`;
  writeFileSync(path, PcapWriter.toBuffer(packets, { linkType: 276 }));
  return path;
}

const T = (src: string, sport: number, dst: string, dport: number): WireTuple => ({ src, sport, dst, dport });
const inv = (t: WireTuple): WireTuple => T(t.dst, t.dport, t.src, t.sport);
const IN = 0;
const OUT = 4;
const hop = (ifindex: number, pkttype: number, tuple: WireTuple): Hop => ({ ifindex, pkttype, tuple });
const base = { clientIsn: 1000, serverIsn: 4294967000, segments: 3, start: 1000 };
const SEGMENTS = flowSegments(base).length;

async function explain(path: string, kernel = '6.18', extra: Partial<ExplainOptions> = {}) {
  const packets: Array<{ index: number; flags: string; verdict: string; reason: string | null; logged: boolean; state: string; dir: string; nat: string | null }> = [];
  const summary = await explainCapture(path, {
    profile: profileFromFlag(kernel),
    onPacket: (p) => packets.push({ index: p.index, flags: p.flags, verdict: p.decision.verdict, reason: p.decision.reason, logged: p.decision.logged, state: p.decision.stateAfter, dir: p.decision.dir, nat: p.natMatchedTo }),
    ...extra,
  });
  return { summary, packets };
}

/** One clean flow: every packet ACCEPT, ends in TIME_WAIT, one flow with these tuples. */
function expectOneCleanFlow(r: Awaited<ReturnType<typeof explain>>, flow: string, reply: string | null, how: string | null, copies: number) {
  expect(r.summary.invalid).toBe(0);
  expect(r.summary.ignore).toBe(0);
  expect(r.summary.tcp).toBe(SEGMENTS);
  expect(r.summary.duplicates).toBe(copies);
  expect(r.packets.every((p) => p.verdict === 'ACCEPT')).toBe(true);
  expect(r.packets.at(-1)!.state).toBe('TIME_WAIT');
  expect(r.summary.flows).toHaveLength(1);
  expect(r.summary.flows.at(0)).toMatchObject({ flow, reply, natLearnedFrom: how, packets: SEGMENTS, finalState: 'TIME_WAIT' });
}

describe('explain follows NAT as conntrack does', () => {
  it('SNAT/MASQUERADE on a forwarding host, copies 12 ms apart (slow guest): one entry, reply to the masquerade address', async () => {
    const c = T('192.0.2.2', 40000, '198.51.100.2', 9000);
    const masq = T('198.51.100.1', 40000, '198.51.100.2', 9000);
    const path = pcap(synthNatFlow({ ...base, copyDelay: 0.012, forward: [hop(3, IN, c), hop(4, IN, c), hop(5, OUT, masq)], backward: [hop(5, IN, inv(masq)), hop(4, OUT, inv(c)), hop(3, OUT, inv(c))] }));
    const r = await explain(path);
    expectOneCleanFlow(r, '192.0.2.2:40000 → 198.51.100.2:9000', '198.51.100.2:9000 → 198.51.100.1:40000', 'copy', SEGMENTS * 2);
    // replies carry the masquerade address: matched to the flow through NAT
    expect(r.packets.filter((p) => p.dir === 'reply').every((p) => p.nat === '192.0.2.2:40000 → 198.51.100.2:9000')).toBe(true);
    expect(r.packets.filter((p) => p.dir === 'original').every((p) => p.nat === null)).toBe(true);
  });

  it('DNAT to a ClusterIP backend on the client’s node', async () => {
    const svc = T('192.0.2.2', 40000, '203.0.113.10', 80);
    const pod = T('192.0.2.2', 40000, '198.51.100.20', 8080);
    const path = pcap(synthNatFlow({ ...base, forward: [hop(3, IN, svc), hop(5, OUT, pod)], backward: [hop(5, IN, inv(pod)), hop(3, OUT, inv(svc))] }));
    expectOneCleanFlow(await explain(path), '192.0.2.2:40000 → 203.0.113.10:80', '198.51.100.20:8080 → 192.0.2.2:40000', 'copy', SEGMENTS);
  });

  it('REDIRECT to a local proxy, seen only after NAT on lo (the half-close lab): learned from the handshake', async () => {
    const seen = T('203.0.113.1', 46576, '127.0.0.1', 15001);
    const back = T('203.0.113.2', 7777, '203.0.113.1', 46576);
    const path = pcap(synthNatFlow({ ...base, forward: [hop(1, IN, seen)], backward: [hop(1, IN, back)] }));
    const r = await explain(path);
    expectOneCleanFlow(r, '203.0.113.1:46576 → 203.0.113.2:7777', '127.0.0.1:15001 → 203.0.113.1:46576', 'handshake', 0);
    // without NAT following the app's ACK was "packet (index 3) in dir 0 invalid, state SYN_SENT"
    expect(r.packets[2]).toMatchObject({ dir: 'original', state: 'ESTABLISHED', nat: '203.0.113.1:46576 → 203.0.113.2:7777' });
    // --flow by the address the app meant (its packets only show the proxy's) or by the proxy's port
    // (the SYN is reported before its SYN/ACK shows the mapping: streamed, not buffered)
    expect((await explain(path, '6.18', { flow: '203.0.113.2:7777' })).packets).toHaveLength(SEGMENTS - 1);
    expect((await explain(path, '6.18', { flow: '15001' })).packets).toHaveLength(SEGMENTS);
    expect((await explain(path, '6.18', { flow: '9999' })).packets).toHaveLength(0);
  });

  it('a handshake is learned behind a SYN flood; the unanswered SYNs remembered for it are bounded (the last MAX_PENDING_SYNS)', async () => {
    const seen = T('203.0.113.1', 46577, '127.0.0.1', 15001);
    const back = T('203.0.113.2', 7777, '203.0.113.1', 46577);
    const flow = synthNatFlow({ ...base, forward: [hop(1, IN, seen)], backward: [hop(1, IN, back)] });
    // between the flow's SYN and its SYN/ACK, `n` SYNs of other sources, never answered
    const behind = (n: number): SynthPacket[] => {
      const flood = Array.from({ length: n }, (_, i) => ({
        ts: flow[0]!.ts,
        data: sll2Frame(tcpPacket(T(`198.51.100.${1 + (i % 200)}`, 1024 + Math.floor(i / 200), '192.0.2.9', 80), { fromClient: true, flags: TCP_SYN, seq: i * 7919, ack: 0, id: i & 0xffff }), 2, IN),
      }));
      return [flow[0]!, ...flood, ...flow.slice(1)];
    };
    const flowOf = async (n: number) => (await explainCapture(pcap(behind(n)), { profile: profileFromFlag('6.18') })).flows.toArray().find((f) => f.flow.includes(':46577'));
    expect(await flowOf(1000)).toMatchObject({ flow: '203.0.113.1:46577 → 203.0.113.2:7777', natLearnedFrom: 'handshake', invalid: 0, finalState: 'TIME_WAIT' });
    // behind more SYNs than are remembered, its own is forgotten: the proxy's SYN/ACK opens nothing known
    expect(MAX_PENDING_SYNS).toBe(65536);
    expect(await flowOf(MAX_PENDING_SYNS)).toMatchObject({ flow: '203.0.113.1:46577 → 127.0.0.1:15001', natLearnedFrom: null });
  });

  it('NodePort with SNAT: both ends rewritten, a copy after DNAT only in between (the bridge)', async () => {
    const ext = T('192.0.2.50', 50000, '198.51.100.1', 30080);
    const dnatOnly = T('192.0.2.50', 50000, '203.0.113.20', 8080);
    const pod = T('203.0.113.1', 61000, '203.0.113.20', 8080);
    const path = pcap(synthNatFlow({ ...base, copyDelay: 0.012, forward: [hop(5, IN, ext), hop(7, IN, dnatOnly), hop(6, OUT, pod)], backward: [hop(6, IN, inv(pod)), hop(7, OUT, inv(ext)), hop(5, OUT, inv(ext))] }));
    expectOneCleanFlow(await explain(path), '192.0.2.50:50000 → 198.51.100.1:30080', '203.0.113.20:8080 → 203.0.113.1:61000', 'copy', SEGMENTS * 2);
  });

  it('IPv6: a SYN retransmitted while neighbour resolution holds the first, both leaving 1 s later — told apart by their timestamps', async () => {
    const svc = T('2001:db8::2', 40000, '2001:db8:1::10', 80);
    const pod = T('2001:db8::2', 40000, '2001:db8:2::20', 8080);
    const segs = flowSegments(base);
    const syn2 = { ...segs[0]!, options: { ...segs[0]!.options, tsVal: 2 } };
    const held = [
      ...renderHops([segs[0]!], { start: 999, forward: [hop(3, IN, svc), hop(4, IN, pod)], backward: [] }),
      ...renderHops([syn2], { start: 1000, forward: [hop(3, IN, svc), hop(4, IN, pod)], backward: [] }),
      ...renderHops([segs[0]!, syn2], { start: 1000.001, gap: 0.000001, forward: [hop(5, OUT, pod)], backward: [] }),
    ];
    const rest = renderHops(segs.slice(1), { start: 1000.01, forward: [hop(3, IN, svc), hop(4, IN, pod), hop(5, OUT, pod)], backward: [hop(5, IN, inv(pod)), hop(4, OUT, inv(svc)), hop(3, OUT, inv(svc))] });
    const r = await explain(pcap([...held, ...rest]));
    expect(r.summary.tcp).toBe(SEGMENTS + 1); // the retransmitted SYN is a packet of its own
    expect(r.summary.duplicates).toBe(SEGMENTS * 2 + 2);
    expect(r.summary.flows).toHaveLength(1);
    expect(r.summary.flows.at(0)).toMatchObject({ flow: '[2001:db8::2]:40000 → [2001:db8:1::10]:80', reply: '[2001:db8:2::20]:8080 → [2001:db8::2]:40000', finalState: 'TIME_WAIT' });
  });

  it('IPv6 DNAT: copies recognised without an IP ID', async () => {
    const svc = T('2001:db8::2', 40000, '2001:db8:1::10', 80);
    const pod = T('2001:db8::2', 40000, '2001:db8:2::20', 8080);
    const path = pcap(synthNatFlow({ ...base, copyDelay: 0.012, forward: [hop(3, IN, svc), hop(5, OUT, pod)], backward: [hop(5, IN, inv(pod)), hop(3, OUT, inv(svc))] }));
    expectOneCleanFlow(await explain(path), '[2001:db8::2]:40000 → [2001:db8:1::10]:80', '[2001:db8:2::20]:8080 → [2001:db8::2]:40000', 'copy', SEGMENTS);
  });

  it('a retransmission is a new packet, a copy on another interface is not (same identity, IPv6)', async () => {
    const c = T('2001:db8::2', 40000, '2001:db8::5', 9000);
    const segs = flowSegments(base);
    const data = segs.findIndex((g) => g.payload === 100);
    segs.splice(data + 1, 0, segs[data]!); // the server sends its first data segment twice, 30 ms apart
    const path = pcap(renderHops(segs, { start: 1000, copyDelay: 0.012, forward: [hop(3, IN, c), hop(5, OUT, c)], backward: [hop(5, IN, inv(c)), hop(3, OUT, inv(c))] }));
    const r = await explain(path);
    expect(r.summary.tcp).toBe(segs.length);
    expect(r.summary.duplicates).toBe(segs.length);
    // an in-window retransmission: tracked like the original
    expect(r.summary.ignore).toBe(0);
    expect(r.summary.invalid).toBe(0);
  });

  it('the NAT host’s own RST carries the masquerade address but is a new packet: "invalid new", logged from 6.7', async () => {
    const c = T('192.0.2.2', 40000, '198.51.100.2', 9000);
    const masq = T('198.51.100.1', 40000, '198.51.100.2', 9000);
    const flow = synthNatFlow({ ...base, limit: 3, forward: [hop(3, IN, c), hop(5, OUT, masq)], backward: [hop(5, IN, inv(masq)), hop(3, OUT, inv(c))] });
    const rst = { ts: 2000, data: sll2Frame(tcpPacket(masq, { fromClient: true, flags: TCP_RST, seq: seqAdd(base.clientIsn, 2), ack: 0, id: 0, window: 0 }), 5, OUT) };
    const path = pcap([...flow, rst]);
    for (const [kernel, logged] of [
      ['6.18', true],
      ['6.12', true],
      ['6.1.192', false],
      ['5.10.223', false],
    ] as const) {
      const r = await explain(path, kernel);
      expect(r.packets.at(-1), kernel).toMatchObject({ flags: 'RST', verdict: 'INVALID', reason: 'invalid new', logged, nat: null });
      expect(r.summary.flows).toHaveLength(2);
      expect(r.summary.flows.at(0)!.finalState).toBe('ESTABLISHED');
    }
  });

  describe('port reuse after the half-close leak (REDIRECT, only after NAT on lo)', () => {
    const app = T('203.0.113.1', 35664, '127.0.0.1', 15001);
    const up = T('203.0.113.2', 7777, '203.0.113.1', 35664);
    const isn = 2419291907;
    const old = 2359571705; // the old connection's sequence the stale proxy socket still acks
    const reuse = (start: number): SynthPacket[] =>
      [
        [app, { fromClient: true, flags: TCP_SYN, seq: isn, ack: 0, id: 1, options: { mss: 1460, sackPerm: true, wscale: 10 } }],
        [up, { fromClient: false, flags: TCP_ACK, seq: 2060252422, ack: old, id: 2 }], // the stale socket's challenge ACK
        [app, { fromClient: true, flags: TCP_RST, seq: old, ack: 0, id: 0, window: 0 }],
        [app, { fromClient: true, flags: TCP_SYN, seq: isn, ack: 0, id: 3, options: { mss: 1460, sackPerm: true, wscale: 10 } }],
        [up, { fromClient: false, flags: TCP_SYN | TCP_ACK, seq: 7000, ack: isn + 1, id: 0, options: { mss: 1460, sackPerm: true, wscale: 10 } }],
        [app, { fromClient: true, flags: TCP_ACK, seq: isn + 1, ack: 7001, id: 4 }],
      ].map(([t, g], i) => ({ ts: start + i * 0.01, data: sll2Frame(tcpPacket(t as WireTuple, g as Parameters<typeof tcpPacket>[1]), 1, IN) }));
    const expectReuse = (r: Awaited<ReturnType<typeof explain>>, from: number, how: string) => {
      const p = r.packets.slice(from);
      expect(p[1]).toMatchObject({ dir: 'reply', verdict: 'IGNORE', reason: 'packet (index 3) in dir 1 ignored, state SYN_SENT', logged: true });
      expect(p[2]).toMatchObject({ dir: 'original', verdict: 'ACCEPT', state: 'CLOSE' });
      expect(p[3]).toMatchObject({ verdict: 'ACCEPT', state: 'SYN_SENT' });
      expect(p.at(-1)).toMatchObject({ state: 'ESTABLISHED' });
      expect(r.summary.flows.at(-1)).toMatchObject({ flow: '203.0.113.1:35664 → 203.0.113.2:7777', reply: '127.0.0.1:15001 → 203.0.113.1:35664', natLearnedFrom: how });
    };

    it('without a mapping the challenge ACK looks like another connection', async () => {
      const r = await explain(pcap(reuse(1000)));
      expect(r.packets[1]).toMatchObject({ verdict: 'ACCEPT', reason: null }); // a mid-stream pickup of its own
      // the app's first entry (deleted by its RST), the pickup, and the app's new entry: a row each
      expect(r.summary.flows).toHaveLength(3);
      expect([...r.summary.flows].map((f) => [f.packets, f.finalState])).toEqual([[2, 'CLOSE'], [2, 'ESTABLISHED'], [2, 'SYN_SENT']]);
    });

    it('with the entry from conntrack -L (a support bundle) it is the entry’s reply, IGNOREd as the kernel logs it', async () => {
      const ct = parseConntrackLine('tcp      6 118 SYN_SENT src=203.0.113.1 dst=203.0.113.2 sport=35664 dport=7777 [UNREPLIED] src=127.0.0.1 dst=203.0.113.1 sport=15001 dport=35664 mark=0 use=1');
      const r = await explain(pcap(reuse(1000)), '6.18', { natMappings: natMappingsFromConntrack([ct]) });
      expectReuse(r, 0, 'conntrack');
      // the RST deleted the entry: the SYN after it makes a new one, a row of its own (as the kernel's)
      expect([...r.summary.flows].map((f) => [f.packets, f.finalState])).toEqual([[3, 'CLOSE'], [3, 'ESTABLISHED']]);
    });

    it('ctprobe explain --conntrack-file reads the mapping; a malformed file is one line, exit 2', () => {
      const cli = new URL('../../dist/cli/main.js', import.meta.url).pathname;
      const cap = pcap(reuse(1000));
      const ct = `${dir}/ct.txt`;
      writeFileSync(ct, 'tcp      6 118 SYN_SENT src=203.0.113.1 dst=203.0.113.2 sport=35664 dport=7777 [UNREPLIED] src=127.0.0.1 dst=203.0.113.1 sport=15001 dport=35664 mark=0 use=1\n');
      const r = spawnSync('node', [cli, 'explain', cap, '--kernel', '6.18', '--conntrack-file', ct, '-o', 'json'], { encoding: 'utf8' });
      expect(r.status).toBe(0);
      const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines.find((l) => l.type === 'packet' && l.verdict === 'IGNORE')).toMatchObject({ reason: 'packet (index 3) in dir 1 ignored, state SYN_SENT', natMatchedTo: null, dir: 'reply' });
      expect(lines.filter((l) => l.type === 'flow')).toHaveLength(2);
      writeFileSync(ct, 'not conntrack output\n');
      const bad = spawnSync('node', [cli, 'explain', cap, '--conntrack-file', ct], { encoding: 'utf8' });
      expect(bad.status).toBe(2);
      expect(bad.stderr.trim().split('\n')).toHaveLength(1);
      expect(bad.stderr).toMatch(/^ctprobe: line 1: not a conntrack entry/);
      expect(bad.stdout).toBe('');
    });

    it('learned from an earlier connection through the same REDIRECT', async () => {
      const earlier = synthNatFlow({ ...base, forward: [hop(1, IN, T('203.0.113.1', 46576, '127.0.0.1', 15001))], backward: [hop(1, IN, T('203.0.113.2', 7777, '203.0.113.1', 46576))] });
      const r = await explain(pcap([...earlier, ...reuse(1010)]));
      expectReuse(r, SEGMENTS, 'rule');
      expect(r.summary.flows).toHaveLength(3);
    });
  });

  describe('the lab’s out-of-window segment (+100000) through MASQUERADE, per measured kernel, exact reasons', () => {
    // The notes' numbers (kernel-behaviour.md, conntrack-tcp-model.md §7): client next seq C, server next seq S.
    const C = 2233498242;
    const S = 178314449;
    const c = T('192.0.2.2', 40000, '198.51.100.2', 9000);
    const masq = T('198.51.100.1', 40000, '198.51.100.2', 9000);
    const hops = { forward: [hop(3, IN, c), hop(4, IN, c), hop(5, OUT, masq)], backward: [hop(5, IN, inv(masq)), hop(4, OUT, inv(c)), hop(3, OUT, inv(c))] };
    const ts = { tsVal: 1, tsEcr: 1 };
    const g = (fromClient: boolean, flags: number, seq: number, ack: number, window: number, id: number, extra: Partial<SynthSegment> = {}): SynthSegment => ({ fromClient, flags, seq, ack, window, id, options: ts, ...extra });
    const handshake = [
      g(true, TCP_SYN, C - 1, 0, 64240, 1, { options: { mss: 1460, sackPerm: true, wscale: 7, tsVal: 1, tsEcr: 0 } }),
      g(false, TCP_SYN | TCP_ACK, S - 1, C, 65160, 0, { options: { mss: 1460, sackPerm: true, wscale: 7, tsVal: 1, tsEcr: 1 } }),
      g(true, TCP_ACK, C, S, 504, 2),
    ];
    const forged = g(false, TCP_PSH | TCP_ACK, S + 100000, C, 509, 50, { options: undefined, payload: 4 });
    /** The NAT host's own RST answering an INVALID server packet that acked `ack`: to the server, from the masquerade address. */
    const hostRst = (seq: number, at: number): SynthPacket => ({ ts: at, data: sll2Frame(tcpPacket(masq, { fromClient: true, flags: TCP_RST, seq, ack: 0, id: 0, window: 0 }), 5, OUT) });

    it('6.1.192, 6.12.117, 6.18: forged IGNOREd but poisons the window; the ACK of the client’s FIN is INVALID; "invalid new" for the host’s RST from 6.7', async () => {
      const segs = [...handshake, forged, g(true, TCP_ACK, C, S, 504, 3), g(true, TCP_FIN | TCP_ACK, C, S, 504, 4), g(false, TCP_ACK, S, C + 1, 509, 51)];
      const path = pcap([...renderHops(segs, { ...hops, start: 1000, copyDelay: 0.012 }), hostRst(C + 1, 1000.5)]);
      for (const [kernel, hostLogged] of [
        ['6.1.0-56-amd64', false],
        ['6.12.117+deb12-amd64', true],
        ['6.18.44-fc-v1272', true],
      ] as const) {
        const r = await explain(path, kernel);
        expect(r.summary.duplicates, kernel).toBe(segs.length * 2);
        expect(r.packets.map((p) => [p.verdict, p.logged ? p.reason : null]), kernel).toEqual([
          ['ACCEPT', null],
          ['ACCEPT', null],
          ['ACCEPT', null],
          ['IGNORE', '35493 bytes more than expected'],
          ['IGNORE', 'ignored ACK under lower bound 178348452 (possible overly delayed)'],
          ['IGNORE', 'ignored ACK under lower bound 178348452 (possible overly delayed)'],
          ['INVALID', 'ACK is over upper bound 2233498243 (ACKed data not seen yet)'],
          ['INVALID', hostLogged ? 'invalid new' : null],
        ]);
        expect(r.summary.flows.at(0)).toMatchObject({ flow: '192.0.2.2:40000 → 198.51.100.2:9000', reply: '198.51.100.2:9000 → 198.51.100.1:40000', finalState: 'ESTABLISHED' });
      }
    });

    it('5.10.223: the forged segment itself is INVALID (old fixed text), the host resets at once; −100000 too', async () => {
      for (const [offset, reason] of [
        [100000, 'SEQ is over the upper bound (over the window of the receiver)'],
        [-100000, 'SEQ is under the lower bound (already ACKed data retransmitted)'],
      ] as const) {
        const segs = [...handshake, { ...forged, seq: S + offset }];
        const path = pcap([...renderHops(segs, { ...hops, start: 1000, copyDelay: 0.012 }), hostRst(C, 1000.2)]);
        const r = await explain(path, '5.10.0-32-amd64');
        // the INVALID segment is not de-NATed: it reaches the host itself, no second copy
        expect(r.packets.map((p) => [p.verdict, p.reason, p.logged])).toEqual([
          ['ACCEPT', null, false],
          ['ACCEPT', null, false],
          ['ACCEPT', null, false],
          ['INVALID', reason, true],
          ['INVALID', 'invalid new', false], // 5.10 only pr_debug()s it
        ]);
        // the 6.x kernels IGNORE −100000 ("SEQ is under lower bound …"), nothing INVALID but the host's RST
        if (offset < 0) expect((await explain(path, '6.18')).packets[3]).toMatchObject({ verdict: 'IGNORE', reason: 'SEQ is under lower bound 178249936 (already ACKed data retransmitted)' });
      }
    });
  });

  it('says where an INVALID packet goes through NAT: the host (SNAT, 1090) or the client with the backend’s address (DNAT, 74839)', async () => {
    const consequences = async (path: string) => {
      const out: string[] = [];
      // 5.10: a segment far below the window is INVALID there (an ACK of data never sent would be
      // taken for capture loss, see gaps.ts)
      await explainCapture(path, { profile: profileFromFlag('5.10'), onPacket: (p) => p.decision.verdict === 'INVALID' && out.push(p.consequence) });
      return out;
    };
    const forged = (fwd: Hop[], back: Hop[]) => {
      const segs = flowSegments(base).slice(0, 3);
      const S = seqAdd(base.serverIsn, 1);
      const C = seqAdd(base.clientIsn, 1);
      // the server's segment 100000 below its window: "SEQ is under the lower bound" → INVALID on 5.10
      segs.push({ fromClient: false, flags: TCP_ACK, seq: seqAdd(S, -100000), ack: C, id: 77 });
      return pcap(renderHops(segs, { start: 1000, forward: fwd, backward: back }));
    };
    const c = T('192.0.2.2', 40000, '198.51.100.2', 9000);
    const masq = T('198.51.100.1', 40000, '198.51.100.2', 9000);
    expect(await consequences(forged([hop(3, IN, c), hop(5, OUT, masq)], [hop(5, IN, inv(masq))]))).toEqual([
      "INVALID: untracked, so not de-NATed: addressed to 198.51.100.1 (this host's NAT address), it reaches this host's own TCP, which answers with RST (as in Docker 1090: only an INVALID drop in INPUT stops it)",
    ]);
    const svc = T('192.0.2.2', 40000, '203.0.113.10', 80);
    const pod = T('192.0.2.2', 40000, '198.51.100.20', 8080);
    expect(await consequences(forged([hop(3, IN, svc), hop(5, OUT, pod)], [hop(5, IN, inv(pod)), hop(3, OUT, inv(pod))]))).toEqual([
      'INVALID: untracked, so its source is not rewritten back to 203.0.113.10: forwarded to 192.0.2.2 from 198.51.100.20, a peer it never connected to, whose TCP answers with RST (as in Kubernetes 74839: an INVALID drop in FORWARD stops it)',
    ]);
  });
});
