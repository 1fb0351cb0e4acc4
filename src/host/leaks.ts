/**
 * Where `leaks` gets its sockets and conntrack entries: live from a target namespace (ss and
 * conntrack, as root), or from saved files (a support bundle). The detection itself is pure
 * (src/inspect/leaks.ts). A conntrack table that could not be read is unknown, never empty.
 */
import { InputError, PrivilegeError } from '../errors.js';
import { Bundle } from './bundle.js';
import { forEachConntrackOrigin, parseConntrack, type CtEntry } from '../inspect/conntrack.js';
import { fileLineBatches } from '../inspect/lines.js';
import { findLeaks, LeakDetector, type Leak } from '../inspect/leaks.js';
import { forEachSs, parseSs, type SsStats } from '../inspect/ss.js';
import { isRoot, requireTool } from './exec.js';
import { describeTarget, runInTarget, type Target } from './target.js';

export interface LeakReport {
  source: string;
  proxyPort: number;
  idleTimeoutS: number;
  sockets: number;
  /** null: no conntrack data (offline without --conntrack-file): tracked pairs cannot be ruled out. */
  conntrackEntries: number | null;
  leaks: Leak[];
  halfLeaks: Leak[];
  /** Sockets of other families in the ss output (netlink, unix, packet…), skipped, by netid. */
  skippedSockets: Record<string, number>;
}

export type LeakSource = { kind: 'live'; target: Target } | { kind: 'files'; ss: string; conntrack: string | null } | { kind: 'bundle'; path: string };

export async function leakReport(src: LeakSource, o: { proxyPort: number; idleTimeoutS: number }): Promise<LeakReport> {
  let source: string;
  let sockets;
  let entries: CtEntry[] | null = null;
  const stats: SsStats = { skipped: {} };
  if (src.kind === 'bundle') {
    const b = await Bundle.open(src.path);
    try {
      const ss = b.file('ssTcp');
      if (ss.text === null) throw new InputError(`the bundle has no 'ss -tanoepi' output (${ss.why}): leaks cannot be judged from it`, src.path);
      const ct = b.file('conntrackList');
      const r = await leakReport({ kind: 'files', ss: ss.text, conntrack: ct.text }, o);
      return { ...r, source: `${b.manifest.target} (bundle ${src.path})` };
    } finally {
      b.close();
    }
  }
  if (src.kind === 'files') {
    // Streamed: a million-line file is judged as it is read, never held as objects.
    const d = new LeakDetector(o, src.conntrack !== null);
    await forEachSs(fileLineBatches(src.ss), (s) => d.addSocket(s), { stats, brief: { full: LeakDetector.needsWhole, onBrief: (l, p) => d.addEndpoint(l, p) } });
    d.socketsDone();
    if (src.conntrack) await forEachConntrackOrigin(fileLineBatches(src.conntrack), (p, a, port) => d.addConntrackOrigin(p, a, port));
    return { source: src.ss, ...o, sockets: d.sockets, conntrackEntries: src.conntrack ? d.conntrackEntries : null, ...d.result(), skippedSockets: stats.skipped };
  } else {
    // Without root ss hides other users' processes and conntrack -L fails: the answer would be wrong.
    if (!isRoot()) throw new PrivilegeError("leaks reads every process's sockets (ss -p) and the conntrack table: run it as root (or give saved files: --ss-file, --conntrack-file)");
    requireTool('conntrack');
    source = describeTarget(src.target);
    sockets = await parseSs(runInTarget(src.target, 'ss', ['-tanoepi']).stdout, { stats });
    entries = await parseConntrack(runInTarget(src.target, 'conntrack', ['-L']).stdout, { lenient: true });
  }
  const { leaks, halfLeaks } = findLeaks(sockets, entries, o);
  return { source, ...o, sockets: sockets.length, conntrackEntries: entries?.length ?? null, leaks, halfLeaks, skippedSockets: stats.skipped };
}
