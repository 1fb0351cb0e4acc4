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
import { addrOf, cellNamespaces, createCell, type Mitigation } from './topology.js';

export interface CellSpec {
  id: string;
  index: number;
  offset: number;
  /** The mitigation as the engine applies it (e.g. docker-user). */
  mitigation: string;
  /** The namespace-lab mitigation it is equivalent to, for the expectation (docker-user is a FORWARD drop). */
  model: Mitigation;
  natted: boolean;
  port: number;
  /** How the client reaches the NAT host: a veth on a bridge, Docker's bridge, a swarm task (docker_gwbridge). */
  via?: 'bridge' | 'swarm';
  /** IP family of the cell's traffic (the docker engine runs IPv4 only). */
  family: 4 | 6;
}

export function buildCells(offsets: number[], mitigations: Mitigation[], control: boolean, basePort = 9100, families: Array<4 | 6> = [4]): CellSpec[] {
  const cells: CellSpec[] = [];
  const sign = (o: number) => (o >= 0 ? `+${o}` : `${o}`);
  for (const family of families) {
    const v = family === 6 ? '/v6' : '';
    for (const offset of offsets) {
      for (const m of mitigations) cells.push({ id: `nat/${m}/${sign(offset)}${v}`, index: cells.length, offset, mitigation: m, model: m, natted: true, port: basePort + cells.length, family });
      if (control) cells.push({ id: `control/${sign(offset)}${v}`, index: cells.length, offset, mitigation: 'none', model: 'none', natted: false, port: basePort + cells.length, family });
    }
  }
  return cells;
}

/** A client's run: resolves when it ended; `kill` ends it early (cell timeout). */
export interface ClientRun {
  done: Promise<unknown>;
  kill(): void;
}

/**
 * What an engine provides for one cell: the client host (namespaces, interfaces, the client) and
 * the server namespace, which is always a plain namespace on the host's uplink.
 */
export interface CellHost {
  /** Every namespace of the cell, tracked before creation. */
  namespaces: string[];
  /** The NAT host (conntrack counters, captures). */
  hostNs: string;
  serverNs: string;
  /** Interfaces whose names attribute kernel log lines to this cell. */
  ifaces: string[];
  /** Addresses that attribute them when the kernel leaves IN=/OUT= empty (5.10). */
  addresses: string[];
  /** Build the cell; may return the NAT host's INVALID counter read on the way (undefined: not read). */
  setUp(): Promise<number | null | undefined | void>;
  /** Tool and process spawns per cell (for the phases report); undefined: not counted. */
  spawns?: number;
  /** Start `ctprobe client ARGS…` where the cell says (container, task, or the host itself). */
  client(args: string[], onEvent: (e: WireEvent) => void): Promise<ClientRun>;
  /** Remove what setUp started besides namespaces (the runner also does, on every path). */
  tearDown(): Promise<void>;
  /** Engine-specific figures for the cell's details. */
  details(): Record<string, unknown>;
}

export interface OowEngine {
  /** Cell timing on this engine (a container takes longer to start than a process). */
  timing: Partial<CellTiming>;
  host(cell: CellSpec, ctx: LabContext): CellHost;
}

/** The namespace engine: ctprobe's own bridge and MASQUERADE rule in a client-host namespace. */
export const NETNS_ENGINE: OowEngine = {
  timing: {},
  host(cell, ctx) {
    const ns = cellNamespaces(ctx.runId, cell.index);
    return {
      namespaces: [ns.container, ns.host, ns.server],
      hostNs: ns.host,
      serverNs: ns.server,
      ifaces: [ns.bridge, ns.uplink, ns.vethHost],
      addresses: [addrOf(cell.family).container, addrOf(cell.family).hostUplink, addrOf(cell.family).server],
      setUp: () => createCell(ns, cell.model, cell.family),
      spawns: SPAWNS_PER_CELL,
      client: (args, onEvent) => {
        const cl = spawnNode(cell.natted ? ns.container : ns.host, CLI_PATH, args);
        return Promise.resolve({ done: jsonLines(cl, onEvent), kill: () => cl.kill('SIGTERM') });
      },
      tearDown: () => Promise.resolve(),
      details: () => ({}),
    };
  },
};

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

/**
 * The lab's own spawns per cell: the script that builds it (createCell: 4 `ip -batch`,
 * `iptables-restore` and `conntrack -S` inside it), the server, the client, the final INVALID
 * counter. (A node process's spawn forks it and waits for the child's exec: on a loaded machine
 * each costs the lab's one thread milliseconds, so the tools run under one shell.)
 */
const SPAWNS_PER_CELL = 4;

/**
 * What a cell waits for once the client is connected, and why (the "kernel" phase of its time):
 * - clientIdleMs: the client's FIN (after this much idle) must reach the NAT host after the forged
 *   segment. The server forges within a millisecond of the handshake when it runs, but with every
 *   cell's processes starting at once on a small machine it may wait to be scheduled; 400 ms is that
 *   margin. The client also waits as long again for the server's FIN after its own: in a cell whose
 *   mitigation drops the server's FIN (drop-input on 6.1+) that is how long its client takes, 2 × 400
 *   ms after the handshake: the longest wait of the matrix.
 * - lingerMs: a reset cell ends on the RST itself (the server exits on its verdict; the client's
 *   outcome follows with its FIN's retransmission, TCP_RTO_MIN = 200 ms later). A clean cell waits
 *   for an RST that does not come: the NAT host answers an INVALID packet of the server's close in
 *   the softirq that receives it, so an RST is in the server's raw socket within milliseconds of its
 *   close, and the server reads its raw socket before it judges "clean" (OutOfWindowProbe.lingerOver),
 *   so its own scheduling delays cannot turn a late-read reset into clean. 400 ms covers that
 *   delivery a hundred times over and is no longer than the client's own wait above, so no cell waits
 *   on it alone (it was 800 ms, when a late timer could still beat the read).
 */
