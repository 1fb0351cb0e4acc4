/**
 * Runs a lab scenario: checks it can run, records the run so a killed run can be cleaned up,
 * runs the cells (a few at a time), collects the kernel's invalid-packet log lines, and tears
 * everything down on success, failure, SIGINT and SIGTERM.
 */
import { release } from 'node:os';
import { PrivilegeError } from '../errors.js';
import { isRoot, requireTool, runSync } from '../host/exec.js';
import { KernelLog } from '../host/kmsg.js';
import { kernelProfile, type KernelProfile } from './expect.js';
import { buildCells, cellLogLines, destroyCell, DEFAULT_TIMING, liveChildren, runCell, type CellResult, type CellSpec, type CellTiming } from './oow.js';
import { enableLogAllNetns, newRunId, readLogAllNetns, removeRunState, restoreLogAllNetns, writeRunState } from './state.js';
import type { CellNamespaces, Mitigation } from './topology.js';

export interface LabOptions {
  scenario: 'oow-rst';
  offsets: number[];
  mitigations: Mitigation[];
  control: boolean;
  keep: boolean;
  concurrency: number;
  timing?: Partial<CellTiming>;
  onProgress?: (ev: LabProgress) => void;
}

export type LabProgress =
  | { type: 'start'; run: string; cells: number; kernel: string; profile: KernelProfile }
  | { type: 'cell'; done: number; total: number; cell: CellResult };

export interface LabReport {
  kernel: string;
  profile: string;
  profileLabel: string;
  profileSummary: string;
  scenario: string;
  run: string;
  kernelLog: 'collected' | 'unavailable';
  cells: CellResult[];
  ms: number;
  kept: CellNamespaces[] | null;
}

/** Fail early, in one line, when the lab cannot run here. */
export function preflight(): void {
  if (!isRoot()) throw new PrivilegeError('the lab creates network namespaces: run it as root (or with CAP_NET_ADMIN + CAP_SYS_ADMIN + CAP_NET_RAW)');
  for (const t of ['ip', 'iptables-restore', 'conntrack']) requireTool(t);
}

export async function runLab(o: LabOptions): Promise<LabReport> {
  preflight();
  const t0 = performance.now();
  const runId = newRunId();
  const kernel = release();
  const profile = kernelProfile(kernel);
  const timing = { ...DEFAULT_TIMING, ...o.timing };
  const cells: CellSpec[] = buildCells(o.offsets, o.mitigations, o.control);
  const created: CellNamespaces[] = [];
  writeRunState({ run: runId, pid: process.pid, startedAt: new Date().toISOString(), scenario: o.scenario, keep: o.keep });

  const logAll = enableLogAllNetns();
  const klog = KernelLog.open();
  let torn = false;
  const teardown = async () => {
    if (torn) return;
    torn = true;
    for (const c of liveChildren) c.kill('SIGKILL');
    if (!o.keep) await Promise.all(created.map((ns) => destroyCell(ns)));
    klog?.close();
    restoreLogAllNetns(runId);
    removeRunState(runId);
  };
  // Signals: tear down, then exit with the conventional code. Synchronous last resort on exit.
  const onSignal = (sig: NodeJS.Signals) => {
    void teardown().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
  };
  const onExit = () => {
    if (torn) return;
    for (const c of liveChildren) c.kill('SIGKILL');
    if (!o.keep) for (const ns of created) for (const n of [ns.container, ns.host, ns.server]) runSync('ip', ['netns', 'del', n], { allowFail: true });
    restoreLogAllNetns(runId);
    removeRunState(runId);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', onExit);

  o.onProgress?.({ type: 'start', run: runId, cells: cells.length, kernel, profile });
  const results: CellResult[] = new Array(cells.length);
  let next = 0;
  let done = 0;
  try {
    let failed = false;
    const worker = async () => {
      while (next < cells.length && !failed && !torn) {
        const cell = cells[next++]!;
        const r = await runCell(runId, cell, profile, timing, (ns) => created.push(ns)).catch((e: unknown) => {
          failed = true;
          throw e;
        });
        results[cell.index] = r;
        done++;
        o.onProgress?.({ type: 'cell', done, total: cells.length, cell: r });
      }
    };
    // Let every worker settle before teardown, so none creates namespaces after it.
    const settled = await Promise.allSettled(Array.from({ length: Math.max(1, Math.min(o.concurrency, cells.length)) }, worker));
    const err = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (err) throw err.reason;
    // Log records are written synchronously with the packets; give the printk path a moment.
    await new Promise((r) => setTimeout(r, 50));
    const records = klog?.drain() ?? [];
    for (const c of cells) results[c.index]!.invalidLog = cellLogLines(records, c.port, results[c.index]!.namespaces);
  } finally {
    await teardown();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('exit', onExit);
  }
  return {
    kernel,
    profile: profile.id,
    profileLabel: profile.label,
    profileSummary: profile.summary,
    scenario: o.scenario,
    run: runId,
    kernelLog: klog && (logAll.value === 1 || readLogAllNetns() === 1) ? 'collected' : 'unavailable',
    cells: results,
    ms: Math.round(performance.now() - t0),
    kept: o.keep ? created : null,
  };
}
