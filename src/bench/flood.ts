/**
 * The probe server under a SYN flood, inside the lab's NAT topology (one cell's namespaces) plus a
 * flooder namespace wired straight to the server (203.0.113.0/24, so the flood does not fill the
 * NAT host's conntrack table): the flooder (ctprobe's own sender: SYNs from source ports 1024–32767,
 * whole IPv4 packets laid out once and sent with sendmmsg from a packet socket) floods at full speed while a client behind the
 * NAT and a control client on the NAT host connect normally; the flood starts before they connect
 * and stops once they are done, within its bounds (a SYN count and seconds). Reports what was sent
 * and how fast (the target is about the server keeping up at ≥ 150k segments/s, so the flood must
 * reach it), what the server classified and what it cost it, the raw socket's kernel drop counter
 * (/proc/net/raw), evictions, and the verdicts of the legitimate connections (NATed: reset on
 * kernels whose conntrack marks the segment INVALID; control: clean). Used by `npm run bench` and by
 * the namespace test. Everything it creates is removed on success, failure, SIGINT and SIGTERM.
 */
import { fileURLToPath } from 'node:url';
import type { WireEvent } from '../events.js';
import { readFileSync } from 'node:fs';
import { setPriority } from 'node:os';
import { run, runSync } from '../host/exec.js';
import { CLI_PATH, jsonLines, spawnNode, STARTUP_MS, waitFor } from '../lab/spawn.js';
import { newRunId, removeRunState, writeRunState } from '../lab/state.js';
import { ADDR, cellNamespaces, createCell } from '../lab/topology.js';
import { SystemError } from '../errors.js';

const PEER = fileURLToPath(new URL('./rawsock-peer.js', import.meta.url));
const PORT = 9950;
const FLOOD_PORTS: [number, number] = [1024, 32767];
const FLOODER = '203.0.113.2';
const FLOOD_TARGET = '203.0.113.1';
const FLOODER_MAC = '02:00:cb:00:71:02';
const TARGET_MAC = '02:00:cb:00:71:01';

export interface FloodOptions {
  /** The server's --table-size. */
  tableSize: number;
  /**
   * Bounds of the flood: SYNs and seconds. It ends earlier, once the legitimate clients are done
   * (they connect while it runs).
   */
  count: number;
  seconds: number;
  /** Connections per legitimate client. */
  legit: number;
}

export interface FloodResult {
  sent: number;
  /** How the flooder ended ("exit 0", or a signal / its first error line). */
  flooderExit: string;
  /** SYNs per second while the flood was sent, and for how long. */
  senderRate: number;
  floodSeconds: number;
  /** The flooder's CPU per SYN, µs (with the receiving kernel's work: veth delivers in its softirq). */
  senderCpuUs: number | null;
  /** Segments the server classified (its summary): the flood plus the legitimate connections'. */
  segments: number;
  /** The raw socket's drop counter in the kernel (segments that never reached the server). */
  drops: number | null;
  evicted: number;
  /** The server's CPU (user + system, /proc) per segment it classified, µs. */
  serverCpuUs: number | null;
  serverRssMB: number | null;
  /** Verdicts the server gave the legitimate connections, by client. */
  nat: string[];
  control: string[];
  /** What the clients themselves saw. */
  natOutcomes: string[];
  controlOutcomes: string[];
  /** Legitimate connections whose handshake the server saw while the flood was being sent. */
  legitDuringFlood: number;
  /** When the server saw each legitimate handshake, ms after the flood's start (null: never); the flood lasted floodSeconds. */
  legitAtMs: Array<number | null>;
  /** How the server ended, if it did before the run stopped it (a crash: its first stderr lines). */
  serverGone: string | null;
  /** The namespaces the run created (all removed before it returns). */
  namespaces: string[];
}

/** The largest drop count of the raw TCP sockets in a namespace (/proc/net/raw, last column). */
async function rawDrops(ns: string): Promise<number | null> {
  const r = await run('cat', ['/proc/net/raw'], { netns: ns, allowFail: true });
  let max: number | null = null;
  for (const l of r.stdout.split('\n').slice(1)) {
    const f = l.trim().split(/\s+/);
    if (f.length < 13 || !f[1]?.endsWith(':0006')) continue;
    max = Math.max(max ?? 0, Number(f[f.length - 1]));
  }
  return max;
}

