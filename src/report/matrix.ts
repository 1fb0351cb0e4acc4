/** The lab's results for people (a matrix for oow-rst, a table otherwise) and for machines. */
import type { LabProgress, LabReport } from '../lab/runner.js';
import type { CleanReport } from '../lab/state.js';
import type { Renderer } from './output.js';
import type { LabCellResult } from '../lab/scenario.js';
import { formatMs } from '../util/duration.js';
import { paint, padVisible, visibleLength, wrapText } from './text.js';

const sign = (o: number) => (o >= 0 ? `+${o}` : `${o}`);

const BAD = new Set(['reset', 'leak', 'reuse-timeout', 'timeout']);

/** A cell as people read it: bad outcomes in capitals (red on a terminal), ✓ or ✗ expected. */
function mark(c: LabCellResult, short = false): string {
  const v = BAD.has(c.verdict) ? paint(c.verdict.toUpperCase(), 'red') : c.verdict;
  return `${v} ${c.match ? paint('✓', 'green') : paint(short ? `✗≠${c.expected}` : `✗ (expected ${c.expected})`, 'yellow')}`;
}

export function labJson(r: LabReport): { type: string } & Record<string, unknown> {
  return {
    type: 'lab-run',
    kernel: r.kernel,
    kernelVersion: r.kernelVersion,
    profile: r.profile,
    profileLabel: r.profileLabel,
    scenario: r.scenario,
    run: r.run,
    kernelLog: r.kernelLog,
    logBackend: r.logBackend,
    logModulesLoaded: r.logModulesLoaded,
    ...(r.logWhy ? { logWhy: r.logWhy } : {}),
    ms: r.ms,
    matched: r.cells.every((c) => c.match),
    cells: r.cells.map((c) => ({
      id: c.id,
      ...c.details,
      verdict: c.verdict,
      expected: c.expected,
      match: c.match,
      why: c.why,
      invalidLog: c.invalidLog,
      invalidCount: c.invalidCount,
      ms: c.ms,
    })),
    ...(r.kept ? { kept: r.kept } : {}),
    ...(r.guest ? { engine: 'qemu-guest', guest: r.guest } : {}),
  };
}

/** Offsets × mitigations, fitting 80 columns: short column names, a legend above. */
function oowMatrix(r: LabReport): string[] {
  const d = (c: LabCellResult) => c.details as { offset: number; mitigation: string; natted: boolean };
  const mitigations = [...new Set(r.cells.filter((c) => d(c).natted).map((c) => d(c).mitigation))];
  const offsets = [...new Set(r.cells.map((c) => d(c).offset))];
  const hasControl = r.cells.some((c) => !d(c).natted);
  const cols = [...mitigations, ...(hasControl ? ['control'] : [])];
  const rows = offsets.map((o) => {
    const row = mitigations.map((m) => r.cells.find((c) => d(c).natted && d(c).offset === o && d(c).mitigation === m));
    if (hasControl) row.push(r.cells.find((c) => !d(c).natted && d(c).offset === o));
    return { o, cells: row.map((c) => (c ? mark(c, true) : '-')) };
  });
  const width = Math.max(...cols.map((c) => c.length), ...rows.flatMap((x) => x.cells.map(visibleLength))) + 2;
  return [
    `columns: the NAT host's mitigation${hasControl ? '; control = the client on the host itself, no NAT' : ''}`,
    'offset'.padEnd(9) + cols.map((c) => c.padEnd(width)).join('').trimEnd(),
    ...rows.map((x) => sign(x.o).padEnd(9) + x.cells.map((c) => padVisible(c, width)).join('').trimEnd()),
  ];
}

function detailLine(c: LabCellResult): string {
  const x = c.details as Record<string, unknown>;
  const parts: string[] = [];
  if (typeof x.reclaimedAfterMs === 'number') parts.push(`reclaimed ${formatMs(x.reclaimedAfterMs)} after the app's FIN`);
  const reuse = x.reuse as { result?: string; ms?: number } | null | undefined;
  if (reuse) parts.push(`reuse of the source port: ${reuse.result} in ${formatMs(reuse.ms ?? 0)}`);
  const leak = x.leak as { finWait2: string; closeWait: string | null } | null | undefined;
  if (leak) parts.push(`left: ${leak.finWait2.split(' ').slice(0, 5).join(' ')}${leak.closeWait ? ` + ${leak.closeWait.split(' ').slice(0, 5).join(' ')}` : ''}`);
  return parts.join('; ');
}

