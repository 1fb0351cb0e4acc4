/**
 * The output thread (offload.ts) as a user meets it: `explain BIG.pcap -o json` through a pipe, to
 * a file, into `head`, and interrupted while its reader reads nothing. Runs the built CLI (a
 * worker thread loads built modules).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { Writable } from 'node:stream';
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


/** An IPv4 address as the replay gives it to records (int32), null for IPv6. */
const int4 = (a: string): number | null => (a.includes(':') ? null : a.split('.').reduce((x, o) => (x << 8) | Number(o), 0));

describe('explain through the output thread', () => {
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

  it('writes the text (every packet, and what matters) the main thread writes', () => {
    const fromFirstPacket = (b: Buffer) => b.subarray(b.indexOf('\n#0 ') + 1); // the header names the file
    for (const extra of [['-v'], []]) {
      const plain = spawnSync('sh', ['-c', `node ${cli} explain - --kernel 6.18 ${extra.join(' ')} < ${capture}`], { maxBuffer: 1 << 30 });
      const piped = spawnSync('node', [cli, 'explain', capture, '--kernel', '6.18', ...extra], { maxBuffer: 1 << 30 });
      expect(piped.status).toBe(1);
      const text = fromFirstPacket(plain.stdout).toString();
      expect(text).toMatch(/^#0 \+0\.000000 /);
      expect(text).toMatch(/IGNORE "\d+ bytes more than expected"/);
      expect(text).toMatch(/^connections \(1500\):$/m);
      expect(fromFirstPacket(piped.stdout).equals(fromFirstPacket(plain.stdout))).toBe(true);
    }
  });

  it('passes any byte of plain text through, 0x01 (its record mark) included, and keeps order across a full ring', async () => {
    // the built modules: the thread loads built code
    const { Output } = (await import(new URL('../../dist/report/output.js', import.meta.url).href)) as typeof import('./output.js');
    const { explainTextRecordsModule } = (await import(new URL('../../dist/report/explain-text.js', import.meta.url).href)) as typeof import('./explain-text.js');
    const path = `${dir}/bytes.txt`;
    const fd = openSync(path, 'w');
    const stream = Object.assign(new Writable({ write: (c: Buffer, _e, cb) => (writeSync(fd, c), cb()) }), { fd });
    const out = new Output('text', stream, null);
    out.line('before the thread');
    expect(await out.offload(explainTextRecordsModule)).toBe(true);
    const expected = ['before the thread'];
    for (let i = 0; i < 60000; i++) {
      const l = `line ${i} \x01 ctrl \x00\x02 → é ${'x'.repeat(i % 97)}`;
      out.line(l);
      expected.push(l);
      if (i % 5000 === 0) await out.ready();
    }
    out.bytes(Buffer.from([1, 2, 1]));
    out.endLine();
    expected.push('\x01\x02\x01');
    await out.flush();
    closeSync(fd);
    expect(readFileSync(path, 'utf8')).toBe(expected.join('\n') + '\n');
  });

  it('writes an IPv4 packet from its addresses and ports as numbers: 40,000 pairs in any order, every octet and port width', async () => {
    const dist = (m: string) => new URL(`../../dist/${m}`, import.meta.url).href;
    const { Output } = (await import(dist('report/output.js'))) as typeof import('./output.js');
    const { explainPackets, explainRecordsModule } = (await import(dist('report/explain.js'))) as typeof import('./explain.js');
    const { createDecision } = (await import(dist('conntrack/model.js'))) as typeof import('../conntrack/model.js');
    type Packet = import('../conntrack/explain.js').ExplainedPacket;
    // addresses from 0.0.0.0 to 255.255.255.255 (int32: negative from 128.0.0.0), ports 0 to 65535
    let seed = 7;
    const rnd = (n: number) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) % n;
    const octets = [0, 1, 9, 10, 99, 100, 127, 128, 192, 198, 203, 255];
    const address = () => Array.from({ length: 4 }, () => octets[rnd(octets.length)]!).join('.');
    const pairs = Array.from({ length: 40_000 }, () => ({ src: address(), sport: [0, 1, 80, 9000, 40000, 65535][rnd(6)]! + rnd(2), dst: address(), dport: rnd(65536) }));
    const d = Object.assign(createDecision(), { verdict: 'ACCEPT' as const, dir: 'original' as const, stateBefore: 'ESTABLISHED', stateAfter: 'ESTABLISHED' });
    const packets: Packet[] = [];
    for (let k = 0; k < 120_000; k++) {
      // the first 10,000 pairs often (held), the rest now and then (evicted, coming back)
      const e = pairs[k % 3 ? rnd(10_000) : rnd(pairs.length)]!;
      const sport = Math.min(e.sport, 65535);
      packets.push({ index: k, tsSec: 3000 + k / 1000, src: e.src, srcPort: sport, dst: e.dst, dstPort: e.dport, src4: int4(e.src), dst4: int4(e.dst), flags: 'ACK', tcpFlags: 16, ipId: k & 0xffff, seq: k, ack: 1, len: 0, window: 502, natMatchedTo: null, entry: null, entryKey: 'k', flow: 0, decision: d, consequence: 'ACCEPT: tracked', captureMissed: 0 });
    }
    const expected = packets.map((p) => explainPackets.json(p) + '\n').join('');
    expect(expected).toContain('"src":"255.255.255.255:');
    const path = `${dir}/v4.json`;
    const fd = openSync(path, 'w');
    const out = new Output('json', Object.assign(new Writable({ write: (c: Buffer, _e, cb) => (writeSync(fd, c), cb()) }), { fd }), null);
    expect(await out.offload(explainRecordsModule)).toBe(true);
    const line = out.lines(explainPackets);
    for (let k = 0; k < packets.length; k++) {
      line(packets[k]!);
      if (k % 10_000 === 0) await out.ready();
    }
    await out.flush();
    closeSync(fd);
    // (the first line that differs, not a diff of 15 MB)
    const got = readFileSync(path, 'utf8').split('\n');
    const want = expected.split('\n');
    const at = got.findIndex((l, i) => l !== want[i]);
    expect(at < 0 && got.length === want.length ? null : { at, got: got[at], want: want[at] }).toBe(null);
  });

  it('writes a window check\'s reason from its pieces around the number, JSON and text, as the whole text is written', async () => {
    const dist = (m: string) => new URL(`../../dist/${m}`, import.meta.url).href;
    const { Output } = (await import(dist('report/output.js'))) as typeof import('./output.js');
    const { explainPackets, explainRecordsModule } = (await import(dist('report/explain.js'))) as typeof import('./explain.js');
    const { ExplainText, explainTextRecordsModule } = (await import(dist('report/explain-text.js'))) as typeof import('./explain-text.js');
    const { createDecision, setReason } = (await import(dist('conntrack/model.js'))) as typeof import('../conntrack/model.js');
    type Packet = import('../conntrack/explain.js').ExplainedPacket;
    // per verdict, direction and width of the number (1 to 10 digits): the reason as pieces (the
    // model's decision) and, for the expected lines, as a whole text (a plain object)
    const packets: Array<[Packet, Packet]> = [];
    let index = 0;
    for (const [verdict, check, consequence] of [
      ['IGNORE', 'II', 'IGNORE: passes (NAT applied) but conntrack state is not updated'],
      ['INVALID', 'III', 'INVALID: untracked, so not de-NATed — a NAT host delivers it to its own stack'],
    ] as const)
      for (const dir of ['original', 'reply'] as const)
        for (let width = 1; width <= 10; width++)
          for (const form of [0, 1, 2, 3, 4] as const) {
            const n = width === 10 ? 4294967295 - form : 10 ** (width - 1) + form;
            const d = Object.assign(createDecision(), { verdict, check, dir, logged: true, stateBefore: 'ESTABLISHED', stateAfter: 'ESTABLISHED' });
            setReason(d, form, n);
            const whole = JSON.parse(JSON.stringify(d)) as typeof d;
            const p: Packet = { index: index++, tsSec: 1000 + index / 1000, src: dir === 'original' ? '192.0.2.1' : '198.51.100.2', srcPort: dir === 'original' ? 40000 : 9000, dst: dir === 'original' ? '198.51.100.2' : '192.0.2.1', dstPort: dir === 'original' ? 9000 : 40000, flags: 'ACK', tcpFlags: 16, ipId: 1, src4: int4(dir === 'original' ? '192.0.2.1' : '198.51.100.2'), dst4: int4(dir === 'original' ? '198.51.100.2' : '192.0.2.1'), seq: 1, ack: 1, len: 0, window: 502, natMatchedTo: null, entry: null, entryKey: 'k', flow: 0, decision: d, consequence, captureMissed: 0 };
            packets.push([p, { ...p, decision: whole }]);
            // through NAT: the same cut around the name of the connection it was matched to
            if (width % 3 === 0) {
              const nat = { ...p, index: index++, natMatchedTo: `192.0.2.${width}:4000${form} → 198.51.100.2:9000` };
              packets.push([nat, { ...nat, decision: whole }]);
            }
          }
    // plain packets (tracked, nothing to say), through NAT and not, more NAT names than a record session keeps apart
    for (let k = 0; k < 40_000; k++) {
      const d = Object.assign(createDecision(), { verdict: 'ACCEPT' as const, dir: k % 2 ? ('reply' as const) : ('original' as const), stateBefore: 'ESTABLISHED', stateAfter: k % 5 ? 'ESTABLISHED' : 'FIN_WAIT' });
      const p: Packet = { index: index++, tsSec: 2000 + k / 1000, src: '192.0.2.1', srcPort: 40000, dst: '198.51.100.2', dstPort: 9000, flags: 'ACK', tcpFlags: 16, ipId: 1, src4: int4('192.0.2.1'), dst4: int4('198.51.100.2'), seq: k, ack: 1, len: 0, window: 502, natMatchedTo: k % 3 ? `192.0.2.${k % 250}:${k} → 198.51.100.2:9000` : null, entry: null, entryKey: 'k', flow: 0, decision: d, consequence: k % 5 ? 'ACCEPT: tracked' : 'ACCEPT: tracked, ESTABLISHED → FIN_WAIT', captureMissed: 0 };
      packets.push([p, p]);
    }
    const expectJson = packets.map(([, whole]) => explainPackets.json(whole) + '\n').join('');
    const expectedText = new ExplainText({ verbose: true, time: 'relative', only: null });
    const expectText = packets.map(([, whole]) => expectedText.packet(whole)! + '\n').join('');
    expect(expectJson).toMatch(/"reason":"SEQ is under lower bound 4294967293 \(already ACKed data retransmitted\)"/);
    expect(expectText).toMatch(/IGNORE "ignored ACK under lower bound 1003 \(possible\s+overly delayed\)"/);

    const written = async (format: 'json' | 'text', expander: URL, write: (out: InstanceType<typeof Output>) => void): Promise<string> => {
      const path = `${dir}/formed.${format}`;
      const fd = openSync(path, 'w');
      const out = new Output(format, Object.assign(new Writable({ write: (c: Buffer, _e, cb) => (writeSync(fd, c), cb()) }), { fd }), null);
      expect(await out.offload(expander)).toBe(true);
      write(out);
      await out.flush();
      closeSync(fd);
      return readFileSync(path, 'utf8');
    };
    // through the output thread (records), and on the main thread (the stdin case)
    expect(await written('json', explainRecordsModule, (out) => packets.forEach(([p]) => out.lines(explainPackets)(p)))).toBe(expectJson);
    const text = new ExplainText({ verbose: true, time: 'relative', only: null });
    expect(await written('text', explainTextRecordsModule, (out) => packets.forEach(([p]) => text.packetInto(p, out) && out.endLine()))).toBe(expectText);
    const onMain = new ExplainText({ verbose: true, time: 'relative', only: null });
    expect(packets.map(([p]) => onMain.packet(p)! + '\n').join('')).toBe(expectText);
    // on a terminal (colour): the pieces are cut from the painted line
    const { setColour } = (await import(dist('report/text.js'))) as typeof import('./text.js');
    setColour(true);
    try {
      const [painted, whole] = [new ExplainText({ verbose: true, time: 'relative', only: null }), new ExplainText({ verbose: true, time: 'relative', only: null })];
      const text = packets.map(([p]) => painted.packet(p)!).join('\n');
      expect(text).toContain('\u001b[33mIGNORE\u001b[39m');
      expect(text).toBe(packets.map(([, w]) => whole.packet(w)!).join('\n'));
    } finally {
      setColour(false);
    }
  });

  it('writes a reply through NAT as its whole meaning line would be, cut around its client (IPv4 and long IPv6 clients, plain and formed)', async () => {
    const dist = (m: string) => new URL(`../../dist/${m}`, import.meta.url).href;
    const { Output } = (await import(dist('report/output.js'))) as typeof import('./output.js');
    const { ExplainText, explainTextRecordsModule } = (await import(dist('report/explain-text.js'))) as typeof import('./explain-text.js');
    const { createDecision, setReason, formatReason } = (await import(dist('conntrack/model.js'))) as typeof import('../conntrack/model.js');
    const { wrapJoined, paint, setColour } = (await import(dist('report/text.js'))) as typeof import('./text.js');
    type Packet = import('../conntrack/explain.js').ExplainedPacket;
    const server = { src: '198.51.100.2', sport: 9000 };
    const packets: Packet[] = [];
    /** Per packet (by index), the meaning lines expected, written out whole (painted or not: a function of the terminal's colour). */
    const meaningOf = new Map<number, () => string>();
    let index = 0;
    for (let c = 0; c < 300; c++) {
      const v6 = c % 3 === 2;
      const client = v6 ? `2001:db8:${c.toString(16)}:ffff:ffff:ffff:ffff:${c}` : `192.0.2.${1 + (c % 250)}`;
      const cport = 30000 + c;
      const natPort = 1024 + c;
      const nat = v6 ? '2001:db8::ffff' : '203.0.113.1';
      const orig = { src: client, sport: cport, dst: server.src, dport: server.sport };
      const reply = { src: server.src, sport: server.sport, dst: nat, dport: natPort };
      const entry = { orig, reply };
      const base = { tsSec: 1000 + index / 1000, flags: 'ACK', tcpFlags: 16, ipId: 1, ack: 1, len: 0, window: 502, natMatchedTo: null, entry, entryKey: `k${c}`, flow: c, captureMissed: 0 };
      const syn = Object.assign(createDecision(), { verdict: 'ACCEPT' as const, dir: 'original' as const, stateBefore: 'NONE', stateAfter: 'SYN_SENT' });
      packets.push({ ...base, index: index++, src: client, srcPort: cport, dst: server.src, dstPort: server.sport, src4: int4(client), dst4: int4(server.src), flags: 'SYN', tcpFlags: 2, seq: 5, ack: 0, decision: syn, consequence: 'ACCEPT: tracked, NONE → SYN_SENT' });
      const endpoint = v6 ? `[${client}]:${cport}` : `${client}:${cport}`;
      for (let k = 0; k < 4; k++) {
        const d = Object.assign(createDecision(), { verdict: 'ACCEPT' as const, dir: 'reply' as const, stateBefore: k === 0 ? 'SYN_SENT' : 'ESTABLISHED', stateAfter: 'ESTABLISHED', logged: true });
        let meaning = () => `reply (to ${endpoint} through NAT) ${k === 0 ? 'SYN_SENT → ESTABLISHED' : 'ESTABLISHED'}`;
        if (k === 3) {
          // an IGNORE: its reason a form around a number of any width
          d.verdict = 'IGNORE' as never;
          d.check = 'II';
          const n = [7, 35748, 4294967295][c % 3]!;
          setReason(d, (c % 5) as 0 | 1 | 2 | 3 | 4, n);
          meaning = () => `reply (to ${endpoint} through NAT) ESTABLISHED ${paint('IGNORE', 'yellow')} "${formatReason(c % 5, n)}" (passes; state not updated)`;
        }
        const m = meaning;
        meaningOf.set(index, () => wrapJoined(m(), 80, '    '));
        packets.push({ ...base, index: index++, src: server.src, srcPort: server.sport, dst: nat, dstPort: natPort, src4: int4(server.src), dst4: int4(nat), seq: 100 + k, decision: d, consequence: k === 3 ? 'IGNORE: passes (NAT applied) but conntrack state is not updated' : 'ACCEPT: tracked' });
      }
    }
    /** Each expected packet's lines after its head, as written. */
    const meanings = (text: string) => {
      const got = new Map<number, string>();
      for (const block of ('\n' + text).split('\n#').slice(1)) {
        const i = Number(block.slice(0, block.indexOf(' ')));
        // (after the head, and its segment when that went to a line of its own)
        const lines = block.split('\n').slice(1);
        if (lines[0]?.startsWith('    [')) lines.shift();
        if (meaningOf.has(i)) got.set(i, lines.join('\n'));
      }
      return got;
    };
    const path = `${dir}/nat.text`;
    const fd = openSync(path, 'w');
    const out = new Output('text', Object.assign(new Writable({ write: (c: Buffer, _e, cb) => (writeSync(fd, c), cb()) }), { fd }), null);
    expect(await out.offload(explainTextRecordsModule)).toBe(true);
    const threaded = new ExplainText({ verbose: true, time: 'relative', only: null });
    for (const p of packets) if (threaded.packetInto(p, out)) out.endLine();
    await out.flush();
    closeSync(fd);
    const written = meanings(readFileSync(path, 'utf8').replace(/\n$/, ''));
    const onMain = new ExplainText({ verbose: true, time: 'relative', only: null });
    const direct = meanings(packets.map((p) => onMain.packet(p)).join('\n'));
    expect(written.size).toBe(meaningOf.size);
    expect(direct.size).toBe(meaningOf.size);
    // (a long IPv6 client wraps the line: the pieces hold for that too)
    expect([...meaningOf.values()].some((m) => m().includes('\n'))).toBe(true);
    for (const [i, m] of meaningOf) {
      expect(written.get(i)).toBe(m());
      expect(direct.get(i)).toBe(m());
    }
    // on a terminal (colour): the pieces are cut from the painted line
    setColour(true);
    try {
      const painted = new ExplainText({ verbose: true, time: 'relative', only: null });
      const onTerminal = meanings(packets.map((p) => painted.packet(p)).join('\n'));
      expect(meaningOf.get(4)!()).toContain('\u001b[33mIGNORE\u001b[39m');
      for (const [i, m] of meaningOf) expect(onTerminal.get(i)).toBe(m());
    } finally {
      setColour(false);
    }
  });

  it('stops quietly when its reader goes away, on Ctrl-C while its reader reads nothing, and says why a write failed', async () => {
    const head = spawnSync('bash', ['-c', `set -o pipefail; node ${cli} explain ${capture} --kernel 6.18 -o json | head -c 1000 > /dev/null`], { timeout: 20000 });
    expect(head.status).toBe(0);
    // a write that fails otherwise: one line saying why, exit 70
    const full = spawnSync('sh', ['-c', `node ${cli} explain ${capture} --kernel 6.18 -o json > /dev/full`], { encoding: 'utf8', timeout: 20000 });
    expect(full.status).toBe(70);
    expect(full.stderr).toBe('ctprobe: writing the output failed: no space left on device (ENOSPC)\n');
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
