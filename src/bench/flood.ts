/**
 * The probe server under a bounded SYN flood, inside the lab's NAT topology (one cell's
 * namespaces) plus a flooder namespace wired straight to the server (203.0.113.0/24, so the flood
 * does not fill the NAT host's conntrack table): the flooder sends SYNs from source ports
 * 1024–32767 (ctprobe's own raw sender, a bounded count) while a client behind the NAT and a
 * control client on the NAT host connect normally. Reports what was sent, what the server
 * classified, the raw socket's kernel drop counter (/proc/net/raw), evictions, and the verdicts of
 * the legitimate connections (NATed: reset on kernels whose conntrack marks the segment INVALID;
 * control: clean). Used by `npm run bench` and by the namespace test.
 */
import { fileURLToPath } from 'node:url';
import type { WireEvent } from '../events.js';
import { run } from '../host/exec.js';
import { CLI_PATH, jsonLines, spawnNode, STARTUP_MS, waitFor } from '../lab/spawn.js';
import { newRunId, removeRunState, writeRunState } from '../lab/state.js';
import { ADDR, cellNamespaces, createCell } from '../lab/topology.js';
import { SystemError } from '../errors.js';

const PEER = fileURLToPath(new URL('./rawsock-peer.js', import.meta.url));
const PORT = 9950;
const FLOOD_PORTS: [number, number] = [1024, 32767];
const FLOODER = '203.0.113.2';
const FLOOD_TARGET = '203.0.113.1';

export interface FloodOptions {
  /** The server's --table-size. */
  tableSize: number;
  /** SYNs to send (bounded), and the sender's time bound. */
  count: number;
  seconds: number;
  /** Connections per legitimate client. */
  legit: number;
}

export interface FloodResult {
  sent: number;
  /** How the flooder ended ("exit 0", or a signal / its first error line). */
  flooderExit: string;
  senderRate: number;
  /** Segments the server classified (its summary): the flood plus the legitimate connections'. */
  segments: number;
  /** The raw socket's drop counter in the kernel (segments that never reached the server). */
  drops: number | null;
  evicted: number;
  serverRssMB: number | null;
  /** Verdicts the server gave the legitimate connections, by client. */
  nat: string[];
  control: string[];
  /** What the clients themselves saw. */
  natOutcomes: string[];
  controlOutcomes: string[];
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

export async function synFlood(o: FloodOptions): Promise<FloodResult> {
  const runId = newRunId();
  const ns = cellNamespaces(runId, 0);
  // Lab-named namespaces with no live run state are leftovers to `lab clean` (another lab's, run
  // at the same time): say that they are this process's.
  writeRunState({ run: runId, pid: process.pid, startedAt: new Date().toISOString(), scenario: 'flood', keep: false });
  const flooderNs = ns.server.replace(/-s$/, '-f');
  const all = [ns.container, ns.host, ns.server, flooderNs];
  const children: Array<{ kill(sig?: NodeJS.Signals): boolean }> = [];
  try {
    await createCell(ns, 'none');
    await run('ip', ['-batch', '-'], { input: `netns add ${flooderNs}\nlink add eth0 netns ${flooderNs} type veth peer name eth1 netns ${ns.server}\n` });
    await run('ip', ['-n', flooderNs, '-batch', '-'], { input: `link set lo up\nlink set eth0 up\naddr add ${FLOODER}/24 dev eth0\n` });
    await run('ip', ['-n', ns.server, '-batch', '-'], { input: `link set eth1 up\naddr add ${FLOOD_TARGET}/24 dev eth1\n` });
    // The server's SYN/ACKs to flood ports would draw RSTs from the NAT host: drop them, so what
    // reaches the raw socket is the flood itself (legitimate clients use ephemeral ports ≥ 32768).
    await run('iptables', ['-A', 'OUTPUT', '-p', 'tcp', '--sport', String(PORT), '--dport', FLOOD_PORTS.join(':'), '-j', 'DROP'], { netns: ns.server });

    const events: WireEvent[] = [];
    const server = spawnNode(ns.server, CLI_PATH, ['server', '--port', String(PORT), '--bind', '0.0.0.0', '--table-size', String(o.tableSize), '--hold', '600ms', '--linger', '600ms', '-o', 'json']);
    children.push(server);
    const serverDone = jsonLines(server, (e) => events.push(e));
    if (!(await waitFor(server, events, (e) => e.type === 'listening', STARTUP_MS))) throw new SystemError('flood: the probe server did not start');

    const flooder = spawnNode(flooderNs, PEER, ['syn', FLOODER, FLOOD_TARGET, String(PORT), String(o.count), String(o.seconds), ...FLOOD_PORTS.map(String)]);
    children.push(flooder);
    let floodOut = '';
    let floodErr = '';
    flooder.stdout?.setEncoding('utf8').on('data', (d: string) => (floodOut += d));
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
    // The legitimate clients connect while the flood runs.
    await new Promise((r) => setTimeout(r, 100));
    const [natPorts, controlPorts] = await Promise.all([client(ns.container, natOutcomes), client(ns.host, controlOutcomes)]);
    const flooderExit = await flooded;
    // Let the last verdicts come in (hold + linger), then read the drop counter and stop.
    await new Promise((r) => setTimeout(r, 1500));
    const drops = await rawDrops(ns.server);
    const serverRssMB = await rssMB(server.pid);
    server.kill('SIGTERM');
    await serverDone;

    const verdictByPort = new Map<number, string>();
    for (const e of events) if (e.type === 'closed') verdictByPort.set(Number(e.conn.slice(e.conn.lastIndexOf(':') + 1)), e.verdict);
    const summary = events.find((e) => e.type === 'server-summary');
    const flood = JSON.parse(floodOut.trim().split('\n').pop() || '{}') as { sent?: number; rate?: number };
    return {
      sent: flood.sent ?? 0,
      flooderExit,
      senderRate: flood.rate ?? 0,
      segments: summary?.type === 'server-summary' ? summary.segments : 0,
      drops,
      evicted: summary?.type === 'server-summary' ? summary.evicted : 0,
      serverRssMB,
      nat: natPorts.map((p) => verdictByPort.get(p) ?? 'none'),
      control: controlPorts.map((p) => verdictByPort.get(p) ?? 'none'),
      natOutcomes,
      controlOutcomes,
      namespaces: all,
    };
  } finally {
    for (const c of children) c.kill('SIGKILL');
    await Promise.all(all.map((n) => run('ip', ['netns', 'del', n], { allowFail: true }).catch(() => undefined)));
    removeRunState(runId);
  }
}

/** `npm run bench`: a 300,000-SYN flood against a 16,384-entry table (every SYN evicts). */
export async function benchFlood(): Promise<void> {
  if (process.geteuid?.() !== 0) throw new SystemError('the flood benchmark needs root (namespaces, raw sockets)');
  const r = await synFlood({ tableSize: 16_384, count: 300_000, seconds: 5, legit: 2 });
  const got = r.segments - 12 * r.nat.length - 12 * r.control.length; // ~segments of the legitimate connections
  console.log(`flood: ${r.sent} SYNs sent at ${r.senderRate}/s (target: server keeps up at ≥ 150k/s); server classified ${r.segments} segments (~${Math.max(0, got)} of the flood), raw socket drops ${r.drops ?? 'unknown'} (target 0); ${r.evicted} evictions; server RSS ${r.serverRssMB ?? '?'} MB`);
  console.log(`  legitimate connections during the flood: NATed client ${r.nat.join(',')} (client saw ${r.natOutcomes.join(',')}), control ${r.control.join(',')} (client saw ${r.controlOutcomes.join(',')})`);
}
