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

export interface Source {
  file: string;
  tool: string;
  args: string[];
  what: string;
}

export const SOURCES = {
  ssAll: { file: 'ss-naoep.txt', tool: 'ss', args: ['-naoep'], what: 'all sockets (ss -naoep)' },
  ssTcp: { file: 'ss-tanoepi.txt', tool: 'ss', args: ['-tanoepi'], what: 'TCP sockets (ss -tanoepi)' },
  conntrackList: { file: 'conntrack-L.txt', tool: 'conntrack', args: ['-L'], what: 'conntrack entries (conntrack -L)' },
  conntrackStats: { file: 'conntrack-S.txt', tool: 'conntrack', args: ['-S'], what: 'conntrack counters (conntrack -S)' },
  iptablesSave: { file: 'iptables-save.txt', tool: 'iptables-save', args: [], what: 'iptables rules (iptables-save)' },
  ip6tablesSave: { file: 'ip6tables-save.txt', tool: 'ip6tables-save', args: [], what: 'ip6tables rules (ip6tables-save)' },
  iptablesVersion: { file: 'iptables-version.txt', tool: 'iptables', args: ['-V'], what: 'iptables backend (iptables -V)' },
  iptablesLegacySave: { file: 'iptables-legacy-save.txt', tool: 'iptables-legacy-save', args: [], what: 'legacy iptables rules' },
  iptablesNftSave: { file: 'iptables-nft-save.txt', tool: 'iptables-nft-save', args: [], what: 'nf_tables iptables rules' },
  nft: { file: 'nft.json', tool: 'nft', args: ['-j', 'list', 'ruleset'], what: 'nft ruleset (nft -j list ruleset)' },
  nstat: { file: 'nstat.txt', tool: 'nstat', args: ['-asz'], what: 'SNMP counters (nstat)' },
  addr: { file: 'ip-addr.txt', tool: 'ip', args: ['-d', 'addr'], what: 'addresses (ip addr)' },
  route: { file: 'ip-route.txt', tool: 'ip', args: ['route', 'show', 'table', 'all'], what: 'routes (ip route)' },
  kernelLog: { file: 'kernel-log.txt', tool: 'dmesg', args: [], what: 'kernel log (dmesg)' },
  uname: { file: 'uname.txt', tool: 'uname', args: ['-a'], what: 'kernel (uname -a)' },
} as const satisfies Record<string, Source>;

export type SourceName = keyof typeof SOURCES;

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