export const DEFAULT_TIMING: CellTiming = { clientIdleMs: 400, holdMs: 3000, lingerMs: 400, cellTimeoutMs: 20_000 * TIME_SCALE };

/** Run one cell: topology up, server, client, verdict. Namespaces are removed by the runner. */
async function runCell(cell: CellSpec, ctx: LabContext, t: CellTiming, engine: OowEngine): Promise<LabCellResult> {
  const t0 = performance.now();
  const h = engine.host(cell, ctx);
  ctx.track(h.namespaces);
  try {
    // an engine that reads the INVALID counter while it builds the cell saves a spawn
    const fromSetUp = await h.setUp();
    const before = fromSetUp !== undefined ? fromSetUp : await invalidCounter(h.hostNs);
    const tSetup = performance.now();
    const capture = ctx.captureDir ? `${ctx.captureDir}/${cell.id.replace(/[/]/g, '_')}.pcap` : undefined;
    const ifindex = capture ? await interfaceIndex(h.hostNs) : undefined;
    const stopCapture = capture ? await startCapture(h.hostNs, capture, `tcp port ${cell.port}`) : null;

    const A = addrOf(cell.family);
    const serverEp = cell.family === 6 ? `[${A.server}]` : A.server;
    const serverEvents: WireEvent[] = [];
    const server = spawnNode(h.serverNs, CLI_PATH, [
      'server', '--port', String(cell.port), '--bind', A.server, `--offset=${cell.offset}`,
      '--hold', `${t.holdMs}ms`, '--linger', `${t.lingerMs}ms`, '--connections', '1', '-o', 'json',
    ]);
    let serverErr = '';
    server.stderr?.setEncoding('utf8').on('data', (d: string) => (serverErr += d));
    let tClientUp = 0;
    const serverDone = jsonLines(server, (e) => {
      serverEvents.push(e);
      // the handshake is the client process up and connected: from here on, protocol and kernel
      if (e.type === 'established') tClientUp ||= performance.now();
    });
    if (!(await waitFor(server, serverEvents, (e) => e.type === 'listening', STARTUP_MS)))
      throw new LabError(`lab cell ${cell.id}: the server did not start: ${serverErr.trim().split('\n')[0] ?? 'no output'}`);
    const tServer = performance.now();

    let client: string | null = null;
    let cl: ClientRun | null = null;
    const timer = setTimeout(() => {
      server.kill('SIGTERM');
      cl?.kill();
    }, t.cellTimeoutMs);
    try {
      cl = await h.client(['client', `${serverEp}:${cell.port}`, '--count', '1', '--timeout', `${t.clientIdleMs}ms`, '--connect-timeout', '3s', '-o', 'json'], (e) => {
        if (e.type === 'attempt') client = e.outcome;
      });
      await Promise.all([serverDone, cl.done]);
    } finally {
      clearTimeout(timer);
      server.kill('SIGTERM');
    }
    const tTraffic = performance.now();

    const captureDropped = (await stopCapture?.()) ?? null;
    const after = await invalidCounter(h.hostNs);
    const tEnd = performance.now();
    const closed = serverEvents.find((e) => e.type === 'closed' && (e.verdict === 'reset' || e.verdict === 'clean'));
    const verdict = closed?.type === 'closed' ? closed.verdict : 'timeout';
    return cellResult({
      id: cell.id,
      verdict,
      expected: expectedVerdict(ctx.profile, cell.offset, cell.model, cell.natted),
      invalidBefore: before,
      invalidAfter: after,
      startedAt: t0,
      namespaces: h.namespaces,
      ifaces: h.ifaces,
      addresses: h.addresses,
      ports: [cell.port],
      details: { offset: cell.offset, mitigation: cell.mitigation, natted: cell.natted, family: cell.family, ...(cell.via ? { via: cell.via } : {}), client, ...h.details() },
      capture: capture ? { capture, ifindex, captureDropped } : null,
      phases: {
        setupMs: tSetup - t0,
        serverStartMs: tServer - tSetup,
        clientStartMs: (tClientUp || tTraffic) - tServer,
        kernelMs: tTraffic - (tClientUp || tTraffic),
        countersMs: tEnd - tTraffic,
        spawns: h.spawns === undefined ? null : h.spawns + (capture ? 2 : 0),
      },
    });
  } finally {
    if (!ctx.keep) await h.tearDown();
  }
}

export function oowScenario(offsets: number[], mitigations: Mitigation[], control: boolean, timing: Partial<CellTiming> = {}, families: Array<4 | 6> = [4]): Scenario {
  return oowScenarioOn(NETNS_ENGINE, buildCells(offsets, mitigations, control, 9100, families), timing);
}

/** The oow-rst scenario over given cells on an engine. */
export function oowScenarioOn(engine: OowEngine, cells: CellSpec[], timing: Partial<CellTiming> = {}): Scenario {
  const t = { ...DEFAULT_TIMING, ...engine.timing, ...timing };
  return {
    name: 'oow-rst',
    what: 'out-of-window segment → INVALID → RST through a NAT host (Docker 1090 / Kubernetes 74839)',
    cells: cells.length,
    cellId: (i) => cells[i]!.id,
    runCell: (i, ctx) => runCell(cells[i]!, ctx, t, engine),
  };
}
