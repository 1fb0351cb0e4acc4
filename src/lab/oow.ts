/**
 * Scenario `oow-rst`: the out-of-window segment through a NAT host, per offset × mitigation, plus
 * the non-NATed control (the client runs on the client host itself). Each cell has its own
 * namespaces, interface names and server port, so cells run in parallel and kernel log lines are
 * attributed to the right cell.
 */
import { LabError } from '../errors.js';
import type { WireEvent } from '../events.js';
import { expectedVerdict } from './expect.js';
import { cellResult, type LabCellResult, type LabContext, type Scenario } from './scenario.js';
import { CLI_PATH, invalidCounter, jsonLines, STARTUP_MS, TIME_SCALE, spawnNode, startCapture, waitFor, interfaceIndex } from './spawn.js';
import { ADDR, cellNamespaces, createCell, type Mitigation } from './topology.js';

export interface CellSpec {
  id: string;
  index: number;
  offset: number;
  mitigation: Mitigation;
  natted: boolean;
  port: number;
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

export const DEFAULT_TIMING: CellTiming = { clientIdleMs: 400, holdMs: 3000, lingerMs: 800, cellTimeoutMs: 20_000 * TIME_SCALE };

/** Run one cell: topology up, server, client, verdict. Namespaces are removed by the runner. */
async function runCell(cell: CellSpec, ctx: LabContext, t: CellTiming): Promise<LabCellResult> {
  const t0 = performance.now();
  const ns = cellNamespaces(ctx.runId, cell.index);
  ctx.track([ns.container, ns.host, ns.server]);
  await createCell(ns, cell.mitigation);
  const before = await invalidCounter(ns.host);
  const capture = ctx.captureDir ? `${ctx.captureDir}/${cell.id.replace(/[/]/g, '_')}.pcap` : undefined;
  const ifindex = capture ? await interfaceIndex(ns.host) : undefined;
  const stopCapture = capture ? await startCapture(ns.host, capture, `tcp port ${cell.port}`) : null;

  const serverEvents: WireEvent[] = [];
  const server = spawnNode(ns.server, CLI_PATH, [
    'server', '--port', String(cell.port), '--bind', ADDR.server, `--offset=${cell.offset}`,
    '--hold', `${t.holdMs}ms`, '--linger', `${t.lingerMs}ms`, '--connections', '1', '-o', 'json',
  ]);
  let serverErr = '';
  server.stderr?.setEncoding('utf8').on('data', (d: string) => (serverErr += d));
  const serverDone = jsonLines(server, (e) => serverEvents.push(e));
  if (!(await waitFor(server, serverEvents, (e) => e.type === 'listening', STARTUP_MS)))
    throw new LabError(`lab cell ${cell.id}: the server did not start: ${serverErr.trim().split('\n')[0] ?? 'no output'}`);

  let client: string | null = null;
  const cl = spawnNode(cell.natted ? ns.container : ns.host, CLI_PATH, [
    'client', `${ADDR.server}:${cell.port}`, '--count', '1', '--timeout', `${t.clientIdleMs}ms`, '--connect-timeout', '3s', '-o', 'json',
  ]);
  const clientDone = jsonLines(cl, (e) => {
    if (e.type === 'attempt') client = e.outcome;
  });
  const timer = setTimeout(() => {
    server.kill('SIGTERM');
    cl.kill('SIGTERM');
  }, t.cellTimeoutMs);
  await Promise.all([serverDone, clientDone]);
  clearTimeout(timer);

  const captureDropped = (await stopCapture?.()) ?? null;
  const after = await invalidCounter(ns.host);
  const closed = serverEvents.find((e) => e.type === 'closed' && (e.verdict === 'reset' || e.verdict === 'clean'));
  const verdict = closed?.type === 'closed' ? closed.verdict : 'timeout';
  return cellResult({
    id: cell.id,
    verdict,
    expected: expectedVerdict(ctx.profile, cell.offset, cell.mitigation, cell.natted),
    invalidBefore: before,
    invalidAfter: after,
    startedAt: t0,
    namespaces: [ns.container, ns.host, ns.server],
    ifaces: [ns.bridge, ns.uplink, ns.vethHost],
    ports: [cell.port],
    addresses: [ADDR.container, ADDR.hostUplink, ADDR.server],
    details: { offset: cell.offset, mitigation: cell.mitigation, natted: cell.natted, client },
    capture: capture ? { capture, ifindex, captureDropped } : null,
  });
}

export function oowScenario(offsets: number[], mitigations: Mitigation[], control: boolean, timing: Partial<CellTiming> = {}): Scenario {
  const cells = buildCells(offsets, mitigations, control);
  const t = { ...DEFAULT_TIMING, ...timing };
  return {
    name: 'oow-rst',
    what: 'out-of-window segment → INVALID → RST through a NAT host (Docker 1090 / Kubernetes 74839)',
    cells: cells.length,
    cellId: (i) => cells[i]!.id,
    runCell: (i, ctx) => runCell(cells[i]!, ctx, t),
  };
}
