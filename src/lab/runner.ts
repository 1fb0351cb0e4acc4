/**
 * Runs a lab scenario: checks it can run, records the run so a killed run can be cleaned up,
 * runs the cells (several at a time), collects the kernel's invalid-packet log lines, and tears
 * everything down on success, failure, SIGINT and SIGTERM.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { release, version } from 'node:os';
import { PrivilegeError } from '../errors.js';
import { isRoot, requireTool, run, runSync } from '../host/exec.js';
import { KernelLog, type KmsgRecord } from '../host/kmsg.js';
import { ensureNfLogBackend } from '../host/sysctl.js';
import { parseKernelLogLine } from '../inspect/kernlog.js';
import { kernelProfile } from './expect.js';
import { removeDockerd, removeRunFiles, signalDockerdsSync, type DockerdPaths } from './docker.js';
import type { GuestInfo } from './engines/guest.js';
import { liveChildren } from './spawn.js';
import type { LabCellResult, Scenario } from './scenario.js';
import { enableLogAllNetns, newRunId, readLogAllNetns, removeRunState, restoreLogAllNetns, writeRunState } from './state.js';

export interface LabOptions {
  scenario: Scenario;
  keep: boolean;
  concurrency: number;
  /** Write each cell's capture of its NAT/app host and its kernel log lines to this directory. */
  captureDir?: string | null;
  onProgress?: (ev: LabProgress) => void;
}

export type LabProgress =
  | { type: 'start'; run: string; cells: number; kernel: string; profile: string }
  | { type: 'cell'; done: number; total: number; cell: LabCellResult }
  /** A guest run's own steps (kernel fetch, boot), before and around the cells. */
  | { type: 'guest'; text: string };

export interface LabReport {
  kernel: string;
  /** `uname -v` (on Debian it names the upstream version, e.g. "… Debian 6.1.192-3 …"). */
  kernelVersion: string;
  profile: string;
  profileLabel: string;
  profileSummary: string;
  scenario: string;
  /** The engine of the client hosts: ctprobe's namespaces, or a real dockerd with its version. */
  engine: { name: string; version: string };
  run: string;
  kernelLog: 'collected' | 'unavailable';
  /** The nf_log backend that printed conntrack's lines (loaded by the lab when none was); null: none. */
  logBackend: string | null;
  /** Modules the lab loaded to bind it (a fresh kernel has none): e.g. ["nf_log_syslog"]. */
  logModulesLoaded: string[];
  /** Why the kernel log could not be collected, in one line; null when it was. */
  logWhy: string | null;
  cells: LabCellResult[];
  ms: number;
  kept: string[] | null;
  /** Set when the lab ran in a guest (`lab --kernel`): the guest's kernel and how it ran. */
  guest?: GuestInfo;
}

/** Fail early, in one line, when the lab cannot run here. */
export function preflight(): void {
  if (!isRoot()) throw new PrivilegeError('the lab creates network namespaces: run it as root (or with CAP_NET_ADMIN + CAP_SYS_ADMIN + CAP_NET_RAW)');
  for (const t of ['ip', 'iptables-restore', 'conntrack', 'ss', 'setpriv']) requireTool(t);
}

/**
 * Kernel log lines for a cell: nf_conntrack lines about one of its ports, seen on one of its
 * interfaces — or, when the line names no interface (5.10 prints empty IN= and OUT= for
 * conntrack's lines), with one of its addresses as source or destination.
 */
export function cellLogLines(records: KmsgRecord[], cell: Pick<LabCellResult, 'ifaces' | 'ports' | 'addresses'>): string[] {
  const ports = new Set(cell.ports);
  const ifaces = new Set(cell.ifaces);
  const addrs = new Set(cell.addresses);
  return records
    .filter((r) => {
      if (!r.text.startsWith('nf_ct_')) return false;
      const e = parseKernelLogLine(r.text);
      if (!e || !((e.sport !== null && ports.has(e.sport)) || (e.dport !== null && ports.has(e.dport)))) return false;
      if (e.in || e.out) return (e.in !== null && ifaces.has(e.in)) || (e.out !== null && ifaces.has(e.out));
      return (e.src !== null && addrs.has(e.src)) || (e.dst !== null && addrs.has(e.dst));
    })
    .map((r) => r.text.trim());
}

/** `ip -batch` input deleting these namespaces (with -force, one that is missing does not stop the rest). */
function netnsDelBatch(names: string[]): string {
  return names.map((n) => `netns del ${n}\n`).join('');
}

/** Delete namespaces with one `ip -force -batch` (not one spawn each: 30 for the oow-rst matrix). */
async function deleteNamespaces(names: string[]): Promise<void> {
  if (names.length) await run('ip', ['-force', '-batch', '-'], { input: netnsDelBatch(names), allowFail: true }).catch(() => undefined);
}

