/**
 * Scenario `oow-rst`: the out-of-window segment through a NAT host, per offset × mitigation, plus
 * the non-NATed control (the client runs on the client host itself). Each cell has its own
 * namespaces and server port, so cells run in parallel and kernel log lines are attributed by port.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CtprobeError } from '../errors.js';
import { run } from '../host/exec.js';
import type { KmsgRecord } from '../host/kmsg.js';
import { ADDR, cellNamespaces, createCell, destroyCell, type CellNamespaces, type Mitigation } from './topology.js';
import { expectedVerdict, type CellVerdict, type KernelProfile } from './expect.js';

export const CLI_PATH = fileURLToPath(new URL('../cli/main.js', import.meta.url));

export interface CellSpec {
  id: string;
  index: number;
  offset: number;
  mitigation: Mitigation;
  natted: boolean;
  port: number;
}

export interface CellResult {
  id: string;
  offset: number;
  mitigation: Mitigation;
  natted: boolean;
  verdict: CellVerdict;
  expected: CellVerdict;
  match: boolean;
  why: string;
  invalidLog: string[];
  invalidCount: number | null;
  ms: number;
  client: string | null;
  namespaces: CellNamespaces;
}

export function buildCells(offsets: number[], mitigations: Mitigation[], control: boolean, basePort = 9100): CellSpec[] {
  const cells: CellSpec[] = [];
  const sign = (o: number) => (o >= 0 ? `+${o}` : `${o}`);
  for (const offset of offsets) {
    for (const m of mitigations) cells.push({ id: `nat/${m}/${sign(offset)}`, index: cells.length, offset, mitigation: m, natted: true, port: basePort + cells.length });
    if (control) cells.push({ id: `control/${sign(offset)}`, index: cells.length, offset, mitigation: 'none', natted: false, port: basePort + cells.length });
  }
  return cells;
}

/** Child processes of live cells, so a signal handler can kill them before removing namespaces. */
export const liveChildren = new Set<ChildProcess>();

function spawnIn(ns: string, args: string[]): ChildProcess {
  const p = spawn('ip', ['netns', 'exec', ns, process.execPath, CLI_PATH, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  liveChildren.add(p);
  p.on('close', () => liveChildren.delete(p));
  return p;
}

function linesOf(p: ChildProcess, onLine: (l: string) => void): Promise<number | null> {
  let buf = '';
  p.stdout?.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      onLine(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
  return new Promise((resolve) => p.on('close', (code) => resolve(code)));
}

async function invalidCounter(ns: string): Promise<number | null> {
  const r = await run('conntrack', ['-S'], { netns: ns, allowFail: true }).catch(() => null);
  if (!r || r.status !== 0) return null;
  let total = 0;
  for (const m of r.stdout.matchAll(/\binvalid=(\d+)/g)) total += Number(m[1]);
  return total;
}

export interface CellTiming {
  /** Client idle timeout: when it closes (its FIN triggers the delayed failure on 6.1+). */
  clientIdleMs: number;
  /** How long the server holds a connection before closing it itself. */
  holdMs: number;
  /** After the server's close, how long an RST still counts. */
  lingerMs: number;
  /** Hard bound for one cell's traffic. */
  cellTimeoutMs: number;
}

export const DEFAULT_TIMING: CellTiming = { clientIdleMs: 400, holdMs: 3000, lingerMs: 800, cellTimeoutMs: 8000 };

/** Run one cell: topology up, server, client, verdict; the topology is left for the caller. */
export async function runCell(runId: string, cell: CellSpec, profile: KernelProfile, t: CellTiming, onCreated: (ns: CellNamespaces) => void): Promise<CellResult> {
  const t0 = performance.now();
  const ns = cellNamespaces(runId, cell.index);
  onCreated(ns);
  await createCell(ns, cell.mitigation);
  const before = await invalidCounter(ns.host);

  let verdict: CellVerdict | null = null;
  let listening!: () => void;
  const ready = new Promise<void>((r) => (listening = r));
  const server = spawnIn(ns.server, [
    'server', '--port', String(cell.port), '--bind', ADDR.server, `--offset=${cell.offset}`,
    '--hold', `${t.holdMs}ms`, '--linger', `${t.lingerMs}ms`, '--connections', '1', '-o', 'json',
  ]);
  let serverErr = '';
  server.stderr?.setEncoding('utf8').on('data', (d: string) => (serverErr += d));
  const serverDone = linesOf(server, (l) => {
    try {
      const e = JSON.parse(l) as { event: string; verdict?: string };
      if (e.event === 'listening') listening();
      if (e.event === 'closed' && (e.verdict === 'reset' || e.verdict === 'clean')) verdict ??= e.verdict;
    } catch {
      /* not ours */
    }
  });
  const started = await Promise.race([ready.then(() => true), serverDone.then(() => false)]);
  if (!started) throw new CtprobeError('ECMD', `lab cell ${cell.id}: the server did not start: ${serverErr.trim().split('\n')[0] ?? 'no output'}`);

  let client: string | null = null;
  const cl = spawnIn(cell.natted ? ns.container : ns.host, [
    'client', `${ADDR.server}:${cell.port}`, '--count', '1', '--timeout', `${t.clientIdleMs}ms`, '--connect-timeout', '3s', '-o', 'json',
  ]);
  const clientDone = linesOf(cl, (l) => {
    try {
      const e = JSON.parse(l) as { event: string; outcome?: string };
      if (e.event === 'attempt') client = e.outcome ?? null;
    } catch {
      /* ignore */
    }
  });
  const timer = setTimeout(() => {
    server.kill('SIGTERM');
    cl.kill('SIGTERM');
  }, t.cellTimeoutMs);
  await Promise.all([serverDone, clientDone]);
  clearTimeout(timer);

  const after = await invalidCounter(ns.host);
  const exp = expectedVerdict(profile, cell.offset, cell.mitigation, cell.natted);
  const v: CellVerdict = verdict ?? 'timeout';
  return {
    id: cell.id,
    offset: cell.offset,
    mitigation: cell.mitigation,
    natted: cell.natted,
    verdict: v,
    expected: exp.verdict,
    match: v === exp.verdict,
    why: exp.why,
    invalidLog: [],
    invalidCount: before === null || after === null ? null : after - before,
    ms: Math.round(performance.now() - t0),
    client,
    namespaces: ns,
  };
}

/** Kernel log lines for a cell: nf_conntrack lines naming one of the cell's interfaces and its port. */
export function cellLogLines(records: KmsgRecord[], port: number, ns: Pick<CellNamespaces, 'bridge' | 'uplink' | 'vethHost'>): string[] {
  const ports = [`SPT=${port} `, `DPT=${port} `];
  const ifaces = [ns.bridge, ns.uplink, ns.vethHost].flatMap((i) => [`IN=${i} `, `OUT=${i} `]);
  return records
    .filter((r) => r.text.startsWith('nf_ct_') && ports.some((p) => r.text.includes(p)) && ifaces.some((i) => r.text.includes(i)))
    .map((r) => r.text.trim());
}

export { destroyCell };