export function labText(r: LabReport): string {
  const out: string[] = [];
  out.push(`ctprobe lab ${r.scenario} — kernel ${r.kernel} (profile ${r.profile}: ${r.profileLabel})`);
  if (r.guest) {
    const g = r.guest;
    out.push(`  in a qemu guest: ${g.package ? `Debian ${g.package} ${g.version}` : g.release}, ${g.accel === 'kvm' ? 'KVM' : 'software emulation (TCG)'}, booted in ${formatMs(g.bootMs)}`);
  }
  if (r.logModulesLoaded.length) out.push(`  kernel log: no nf_log backend was bound; loaded ${r.logModulesLoaded.join(' + ')} (logger ${r.logBackend})`);
  if (r.scenario === 'oow-rst') out.push(`  on this kernel: ${r.profileSummary}`);
  out.push('');
  if (r.scenario === 'oow-rst') out.push(...oowMatrix(r));
  else for (const c of r.cells) out.push(`${c.id.padEnd(28)} ${mark(c)}`);
  out.push('');
  const mismatches = r.cells.filter((c) => !c.match);
  if (mismatches.length) {
    out.push(`!! ${mismatches.length} cell(s) differ from what this kernel's profile predicts — a finding, not noise:`);
    for (const c of mismatches) out.push(`   ${c.id}: saw ${c.verdict}, expected ${c.expected} (${c.why})`);
  } else out.push(`Every cell matches this kernel's profile (${r.cells.length} cells, ${formatMs(r.ms)}).`);
  out.push('', 'Per cell (why, and what the kernel logged):');
  for (const c of r.cells) {
    const inv = c.invalidCount === null ? '' : `, conntrack invalid +${c.invalidCount}`;
    out.push(`  ${c.id.padEnd(28)} ${c.verdict.padEnd(15)} ${formatMs(c.ms).padStart(6)}${inv}`);
    out.push(...wrapText(c.why, 78, '      '));
    const extra = detailLine(c);
    if (extra) out.push(...wrapText(extra, 78, '      '));
    for (const l of c.invalidLog.slice(0, 4)) out.push(`      kernel: ${l.replace(/ IN=.*$/, '').slice(0, 64)}`);
    if (c.invalidLog.length > 4) out.push(`      kernel: … ${c.invalidLog.length - 4} more line(s)`);
  }
  if (r.kernelLog === 'unavailable') out.push('', ...wrapText(`note: no kernel log lines were collected: ${r.logWhy ?? 'the kernel log could not be read'}.`, 96, ''));
  out.push('');
  if (r.scenario === 'oow-rst') {
    out.push('Fixes on a real host: `ctprobe fix apply --method drop-invalid --chain INPUT` (drops INVALID packets before the');
    out.push("host's TCP answers them) or `--method be-liberal` (conntrack stops judging windows); see `ctprobe audit`.");
  } else {
    out.push('Fixes on a real host: keep nf_conntrack_tcp_timeout_close_wait above the longest time an application waits');
    out.push("before closing a half-closed connection, and lower the proxy's idle_timeout; find leaks with `ctprobe leaks`.");
  }
  if (r.kept) {
    out.push('', 'Topology kept (remove with `ctprobe lab clean`). Explore it with:');
    for (const n of r.kept.slice(0, 6)) out.push(`  ip netns exec ${n} sh`);
    out.push(`  (all: ip netns list | grep ctp-lab-${r.run}; e.g. ip netns exec NS conntrack -L, ip netns exec NS ss -tanoep)`);
  }
  return out.join('\n');
}

export const labRun: Renderer<LabReport> = { text: labText, json: labJson };

/** One progress line per event (stderr). */
export function labProgressLine(ev: LabProgress): string {
  if (ev.type === 'guest') return `guest ${ev.text}`;
  if (ev.type === 'start') return `lab run ${ev.run}: ${ev.cells} cells on kernel ${ev.kernel} (profile ${ev.profile})`;
  const c = ev.cell;
  return `  [${ev.done}/${ev.total}] ${c.id.padEnd(26)} ${c.verdict.padEnd(15)} ${c.match ? 'as expected' : `EXPECTED ${c.expected}`}  ${formatMs(c.ms)}`;
}

export const labClean: Renderer<CleanReport> = {
  json: (r) => ({ type: 'lab-clean', ...r }),
  text(r) {
    const out = [r.removed.length ? `removed ${r.removed.length}: ${r.removed.join(' ')}` : 'nothing to clean'];
    if (r.skippedLive.length) out.push(`left ${r.skippedLive.length} namespace(s) of a lab run still in progress`);
    if (r.restoredLogAllNetns !== null) out.push(`restored net.netfilter.nf_log_all_netns=${r.restoredLogAllNetns}`);
    return out.join('\n');
  },
};

export interface LabList {
  scenarios: Array<{ name: string; what: string; mitigations: string[] }>;
  namespaces: Array<{ name: string; live: boolean }>;
}

export const labList: Renderer<LabList> = {
  json: (r) => ({ type: 'lab-list', ...r }),
  text(r) {
    const out = ['scenarios:', ...r.scenarios.map((s) => `  ${s.name.padEnd(16)} ${s.what}`)];
    if (!r.namespaces.length) out.push('no lab namespaces now');
    else out.push('lab namespaces now:', ...r.namespaces.map((n) => `  ${n.name}${n.live ? '' : '  (leftover: ctprobe lab clean)'}`));
    return out.join('\n');
  },
};
