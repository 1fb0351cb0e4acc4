/** What every lab scenario provides to the runner, and what every cell reports. */
import type { DockerdPaths } from './docker.js';
import type { KernelProfile } from './expect.js';

export interface LabCellResult {
  id: string;
  verdict: string;
  expected: string;
  match: boolean;
  /** Why this kernel should give the expected verdict, in plain words. */
  why: string;
  /** The kernel's invalid-packet log lines for this cell. */
  invalidLog: string[];
  /** conntrack -S `invalid` delta in the NAT/app namespace; null when unreadable. */
  invalidCount: number | null;
  ms: number;
  /** Namespaces the cell created (for --keep and teardown); not printed in JSON. */
  namespaces: string[];
  /** Interfaces whose names attribute kernel log lines to this cell. */
  ifaces: string[];
  /** Ports whose SPT=/DPT= attribute kernel log lines to this cell. */
  ports: number[];
  /** Addresses that attribute a log line naming no interface (5.10's empty IN=/OUT=), with a port. */
  addresses: string[];
  /** Scenario-specific figures. */
  details: Record<string, unknown>;
  /** The capture file of this cell, with `--capture`. */
  capture?: string;
  /** With `--capture`: ifindex → name in the captured namespace (SLL2 records carry the ifindex). */
  ifindex?: Record<string, string>;
  /** With `--capture`: packets tcpdump reported as dropped by the kernel (null: unknown). */
  captureDropped?: number | null;
  /** Where the cell's wall time went, ms (and how many processes it spawned). */
  phases?: CellPhases;
}

/**
 * A cell's wall time by phase: building the topology (namespaces, links, rules: tool spawns), the
 * server's start (a Node process in a namespace), the client's start until its first event, then
 * the traffic itself (waiting on the kernel and the protocol's timers), and the closing counters.
 */
export interface CellPhases {
  setupMs: number;
  serverStartMs: number;
  clientStartMs: number;
  kernelMs: number;
  countersMs: number;
  /** null: the engine does not count them (dockerd, containers). */
  spawns: number | null;
}

export interface LabContext {
  runId: string;
  profile: KernelProfile;
  /** Called with every namespace before it is created, so teardown can remove it on any path. */
  track(namespaces: string[]): void;
  /** Called with every lab dockerd before it is started, so teardown removes it on any path. */
  trackDaemon(daemon: DockerdPaths): void;
  /** --keep: leave every cell's topology (and daemons) up for exploring. */
  keep: boolean;
  /** When set, cells write a capture of their NAT/app host here (`lab --capture DIR`). */
  captureDir: string | null;
}

export interface Scenario {
  name: string;
  /** One line for `lab list`. */
  what: string;
  cells: number;
  /** What runs the client hosts, named in the report (absent: ctprobe's own namespaces). */
  engine?: { name: string; version: string };
  cellId(index: number): string;
  runCell(index: number, ctx: LabContext): Promise<LabCellResult>;
}

/** Assemble a cell's result: match, invalid-counter delta and duration are derived, not repeated. */
export function cellResult(c: {
  id: string;
  verdict: string;
  /** `resetBy` (k8s-service): who must send the RST when the verdict is reset; compared when given. */
  expected: { verdict: string; why: string; resetBy?: string | null };
  /** Who did send it (decided from a capture), when the scenario knows. */
  resetBy?: string | null;
  invalidBefore: number | null;
  invalidAfter: number | null;
  startedAt: number;
  namespaces: string[];
  ifaces: string[];
  ports: number[];
  addresses: string[];
  details: Record<string, unknown>;
  capture?: { capture: string; ifindex: Record<string, string> | undefined; captureDropped: number | null } | null;
  phases?: CellPhases;
}): LabCellResult {
  return {
    id: c.id,
    verdict: c.verdict,
    expected: c.expected.verdict,
    match: c.verdict === c.expected.verdict && (c.expected.resetBy === undefined || c.verdict !== 'reset' || c.resetBy === c.expected.resetBy),
    why: c.expected.why,
    invalidLog: [],
    invalidCount: c.invalidBefore === null || c.invalidAfter === null ? null : c.invalidAfter - c.invalidBefore,
    ms: Math.round(performance.now() - c.startedAt),
    namespaces: c.namespaces,
    ifaces: c.ifaces,
    ports: c.ports,
    addresses: c.addresses,
    details: c.details,
    ...(c.capture ? c.capture : {}),
    ...(c.phases ? { phases: Object.fromEntries(Object.entries(c.phases).map(([k, v]) => [k, v === null ? null : Math.round(v)])) as unknown as CellPhases } : {}),
  };
}