function rssMB(pid: number | undefined): Promise<number | null> {
  if (!pid) return Promise.resolve(null);
  return run('sh', ['-c', `ps -o rss= --ppid ${pid} -p ${pid} | sort -n | tail -1`], { allowFail: true }).then((r) => (r.stdout.trim() ? Math.round(Number(r.stdout.trim()) / 1024) : null));
}

/** A process's CPU time so far (user + system), seconds; null once it is gone. */
function cpuSeconds(pid: number | undefined): number | null {
  if (!pid) return null;
  try {
    // utime and stime: fields 14 and 15, counted after the parenthesized command name
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ');
    return (Number(f[11]) + Number(f[12])) / CLOCK_TICKS;
  } catch {
    return null;
  }
}
const CLOCK_TICKS = 100; // USER_HZ, 100 on every Linux architecture ctprobe runs on

export async function synFlood(o: FloodOptions): Promise<FloodResult> {
  const runId = newRunId();
  const ns = cellNamespaces(runId, 0);
  // Lab-named namespaces with no live run state are leftovers to `lab clean` (another lab's, run
  // at the same time): say that they are this process's.
  writeRunState({ run: runId, pid: process.pid, startedAt: new Date().toISOString(), scenario: 'flood', keep: false });
  const flooderNs = ns.server.replace(/-s$/, '-f');
  const all = [ns.container, ns.host, ns.server, flooderNs];
  const children: Array<{ kill(sig?: NodeJS.Signals): boolean }> = [];
  let torn = false;
  const teardown = async () => {
    if (torn) return;
    torn = true;
    for (const c of children) c.kill('SIGKILL');
    await Promise.all(all.map((n) => run('ip', ['netns', 'del', n], { allowFail: true }).catch(() => undefined)));
    removeRunState(runId);
  };
  // Ctrl-C / SIGTERM mid-flood: the same teardown, then the conventional exit code; a synchronous
  // last resort on any other exit.
  const onSignal = (sig: NodeJS.Signals) => void teardown().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
  const onExit = () => {
    if (torn) return;
    for (const c of children) c.kill('SIGKILL');
    for (const n of all) runSync('ip', ['netns', 'del', n], { allowFail: true });
    removeRunState(runId);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', onExit);
  try {
    await createCell(ns, 'none');
    // Fixed link addresses: the flooder's packet socket sends to the server's, and its IP stack
    // (used by nothing else) knows it for good.
    await run('ip', ['-batch', '-'], { input: `netns add ${flooderNs}\nlink add eth0 address ${FLOODER_MAC} netns ${flooderNs} type veth peer name eth1 address ${TARGET_MAC} netns ${ns.server}\n` });
    await run('ip', ['-n', flooderNs, '-batch', '-'], { input: `link set lo up\nlink set eth0 up\naddr add ${FLOODER}/24 dev eth0\nneigh add ${FLOOD_TARGET} lladdr ${TARGET_MAC} dev eth0 nud permanent\n` });
    // The server's kernel answers each flood SYN (SYN/ACK or cookie) towards a spoofed source
    // that cannot be reached: a blackhole route, so it builds no SYN/ACK (what reaches the raw
    // socket is the flood itself, and the sender's softirq, where veth delivers, does not pay for
    // a reply per SYN). Reverse-path filtering off, or the route would drop the SYNs on input.
    await run('ip', ['-n', ns.server, '-batch', '-'], { input: `link set eth1 up\naddr add ${FLOOD_TARGET}/24 dev eth1\nroute add blackhole ${FLOODER}/32\n` });
    await run('sysctl', ['-qw', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.eth1.rp_filter=0'], { netns: ns.server });

    const events: WireEvent[] = [];
    const server = spawnNode(ns.server, CLI_PATH, ['server', '--port', String(PORT), '--bind', '0.0.0.0', '--table-size', String(o.tableSize), '--hold', '600ms', '--linger', '600ms', '-o', 'json']);
    children.push(server);
    const serverDone = jsonLines(server, (e) => events.push(e));
    let serverErr = '';
    server.stderr?.setEncoding('utf8').on('data', (d: string) => (serverErr += d.slice(0, 4000)));
    let serverExit: string | null = null;
    server.on('close', (code, signal) => (serverExit = `exit ${code ?? signal}${serverErr ? `: ${serverErr.trim().split('\n').slice(0, 6).join(' | ')}` : ''}`));
    if (!(await waitFor(server, events, (e) => e.type === 'listening', STARTUP_MS))) {
      // (exited: its stderr, once its streams closed)
      if (server.exitCode !== null || server.signalCode !== null) await new Promise((resolve) => setTimeout(resolve, 200));
      throw new SystemError(`flood: the probe server did not start (${serverExit ?? `not listening after ${STARTUP_MS / 1000} s`})`);
    }
    // The flooder stands in for a remote attacker but shares this machine's cores with the server
    // (and, here, with other jobs): the server under test gets a higher priority so a busy
    // scheduler does not starve it behind the flooder. Its CPU use is what the flood costs it.
    if (server.pid) setPriority(server.pid, -5);
    const serverCpu0 = cpuSeconds(server.pid);

    // Whole IPv4 packets from a packet socket on eth0: the flooder's own IP stack is not on the path.
    const flooder = spawnNode(flooderNs, PEER, ['syn', FLOODER, FLOOD_TARGET, String(PORT), String(o.count), String(o.seconds), ...FLOOD_PORTS.map(String), 'eth0', TARGET_MAC]);
    children.push(flooder);
    let floodOut = '';
    let floodErr = '';
    let onSending: () => void = () => undefined;
    const sending = new Promise<void>((r) => (onSending = r));
    flooder.stdout?.setEncoding('utf8').on('data', (d: string) => {
      floodOut += d;
      if (floodOut.includes('"sending"')) onSending();
    });
    flooder.stderr?.setEncoding('utf8').on('data', (d: string) => (floodErr += d.slice(0, 2000)));
    const flooded = new Promise<string>((resolve) => flooder.on('close', (code, signal) => resolve(`exit ${code ?? signal}${floodErr ? `: ${floodErr.trim().split('\n')[0]}` : ''}`)));

    const client = (where: string, outcomes: string[]) => {
      const c = spawnNode(where, CLI_PATH, ['client', `${ADDR.server}:${PORT}`, '--count', String(o.legit), '--interval', '100ms', '--timeout', '300ms', '--connect-timeout', '5s', '-o', 'json']);
      children.push(c);
      const local: number[] = [];
      return jsonLines(c, (e) => {
        if (e.type === 'attempt') {
          outcomes.push(e.outcome);
          if (e.local) local.push(Number(e.local.slice(e.local.lastIndexOf(':') + 1)));
        }
      }).then(() => local);
    };
    const natOutcomes: string[] = [];
    const controlOutcomes: string[] = [];
    // The legitimate clients connect once the flood is on (or the flooder gave up), and the flood
    // goes on until they are done (within its bounds).
    await Promise.race([sending, flooded]);
    const [natPorts, controlPorts] = await Promise.all([client(ns.container, natOutcomes), client(ns.host, controlOutcomes)]);
    // The server stamps a handshake when it reads it, behind the flood's backlog on a busy
    // machine: the flood goes on until it has read every legitimate handshake (within 3 s), so
    // one that reached it during the flood is not read after the flood's end.
    const seen = () => new Set(events.flatMap((e) => (e.type === 'established' ? [Number(e.conn.slice(e.conn.lastIndexOf(':') + 1))] : [])));
    for (let waited = 0; waited < 3000 && ![...natPorts, ...controlPorts].every((p) => seen().has(p)); waited += 20) await new Promise((r) => setTimeout(r, 20));
    flooder.kill('SIGTERM');
    const flooderExit = await flooded;
    // Let the last verdicts come in (hold + linger), then read the drop counter and stop.
    await new Promise((r) => setTimeout(r, 1500));
    const serverGone = serverExit as string | null; // the server ended before we stopped it
    const drops = await rawDrops(ns.server);
    const serverCpu1 = cpuSeconds(server.pid);
    const serverRssMB = await rssMB(server.pid);
    server.kill('SIGTERM');
    await serverDone;

    const verdictByPort = new Map<number, string>();
    const establishedAt = new Map<number, number>();
    const portOf = (conn: string) => Number(conn.slice(conn.lastIndexOf(':') + 1));
    for (const e of events) {
      if (e.type === 'closed') verdictByPort.set(portOf(e.conn), e.verdict);
      if (e.type === 'established') establishedAt.set(portOf(e.conn), e.ts);
    }
    const summary = events.find((e) => e.type === 'server-summary');
    const segments = summary?.type === 'server-summary' ? summary.segments : 0;
    const flood = JSON.parse(floodOut.trim().split('\n').pop() || '{}') as { sent?: number; rate?: number; seconds?: number; start?: number; end?: number; cpuUsPerSyn?: number };
    const during = (p: number) => {
      const t = establishedAt.get(p);
      return t !== undefined && flood.start !== undefined && flood.end !== undefined && t >= flood.start && t <= flood.end;
    };
    return {
      sent: flood.sent ?? 0,
      flooderExit,
      senderRate: flood.rate ?? 0,
      floodSeconds: flood.seconds ?? 0,
      senderCpuUs: flood.cpuUsPerSyn ?? null,
      segments,
      drops,
      evicted: summary?.type === 'server-summary' ? summary.evicted : 0,
      serverCpuUs: serverCpu0 !== null && serverCpu1 !== null && segments > 0 ? ((serverCpu1 - serverCpu0) * 1e6) / segments : null,
      serverRssMB,
      nat: natPorts.map((p) => verdictByPort.get(p) ?? 'none'),
      control: controlPorts.map((p) => verdictByPort.get(p) ?? 'none'),
      natOutcomes,
      controlOutcomes,
      legitDuringFlood: [...natPorts, ...controlPorts].filter(during).length,
      legitAtMs: [...natPorts, ...controlPorts].map((p) => {
        const t = establishedAt.get(p);
        return t === undefined || flood.start === undefined ? null : t - flood.start;
      }),
      serverGone,
      namespaces: all,
    };
  } finally {
    await teardown();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('exit', onExit);
  }
}

const TARGET_RATE = 150_000;

/**
 * `npm run bench`: a SYN flood (at most 2,000,000 SYNs / 5 s, until the legitimate clients are
 * done) against a 16,384-entry table (every SYN evicts).
 */
export async function benchFlood(): Promise<void> {
  if (process.geteuid?.() !== 0) throw new SystemError('the flood benchmark needs root (namespaces, raw sockets)');
  const r = await synFlood({ tableSize: 16_384, count: 2_000_000, seconds: 5, legit: 2 });
  const k = (n: number) => `${Math.round(n / 1000)}k`;
  const us = (n: number | null) => (n === null ? '?' : n.toFixed(1));
  const extra = r.segments - r.sent; // the legitimate connections' segments, if none of the flood was lost
  const keptUp = r.senderRate >= TARGET_RATE && r.drops === 0 && extra >= 0;
  console.log(
    `flood: ${r.sent} SYNs in ${r.floodSeconds.toFixed(2)} s = ${k(r.senderRate)} SYN/s (target ≥ ${k(TARGET_RATE)}/s), sender ${us(r.senderCpuUs)} µs CPU/SYN; ` +
      `server classified ${r.segments} segments (${extra >= 0 ? `the flood's + ${extra} of the legitimate connections` : `${-extra} fewer than the flood's`}), raw socket drops ${r.drops ?? 'unknown'} (target 0), ` +
      `${us(r.serverCpuUs)} µs CPU/segment (~${r.serverCpuUs ? k(1e6 / r.serverCpuUs) : '?'}/s per core); ${r.evicted} evictions; server RSS ${r.serverRssMB ?? '?'} MB; ` +
      `target (the server keeps up at ≥ ${k(TARGET_RATE)} segments/s, 0 loss): ${keptUp ? 'met' : 'NOT met'}`,
  );
  if (r.serverGone) console.log(`  the server ended before the run stopped it: ${r.serverGone}`);
  console.log(`  legitimate connections during the flood (${r.legitDuringFlood} of ${r.nat.length + r.control.length} handshakes while it was sent): NATed client ${r.nat.join(',')} (client saw ${r.natOutcomes.join(',')}), control ${r.control.join(',')} (client saw ${r.controlOutcomes.join(',')})`);
}
