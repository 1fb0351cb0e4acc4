/** The lab's verdict matrix for people, and its JSON for machines. */
import type { LabReport } from '../lab/runner.js';
import type { CellResult } from '../lab/oow.js';
import { formatMs } from '../util/duration.js';

const sign = (o: number) => (o >= 0 ? `+${o}` : `${o}`);

function mark(c: CellResult): string {
  const v = c.verdict === 'reset' ? 'RESET' : c.verdict;
  return `${v} ${c.match ? '✓' : `✗ (expected ${c.expected})`}`;
}

export function labJson(r: LabReport): object {
  return {
    kernel: r.kernel,
    profile: r.profile,
    profileLabel: r.profileLabel,
    scenario: r.scenario,
    run: r.run,
    kernelLog: r.kernelLog,
    ms: r.ms,
    matched: r.cells.every((c) => c.match),
    cells: r.cells.map((c) => ({
      id: c.id,
      offset: c.offset,
      mitigation: c.mitigation,
      natted: c.natted,
      verdict: c.verdict,
      expected: c.expected,
      match: c.match,
      why: c.why,
      invalidLog: c.invalidLog,
      invalidCount: c.invalidCount,
      ms: c.ms,
      client: c.client,
    })),
    ...(r.kept ? { kept: r.kept } : {}),
  };
}

export function labText(r: LabReport): string {
  const out: string[] = [];
  out.push(`ctprobe lab ${r.scenario} — kernel ${r.kernel} (profile ${r.profile}: ${r.profileLabel})`);
  out.push(`  on this kernel: ${r.profileSummary}`);
  out.push('');
  const mitigations = [...new Set(r.cells.filter((c) => c.natted).map((c) => c.mitigation))];
  const offsets = [...new Set(r.cells.map((c) => c.offset))];
  const hasControl = r.cells.some((c) => !c.natted);
  const cols = [...mitigations.map((m) => `NAT, ${m}`), ...(hasControl ? ['no NAT (control)'] : [])];
  const width = Math.max(22, ...r.cells.map((c) => mark(c).length + 2));
  out.push('offset'.padEnd(10) + cols.map((c) => c.padEnd(width)).join(''));
  for (const o of offsets) {
    const row = mitigations.map((m) => r.cells.find((c) => c.natted && c.offset === o && c.mitigation === m));
    if (hasControl) row.push(r.cells.find((c) => !c.natted && c.offset === o));
    out.push(sign(o).padEnd(10) + row.map((c) => (c ? mark(c) : '-').padEnd(width)).join(''));
  }
  out.push('');
  const mismatches = r.cells.filter((c) => !c.match);
  if (mismatches.length) {
    out.push(`!! ${mismatches.length} cell(s) differ from what this kernel's profile predicts — a finding, not noise:`);
    for (const c of mismatches) out.push(`   ${c.id}: saw ${c.verdict}, expected ${c.expected} (${c.why})`);
    out.push('');
  } else {
    out.push(`Every cell matches this kernel's profile (${r.cells.length} cells, ${formatMs(r.ms)}).`);
    out.push('');
  }
  out.push('Per cell (why, and what the kernel logged):');
  for (const c of r.cells) {
    const inv = c.invalidCount === null ? '' : `, conntrack invalid +${c.invalidCount}`;
    out.push(`  ${c.id.padEnd(22)} ${c.verdict.padEnd(7)} ${formatMs(c.ms).padStart(6)}${inv}`);
    out.push(`      ${c.why}`);
    for (const l of c.invalidLog.slice(0, 4)) out.push(`      kernel: ${l.replace(/ IN=.*$/, '').slice(0, 140)}`);
    if (c.invalidLog.length > 4) out.push(`      kernel: … ${c.invalidLog.length - 4} more line(s)`);
  }
  if (r.kernelLog === 'unavailable') out.push('', 'note: the kernel log could not be read (/dev/kmsg or nf_log_all_netns), so no log lines were collected.');
  out.push('');
  out.push('Fixes on a real host: `ctprobe fix apply --method drop-invalid --chain INPUT` (drops INVALID packets before the');
  out.push("host's TCP answers them) or `--method be-liberal` (conntrack stops judging windows); see `ctprobe audit`.");
  if (r.kept) {
    out.push('', 'Topology kept (remove with `ctprobe lab clean`). Explore it with:');
    for (const ns of r.kept.slice(0, 3)) {
      out.push(`  ip netns exec ${ns.host} conntrack -L          # the NAT host's conntrack table`);
      out.push(`  ip netns exec ${ns.host} iptables-save`);
      out.push(`  ip netns exec ${ns.container} sh               # a shell in the container`);
    }
    if (r.kept.length > 3) out.push(`  … and ${r.kept.length - 3} more cell(s): ip netns list | grep ctp-lab-${r.run}`);
  }
  return out.join('\n');
}
