/**
 * explain end to end, as a user runs it: `ctprobe explain F …` spawned on a synthetic capture of
 * ≥ 1M packets across 20,000 flows (handshake, data, some forged out-of-window segments, FIN
 * close), its output through a fast pipe (`cat`), into a file and into a deliberately slow
 * reader; next to `tshark -r F -q -z conv,tcp` on the same file in the same run when installed.
 * Targets (issue 15): every packet -o json and text ≥ 1M packets/s and ≥ 10× tshark; --only
 * invalid ≥ 2M packets/s; peak RSS ≤ 1/10 of tshark's whatever stdout is.
 */
import { spawnSync } from 'node:child_process';
import { createReadStream, createWriteStream, mkdirSync, rmSync, statSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { PcapWriter } from '../capture/writer.js';
import { sll2Frame, synthFlow, synthNatFlow, type SynthFlow, type SynthPacket } from '../conntrack/synth.js';
import { parseIP } from '../packet/address.js';
import { encodeIPv4 } from '../packet/ip.js';
import { encodeTcp } from '../packet/tcp.js';
import { findTool } from '../host/exec.js';
import { measure, type Measured, type Stdout } from './measure.js';

const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url));
const FLOWS = 20_000;
const CONCURRENT = 200; // flows interleaved at once, as on a busy host

/** Flow i of the bench's captures (its group starting at g): a client of 192.0.2.0/24 to a server of 198.51.100.0/24, every `forgedEvery`th with a forged segment. */
function benchFlow(i: number, g: number, segments: number, forgedEvery: number, timestamps: boolean): SynthFlow {
  return {
    client: `192.0.2.${1 + (i % 250)}`,
    server: `198.51.100.${1 + ((i >> 8) % 250)}`,
    clientPort: 20000 + (i % 40000),
    serverPort: 9000,
    clientIsn: (i * 2654435761) >>> 0,
    serverIsn: (i * 40503 * 65537) >>> 0,
    segments,
    segmentBytes: 64,
    ...(forgedEvery > 0 && i % forgedEvery === 0 ? { forgedOffset: 100000 } : {}),
    start: g,
    timestamps,
  };
}

export function writeExplainCapture(path: string, flowCount = FLOWS, segments = 24, concurrent = CONCURRENT, forgedEvery = 10, timestamps = false): number {
  const w = PcapWriter.create(path, { linkType: 101 });
  // Interleave `concurrent` flows at a time; each has 54 packets (≈ 1.08M packets in all).
  for (let g = 0; g < flowCount; g += concurrent) {
    const flows = [];
    for (let i = g; i < Math.min(flowCount, g + concurrent); i++) flows.push(synthFlow(benchFlow(i, g, segments, forgedEvery, timestamps)));
    const longest = Math.max(...flows.map((f) => f.length));
    for (let k = 0; k < longest; k++) for (const f of flows) if (f[k]) w.writePacket(f[k]!.data, f[k]!.ts);
  }
  w.close();
  return w.packets;
}

/**
 * What `tcpdump -i any` on a NAT host shows (Docker's MASQUERADE, Linux cooked v2): each packet on
 * the container's side and, NATed to 203.0.113.1, on the uplink, 2 µs apart; TCP timestamps on
 * every segment, as Linux sends them. A forged segment reaches the uplink only (INVALID: never
 * de-NATed), and the container never answers it. Returns the records written.
 */