export async function runLab(o: LabOptions): Promise<LabReport> {
  preflight();
  const t0 = performance.now();
  const runId = newRunId();
  const kernel = release();
  const kernelVersion = version();
  const profile = kernelProfile(kernel, kernelVersion);
  const sc = o.scenario;
  const created: string[] = [];
  const daemons: DockerdPaths[] = [];
  writeRunState({ run: runId, pid: process.pid, startedAt: new Date().toISOString(), scenario: sc.name, keep: o.keep });

  const backend = await ensureNfLogBackend();
  const logAll = enableLogAllNetns();
  const klog = KernelLog.open();
  // The kernel's ring buffer is small (128 KiB here) and shared with every other netns: read it
  // while cells run, or a big run's first lines are overwritten before the end.
  const logRecords: KmsgRecord[] = [];
  const logPoll = klog ? setInterval(() => logRecords.push(...klog.drain()), 100) : null;
  let torn = false;
  const teardown = async () => {
    if (torn) return;
    torn = true;
    for (const c of liveChildren) c.kill('SIGKILL');
    // Daemons first: dockerd removes its containers and rules from namespaces that still exist.
    if (!o.keep) await Promise.all(daemons.map((d) => removeDockerd(d).catch(() => undefined)));
    if (!o.keep) removeRunFiles(runId);
    if (!o.keep) await deleteNamespaces(created);
    if (logPoll) clearInterval(logPoll);
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
    if (!o.keep) signalDockerdsSync(daemons);
    if (!o.keep && created.length) runSync('ip', ['-force', '-batch', '-'], { input: netnsDelBatch(created), allowFail: true });
    restoreLogAllNetns(runId);
    removeRunState(runId);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', onExit);

  o.onProgress?.({ type: 'start', run: runId, cells: sc.cells, kernel, profile: profile.id });
  const results: LabCellResult[] = new Array(sc.cells);
  const ctx = { runId, profile, track: (ns: string[]) => created.push(...ns), trackDaemon: (d: DockerdPaths) => daemons.push(d), keep: o.keep, captureDir: o.captureDir ?? null };
  if (o.captureDir) {
    requireTool('tcpdump');
    mkdirSync(o.captureDir, { recursive: true });
  }
  let next = 0;
  let done = 0;
  try {
    let failed = false;
    const worker = async () => {
      while (next < sc.cells && !failed && !torn) {
        const i = next++;
        const r = await sc.runCell(i, ctx).catch((e: unknown) => {
          failed = true;
          throw e;
        });
        results[i] = r;
        done++;
        o.onProgress?.({ type: 'cell', done, total: sc.cells, cell: r });
      }
    };
    // Let every worker settle before teardown, so none creates namespaces after it.
    const settled = await Promise.allSettled(Array.from({ length: Math.max(1, Math.min(o.concurrency, sc.cells)) }, worker));
    const err = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (err) throw err.reason;
    // Log records are written synchronously with the packets; give the printk path a moment.
    await new Promise((r) => setTimeout(r, 50));
    const records = [...logRecords, ...(klog?.drain() ?? [])];
    for (const r of results) r.invalidLog = cellLogLines(records, r);
    if (o.captureDir) writeCaptureIndex(o.captureDir, kernel, kernelVersion, profile.id, results);
  } finally {
    await teardown();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('exit', onExit);
  }
  const logWhy = !klog
    ? '/dev/kmsg cannot be read'
    : !backend.backend
      ? `no nf_log backend is bound, so conntrack prints nothing (${backend.why})`
      : logAll.value !== 1 && readLogAllNetns() !== 1
        ? 'net.netfilter.nf_log_all_netns could not be set to 1'
        : null;
  return {
    kernel,
    kernelVersion,
    profile: profile.id,
    profileLabel: profile.label,
    profileSummary: profile.summary,
    scenario: sc.name,
    engine: sc.engine ?? { name: 'netns', version: kernel },
    run: runId,
    kernelLog: logWhy === null ? 'collected' : 'unavailable',
    logBackend: backend.backend,
    logModulesLoaded: backend.loaded,
    logWhy,
    cells: results,
    ms: Math.round(performance.now() - t0),
    kept: o.keep ? [...created, ...daemons.map((d) => `dockerd ${d.sock}`)] : null,
  };
}

/**
 * With --capture: DIR/index.json names, per cell, the capture (tcpdump -i any on the NAT host,
 * so packets appear once per interface they cross), the interfaces that are the cell's, and the
 * kernel's invalid-packet log lines, for `ctprobe explain` and the model-vs-kernel agreement test.
 */
function writeCaptureIndex(dir: string, kernel: string, kernelVersion: string, profile: string, results: LabCellResult[]): void {
  const cells = results.map((r) => ({ id: r.id, capture: r.capture ?? null, captureDropped: r.captureDropped ?? null, ifindex: r.ifindex ?? null, ifaces: r.ifaces, ports: r.ports, verdict: r.verdict, details: r.details, invalidLog: r.invalidLog }));
  writeFileSync(`${dir}/index.json`, JSON.stringify({ kernel, kernelVersion, profile, cells }, null, 2) + '\n');
  for (const r of results) if (r.capture) writeFileSync(r.capture.replace(/\.pcap$/, '.log'), r.invalidLog.join('\n') + (r.invalidLog.length ? '\n' : ''));
}
