/**
 * What ctprobe reads from a host, as one table: each source is a file name (in a support bundle),
 * the tool and arguments that produce it, and whether failing to read it matters. Live commands
 * and `collect` run the same table, and offline analysis reads the same files back, so an analysis
 * run live and one run from a bundle see the same data and give the same answer.
 */
import { release } from 'node:os';
import { findTool, TOOL_PACKAGE } from './exec.js';
import { readConntrackSysctls } from './sysctl.js';
import { describeTarget, runInTarget, type Target } from './target.js';

import { SOURCES, type Source, type SourceName } from './source-table.js';

export { SOURCES, type Source, type SourceName } from './source-table.js';

/** One source as read: its text, or null with why it could not be read. */
export type Read = { text: string; why: null } | { text: null; why: string };

/** Everything read from one host or pod: by source, plus the sysctls and the kernel release. */
export interface HostData {
  target: string;
  kernelRelease: string;
  sysctls: Record<string, number | null>;
  reads: Partial<Record<SourceName, Read>>;
}

const firstLine = (t: string) => t.trim().split('\n')[0] ?? '';

export function readSource(t: Target, s: Source): Read {
  if (!findTool(s.tool)) return { text: null, why: `'${s.tool}' not installed (apt-get install -y ${TOOL_PACKAGE[s.tool] ?? s.tool})` };
  const r = runInTarget(t, s.tool, s.args, { allowFail: true, timeoutMs: 60_000 });
  if (r.status !== 0) return { text: null, why: `${[s.tool, ...s.args].join(' ')} failed: ${firstLine(r.stderr) || `exit ${r.status}`}` };
  return { text: r.stdout, why: null };
}

/** Read the named sources from a live target. */
export function readHost(t: Target, names: readonly SourceName[]): HostData {
  const reads: HostData['reads'] = {};
  for (const n of names) reads[n] = readSource(t, SOURCES[n]);
  return { target: describeTarget(t), kernelRelease: release(), sysctls: readConntrackSysctls(t), reads };
}