export function writeNatHostCapture(path: string, flowCount = FLOWS, segments = 24, concurrent = CONCURRENT, forgedEvery = 10): number {
  const w = PcapWriter.create(path, { linkType: 276 });
  const INSIDE = 3;
  const UPLINK = 2;
  const HOST = 0;
  const OUTGOING = 4;
  for (let g = 0; g < flowCount; g += concurrent) {
    const flows: Array<{ inside: SynthPacket[]; outside: SynthPacket[]; client: number; forged: boolean }> = [];
    for (let i = g; i < Math.min(flowCount, g + concurrent); i++) {
      const f = benchFlow(i, g, segments, forgedEvery, true);
      const forged = f.forgedOffset !== undefined;
      flows.push({ inside: synthFlow(f), outside: synthFlow({ ...f, client: '203.0.113.1', clientPort: 1024 + (i % 60000) }), client: 1 + (i % 250), forged });
    }
    const longest = Math.max(...flows.map((f) => f.inside.length));
    for (let k = 0; k < longest; k++) {
      for (const f of flows) {
        const inside = f.inside[k];
        if (!inside) continue;
        // (synthFlow's order: SYN, SYN/ACK, ACK, then the forged segment and the client's answer)
        if (f.forged && k === 4) continue;
        const outside = f.outside[k]!;
        if (f.forged && k === 3) {
          w.writePacket(sll2Frame(outside.data, UPLINK, HOST), outside.ts);
          continue;
        }
        const fromClient = inside.data[12] === 192 && inside.data[15] === f.client;
        if (fromClient) {
          w.writePacket(sll2Frame(inside.data, INSIDE, HOST), inside.ts);
          w.writePacket(sll2Frame(outside.data, UPLINK, OUTGOING), inside.ts + 0.000002);
        } else {
          w.writePacket(sll2Frame(outside.data, UPLINK, HOST), inside.ts);
          w.writePacket(sll2Frame(inside.data, INSIDE, OUTGOING), inside.ts + 0.000002);
        }
      }
    }
  }
  w.close();
  return w.packets;
}

/**
 * The first capture's shape over IPv6 (documentation prefixes), as `tcpdump -i any` on one host
 * shows it (Linux cooked v2, each packet once). Returns the packets written.
 */
export function writeIPv6Capture(path: string, flowCount = FLOWS, segments = 24, concurrent = CONCURRENT): number {
  const w = PcapWriter.create(path, { linkType: 276 });
  for (let g = 0; g < flowCount; g += concurrent) {
    const flows: SynthPacket[][] = [];
    for (let i = g; i < Math.min(flowCount, g + concurrent); i++) {
      const client = `2001:db8:1::${(1 + (i % 250)).toString(16)}`;
      const server = `2001:db8:2::${(1 + ((i >> 8) % 250)).toString(16)}`;
      const t = { src: client, sport: 20000 + (i % 40000), dst: server, dport: 9000 };
      const back = { src: server, sport: 9000, dst: client, dport: t.sport };
      flows.push(synthNatFlow({ forward: [{ ifindex: 3, pkttype: 4, tuple: t }], backward: [{ ifindex: 3, pkttype: 0, tuple: back }], clientIsn: (i * 2654435761) >>> 0, serverIsn: (i * 40503 * 65537) >>> 0, segments, start: g, gap: 0.001 }));
    }
    const longest = Math.max(...flows.map((f) => f.length));
    for (let k = 0; k < longest; k++) for (const f of flows) if (f[k]) w.writePacket(f[k]!.data, f[k]!.ts);
  }
  w.close();
  return w.packets;
}

const rate = (packets: number, ms: number) => packets / (ms / 1000) / 1e6;

/** Best of `runs` by wall time (the machine is shared: the best run is the least disturbed). */
async function best(argv: string[], stdout: Stdout, runs: number, file?: string): Promise<Measured> {
  const all: Measured[] = [];
  for (let i = 0; i < runs; i++) all.push(await measure(argv, stdout, file));
  const fastest = all.reduce((a, b) => (b.ms < a.ms ? b : a));
  return { ...fastest, peakMB: Math.max(...all.map((m) => m.peakMB)) };
}

export async function benchExplain(): Promise<void> {
  const dir = '.bench';
  mkdirSync(dir, { recursive: true });
  const path = `${dir}/explain-1m.pcap`;
  const t0 = performance.now();
  const packets = writeExplainCapture(path);
  console.log(`generated ${packets} packets in ${FLOWS} flows (${(statSync(path).size / 1e6).toFixed(0)} MB) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  // The text renderer prints every packet by default, or with -v where it summarises by default.
  const help = spawnSync(process.execPath, [CLI, 'explain', '--help'], { encoding: 'utf8' }).stdout;
  const everyText = /--verbose|^\s+-v[ ,]/m.test(help) ? ['-v'] : [];
  const base = [process.execPath, CLI, 'explain', path, '--kernel', '6.18'];

  let tshark: Measured | null = null;
  const tsharkPath = findTool('tshark');
  if (tsharkPath) {
    tshark = await best([tsharkPath, '-r', path, '-q', '-z', 'conv,tcp'], 'null', 1);
    console.log(`tshark -q -z conv,tcp          ${(tshark.ms / 1000).toFixed(2)} s  ${rate(packets, tshark.ms).toFixed(2)} M packets/s  peak RSS ${tshark.peakMB.toFixed(0)} MB${tshark.code === 0 ? '' : ' (failed)'}`);
  } else console.log('tshark not installed (apt-get install -y tshark): no comparison');

  const rows: Array<[string, string[], Stdout, number]> = [
    ['-o json | cat', ['-o', 'json'], 'pipe', 1],
    ['-o json > file', ['-o', 'json'], 'file', 1],
    ['-o json | slow reader', ['-o', 'json'], 'slow', 2],
    [`text${everyText.length ? ' -v' : ''} | cat`, everyText, 'pipe', 1],
    ['text (what matters) | cat', [], 'pipe', 1],
    ['--only invalid -o json', ['--only', 'invalid', '-o', 'json'], 'pipe', 2],
  ];
  let jsonPipe: Measured | null = null;
  let textPipe: Measured | null = null;
  for (const [label, args, stdout, target] of rows) {
    const slow = stdout === 'slow';
    const m = await best([...base, ...args], stdout, slow ? 1 : 2, `${dir}/explain.out`);
    jsonPipe ??= m; // the first row: -o json | cat
    if (label.startsWith('text (what matters)')) textPipe = m;
    const r = rate(packets, m.ms);
    const vs = tshark ? `, ${(tshark.ms / m.ms).toFixed(1)}× tshark (target ≥ 10×)` : '';
    const mem = tshark ? ` (target ≤ ${(tshark.peakMB / 10).toFixed(0)} MB, 1/10 of tshark's)` : '';
    const speed = slow ? 'paced by the reader' : `${r.toFixed(2)} M packets/s (target ≥ ${target}M/s)${vs}`;
    console.log(`explain ${label.padEnd(24)} ${(m.ms / 1000).toFixed(2)} s (CPU ${(m.cpuMs / 1000).toFixed(2)} s)  ${speed}  peak RSS ${m.peakMB.toFixed(0)} MB${mem}${m.code === 1 ? '' : ` (exit ${m.code})`}`);
  }
  await benchFloors(dir, `${dir}/explain.out`, tshark);
  rmSync(`${dir}/explain.out`, { force: true });

  // The same capture as others write it: pcapng (dumpcap, Wireshark, `tshark -w`: editcap converts
  // it, from tshark's package) and gzip-compressed (read as it is): what the format costs.
  const editcap = findTool('editcap');
  const formats: Array<[string, string]> = [];
  if (editcap && spawnSync(editcap, ['-F', 'pcapng', path, `${path}ng`]).status === 0) formats.push(['pcapng', `${path}ng`]);
  await pipeline(createReadStream(path), createGzip({ level: 1 }), createWriteStream(`${path}.gz`));
  formats.push(['pcap.gz (gzip -1)', `${path}.gz`]);
  for (const [what, file] of formats) {
    const m = await best([process.execPath, CLI, 'explain', file, '--kernel', '6.18', '--only', 'invalid', '-o', 'json'], 'pipe', 2);
    console.log(`explain --only invalid -o json, the first capture as ${what} (${(statSync(file).size / 1e6).toFixed(0)} MB): ${(m.ms / 1000).toFixed(2)} s (CPU ${(m.cpuMs / 1000).toFixed(2)} s), ${rate(packets, m.ms).toFixed(2)} M packets/s, peak RSS ${m.peakMB.toFixed(0)} MB`);
    rmSync(file, { force: true });
  }
  rmSync(path, { force: true });

  // Bounded by the flow table, not by the capture: twice the packets (the same flows, twice as
  // long), the same peak; twice the flows: only what is kept per flow for the summary (tens of
  // bytes in JSON, a connection's summary lines in text) adds memory. JSON and text alike. On the
  // longer capture tshark runs too: what start-up costs weighs half as much, and tshark's memory
  // follows the capture where explain's does not, so the targets are printed against it again.
  const path2 = `${dir}/explain-2m.pcap`;
  for (const [what, flowCount, segments] of [['twice the packets', FLOWS, 51], ['twice the flows', 2 * FLOWS, 24]] as const) {
    const packets2 = writeExplainCapture(path2, flowCount, segments);
    const longer = what === 'twice the packets';
    const tshark2 = longer && tsharkPath ? await best([tsharkPath, '-r', path2, '-q', '-z', 'conv,tcp'], 'null', 1) : null;
    const head = `${what} (${(packets2 / 1e6).toFixed(2)}M packets / ${flowCount} flows)`;
    if (tshark2) console.log(`tshark -q -z conv,tcp, ${head}: ${(tshark2.ms / 1000).toFixed(2)} s, ${rate(packets2, tshark2.ms).toFixed(2)} M packets/s, peak RSS ${tshark2.peakMB.toFixed(0)} MB`);
    const runs: Array<readonly [string, readonly string[], number]> = [
      ['-o json | cat', ['-o', 'json'], 1],
      [`text${everyText.length ? ' -v' : ''} | cat`, everyText, 1],
    ];
    if (longer) runs.push(['--only invalid -o json', ['--only', 'invalid', '-o', 'json'], 2]);
    for (const [label, args, target] of runs) {
      const m2 = await best([process.execPath, CLI, 'explain', path2, '--kernel', '6.18', ...args], 'pipe', 1);
      const vs = tshark2 ? ` (target ≥ ${target}M/s), ${(tshark2.ms / m2.ms).toFixed(1)}× tshark (target ≥ 10×)` : '';
      const mem = tshark2 ? ` (target ≤ ${(tshark2.peakMB / 10).toFixed(0)} MB, 1/10 of tshark's)` : '';
      console.log(`explain ${label}, ${head}: ${(m2.ms / 1000).toFixed(2)} s (CPU ${(m2.cpuMs / 1000).toFixed(2)} s), ${rate(packets2, m2.ms).toFixed(2)} M packets/s${vs}, peak RSS ${m2.peakMB.toFixed(0)} MB${mem}`);
    }
  }
  rmSync(path2, { force: true });

  // What memory follows: the flows the kernel keeps at once. 16,000 live at a time (160,000 in
  // all, 10 segments each): per live flow, what the replay keeps (model entry, NAT binding, gap
  // state) and its heap's slack.
  const live = 16_000;
  const packets3 = writeExplainCapture(path2, 10 * live, 10, live);
  // (JSON against the first capture's JSON, text — what matters — against its text)
  for (const [label, args, first] of [['-o json', ['-o', 'json'], jsonPipe], ['text', [], textPipe]] as const) {
    const m3 = await best([process.execPath, CLI, 'explain', path2, '--kernel', '6.18', ...args], 'pipe', 1);
    const perLive = first ? `; ${(((m3.peakMB - first.peakMB) * 1024) / (live - CONCURRENT)).toFixed(1)} KB per flow live at once, against the ${CONCURRENT} of the first capture` : '';
    console.log(`explain ${label} | cat, ${live} flows live at once (${(packets3 / 1e6).toFixed(2)}M packets / ${10 * live} flows): ${(m3.ms / 1000).toFixed(2)} s (CPU ${(m3.cpuMs / 1000).toFixed(2)} s), ${rate(packets3, m3.ms).toFixed(2)} M packets/s, peak RSS ${m3.peakMB.toFixed(0)} MB${perLive}`);
  }
  rmSync(path2, { force: true });

  // What memory does not follow: the capture's length in connections. 400,000 short ones (10
  // packets each, 200 at a time, none forged: none stuck in the table): the summary's rows past
  // the first 32,768 are written to a store once final (on disk past 2 MiB).
  const many = 400_000;
  const packets4 = writeExplainCapture(path2, many, 2, CONCURRENT, 0);
  for (const [label, args] of [['--only invalid -o json', ['--only', 'invalid', '-o', 'json']], ['-o json | cat', ['-o', 'json']]] as const) {
    const m4 = await best([process.execPath, CLI, 'explain', path2, '--kernel', '6.18', ...args], 'pipe', 1);
    console.log(`explain ${label}, ${many} flows (${(packets4 / 1e6).toFixed(2)}M packets, 200 at a time): ${(m4.ms / 1000).toFixed(2)} s (CPU ${(m4.cpuMs / 1000).toFixed(2)} s), ${rate(packets4, m4.ms).toFixed(2)} M packets/s, peak RSS ${m4.peakMB.toFixed(0)} MB`);
  }
  rmSync(path2, { force: true });
  // IPv6: what a packet of a known tuple costs is the same as IPv4's (its texts and keys cached too)
  const v6 = `${dir}/explain-v6.pcap`;
  const packets6 = writeIPv6Capture(v6);
  for (const [label, args] of [['--only invalid -o json', ['--only', 'invalid', '-o', 'json']], ['-o json | cat', ['-o', 'json']]] as const) {
    const m6 = await best([process.execPath, CLI, 'explain', v6, '--kernel', '6.18', ...args], 'pipe', 1);
    console.log(`explain ${label}, IPv6 (${(packets6 / 1e6).toFixed(2)}M packets / ${FLOWS} flows, tcpdump -i any): ${(m6.ms / 1000).toFixed(2)} s (CPU ${(m6.cpuMs / 1000).toFixed(2)} s), ${rate(packets6, m6.ms).toFixed(2)} M packets/s, peak RSS ${m6.peakMB.toFixed(0)} MB`);
  }
  rmSync(v6, { force: true });
  await benchNatHost(dir, tsharkPath, everyText);
  await benchSynFlood(dir, tsharkPath);
}

/**
 * What no replay here gets under, measured without explain's own work: what the targets above
 * are up against on this machine. Node idle (its binary's pages and runtime); explain of the
 * smallest capture given an output thread (what any run that writes every packet starts from);
 * and the first capture's JSON (`jsonOut`, as `-o json > file` wrote it) moved through a pipe by
 * `cat F | cat`, no ctprobe: the wall and CPU time (both cats, from their shell's reaped
 * children) that writing every packet costs before any packet is read or modelled.
 */
async function benchFloors(dir: string, jsonOut: string, tshark: Measured | null): Promise<void> {
  const idle = await measure([process.execPath, '-e', 'setTimeout(() => {}, 300)'], 'null');
  console.log(`floor: node itself, idle: peak RSS ${idle.peakMB.toFixed(0)} MB`);
  const small = `${dir}/explain-small.pcap`;
  const packets = writeExplainCapture(small, 1000);
  const smallMB = statSync(small).size / 1e6;
  const m = await best([process.execPath, CLI, 'explain', small, '--kernel', '6.18', '-o', 'json'], 'pipe', 2);
  rmSync(small, { force: true });
  console.log(`floor: explain -o json | cat of ${packets} packets (${smallMB.toFixed(1)} MB: about the smallest capture given an output thread, 4 MiB): ${(m.ms / 1000).toFixed(2)} s, peak RSS ${m.peakMB.toFixed(0)} MB`);
  const size = statSync(jsonOut).size;
  if (size === 0) return;
  // (the shell's cutime + cstime once both cats are reaped: fields 16 and 17 of its stat)
  const t0 = performance.now();
  const r = spawnSync('sh', ['-c', `cat "$1" | cat > /dev/null; cat /proc/$$/stat`, 'sh', jsonOut], { encoding: 'utf8' });
  const ms = performance.now() - t0;
  const stat = r.stdout ?? '';
  const f = stat.slice(stat.lastIndexOf(')') + 2).trim().split(' ');
  const cpuMs = ((Number(f[13]) + Number(f[14])) * 1000) / 100;
  if (r.status !== 0 || !Number.isFinite(cpuMs)) {
    console.log(`floor: the first capture's JSON through a pipe: not measured (sh -c 'cat F | cat' ${r.error ? r.error.message : `exited ${r.status}`})`);
    return;
  }
  const budget = tshark ? `; 10× tshark is ${(tshark.ms / 10000).toFixed(2)} s for the whole run` : '';
  console.log(`floor: the first capture's JSON (${(size / 1e6).toFixed(0)} MB) through a pipe, no ctprobe (cat F | cat): ${(ms / 1000).toFixed(2)} s, CPU ${(cpuMs / 1000).toFixed(2)} s${budget}`);
}

/**
 * What a user on a NAT host captures: `tcpdump -i any` (Linux cooked v2), every packet before and
 * after NAT, TCP timestamps on every segment (writeNatHostCapture). Copies are recognised and
 * dropped, NAT is learned from them, every connection's packets name it through NAT. Rates are
 * of the file's records (what tshark reads too).
 */
export async function benchNatHost(dir: string, tsharkPath: string | null, everyText: readonly string[] = ['-v']): Promise<void> {
  const path = `${dir}/explain-nat-host.pcap`;
  const records = writeNatHostCapture(path);
  console.log(`a NAT host's tcpdump -i any: ${(records / 1e6).toFixed(2)}M records (${FLOWS} connections through MASQUERADE, each packet before and after NAT; TCP timestamps)`);
  const head = 'NAT host';
  const tshark = tsharkPath ? await best([tsharkPath, '-r', path, '-q', '-z', 'conv,tcp'], 'null', 1) : null;
  if (tshark) console.log(`${head}: tshark -q -z conv,tcp ${(tshark.ms / 1000).toFixed(2)} s, ${rate(records, tshark.ms).toFixed(2)} M records/s, peak RSS ${tshark.peakMB.toFixed(0)} MB`);
  for (const [label, args, target] of [
    ['--only invalid -o json', ['--only', 'invalid', '-o', 'json'], 2],
    ['-o json | cat', ['-o', 'json'], 1],
    [`text${everyText.length ? ' -v' : ''} | cat`, everyText, 1],
    ['text (what matters) | cat', [], 1],
  ] as const) {
    const m = await best([process.execPath, CLI, 'explain', path, '--kernel', '6.18', ...args], 'pipe', label.startsWith('--only') ? 2 : 1);
    const vs = tshark ? `, ${(tshark.ms / m.ms).toFixed(1)}× tshark (target ≥ 10×)` : '';
    const mem = tshark ? ` (target ≤ ${(tshark.peakMB / 10).toFixed(0)} MB, 1/10 of tshark's)` : '';
    console.log(`${head}: explain ${label.padEnd(26)} ${(m.ms / 1000).toFixed(2)} s (CPU ${(m.cpuMs / 1000).toFixed(2)} s), ${rate(records, m.ms).toFixed(2)} M records/s (target ≥ ${target}M/s)${vs}, peak RSS ${m.peakMB.toFixed(0)} MB${mem}${m.code === 1 ? '' : ` (exit ${m.code})`}`);
  }
  rmSync(path, { force: true });
}

export async function benchSynFlood(dir: string, tsharkPath: string | null): Promise<void> {
  // The worst case for a table: a SYN flood, every SYN a new entry the kernel keeps (SYN_SENT,
  // 120 s; a flood of 250,000 in 2.5 s: all live at the end). What an entry costs, from the
  // slope between a flood of 25,000 and one of 250,000; next to tshark on the same file.
  const flood = `${dir}/explain-flood.pcap`;
  const small = writeSynFlood(flood, 25_000);
  const smallRuns = new Map<string, Measured>();
  const floodRows = [['--only invalid -o json', ['--only', 'invalid', '-o', 'json']], ['-o json | cat', ['-o', 'json']], ['text | cat', []]] as const;
  for (const [label, args] of floodRows) smallRuns.set(label, await best([process.execPath, CLI, 'explain', flood, '--kernel', '6.18', ...args], 'pipe', 1));
  const syns = writeSynFlood(flood, 250_000);
  const tsharkFlood = tsharkPath ? await best([tsharkPath, '-r', flood, '-q', '-z', 'conv,tcp'], 'null', 1) : null;
  if (tsharkFlood) console.log(`SYN flood (${syns} SYNs, as many entries live): tshark -q -z conv,tcp ${(tsharkFlood.ms / 1000).toFixed(2)} s, ${rate(syns, tsharkFlood.ms).toFixed(2)} M packets/s, peak RSS ${tsharkFlood.peakMB.toFixed(0)} MB`);
  for (const [label, args] of floodRows) {
    const m = await best([process.execPath, CLI, 'explain', flood, '--kernel', '6.18', ...args], 'pipe', 1);
    const perEntry = ((m.peakMB - smallRuns.get(label)!.peakMB) * 1024) / (syns - small);
    const vs = tsharkFlood ? `, ${(tsharkFlood.ms / m.ms).toFixed(1)}× tshark, ${((100 * m.peakMB) / tsharkFlood.peakMB).toFixed(0)} % of its memory` : '';
    console.log(`SYN flood (${syns} SYNs): explain ${label.padEnd(22)} ${(m.ms / 1000).toFixed(2)} s (CPU ${(m.cpuMs / 1000).toFixed(2)} s), ${rate(syns, m.ms).toFixed(2)} M packets/s, peak RSS ${m.peakMB.toFixed(0)} MB: ${perEntry.toFixed(2)} KB per live entry${vs}`);
  }
  // Past nf_conntrack_max (the kernel's default here, 262,144): the table keeps that many and
  // early-drops unassured entries for the rest, as the kernel does; against no limit.
  const big = writeSynFlood(flood, 1_000_000);
  const tsharkBig = tsharkPath ? await best([tsharkPath, '-r', flood, '-q', '-z', 'conv,tcp'], 'null', 1) : null;
  if (tsharkBig) console.log(`SYN flood past nf_conntrack_max (${big} SYNs): tshark -q -z conv,tcp ${(tsharkBig.ms / 1000).toFixed(2)} s, peak RSS ${tsharkBig.peakMB.toFixed(0)} MB`);
  for (const max of [262144, 0]) {
    const m = await best([process.execPath, CLI, 'explain', flood, '--kernel', '6.18', '--only', 'invalid', '-o', 'json', '--conntrack-max', String(max)], 'pipe', 1);
    const vs = tsharkBig ? `, ${(tsharkBig.ms / m.ms).toFixed(1)}× tshark, ${((100 * m.peakMB) / tsharkBig.peakMB).toFixed(0)} % of its memory` : '';
    console.log(`SYN flood past nf_conntrack_max (${big} SYNs): explain --only invalid --conntrack-max ${String(max).padEnd(6)} ${(m.ms / 1000).toFixed(2)} s (CPU ${(m.cpuMs / 1000).toFixed(2)} s), ${rate(big, m.ms).toFixed(2)} M packets/s, peak RSS ${m.peakMB.toFixed(0)} MB${vs} (target with the limit: memory bounded by the table)`);
  }
  rmSync(flood, { force: true });
}

/** `n` SYNs from 250 sources × their ports to one server, 100,000 a second (documentation addresses). */
export function writeSynFlood(path: string, n: number): number {
  const w = PcapWriter.create(path, { linkType: 101 });
  const server = parseIP('198.51.100.1');
  const clients = Array.from({ length: 250 }, (_, i) => parseIP(`203.0.113.${i + 1}`));
  for (let i = 0; i < n; i++) {
    const c = clients[i % 250]!;
    const tcp = encodeTcp({ srcPort: 1024 + (Math.floor(i / 250) % 64000), dstPort: 9000, seq: (i * 2654435761) >>> 0, ack: 0, flags: 0x02, window: 64240 }, c, server);
    w.writePacket(encodeIPv4({ src: c, dst: server, protocol: 6, id: i & 0xffff }, tcp), 1 + i / 100_000);
  }
  w.close();
  return w.packets;
}
