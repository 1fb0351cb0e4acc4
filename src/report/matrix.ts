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
    engine: r.engine,
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
      ...(c.phases ? { phases: c.phases } : {}),
    })),
    ...(r.kept ? { kept: r.kept } : {}),
    ...(r.guest ? { engine: 'qemu-guest', guest: r.guest } : {}),
  };
}

/** Offsets × mitigations, fitting 80 columns: short column names, a legend above. */
function oowMatrix(r: LabReport): string[] {
  // A swarm task is its own column: the same mitigation, another path out (docker_gwbridge).
  const d = (c: LabCellResult) => {
    const x = c.details as { offset: number; mitigation: string; natted: boolean; via?: string; family?: number };
    return { ...x, mitigation: x.via === 'swarm' ? 'swarm' : x.mitigation };
  };
  const mitigations = [...new Set(r.cells.filter((c) => d(c).natted).map((c) => d(c).mitigation))];
  // Rows: offset, per IP family (IPv6 rows carry /v6).
  const rowKey = (c: LabCellResult) => `${sign(d(c).offset)}${d(c).family === 6 ? '/v6' : ''}`;
  const rowKeys = [...new Set(r.cells.map(rowKey))];
  const hasControl = r.cells.some((c) => !d(c).natted);
  const cols = [...mitigations, ...(hasControl ? ['control'] : [])];
  const rows = rowKeys.map((o) => {
    const row = mitigations.map((m) => r.cells.find((c) => d(c).natted && rowKey(c) === o && d(c).mitigation === m));
    if (hasControl) row.push(r.cells.find((c) => !d(c).natted && rowKey(c) === o));
    return { o, cells: row.map((c) => (c ? mark(c, true) : '-')) };
  });
  const width = Math.max(...cols.map((c) => c.length), ...rows.flatMap((x) => x.cells.map(visibleLength))) + 2;
  return [
    r.engine.name === 'docker'
      ? `columns: the Docker host's mitigation; swarm = a swarm service's task (docker_gwbridge)${hasControl ? '; control = a --network host container, no NAT' : ''}`
      : `columns: the NAT host's mitigation${hasControl ? '; control = the client on the host itself, no NAT' : ''}`,
    'offset'.padEnd(12) + cols.map((c) => c.padEnd(width)).join('').trimEnd(),
    ...rows.map((x) => x.o.padEnd(12) + x.cells.map((c) => padVisible(c, width)).join('').trimEnd()),
  ];
}

/** k8s-service: rows = how the client reaches the Service (and family), columns = kube-proxy / node setting. */
function k8sMatrix(r: LabReport): string[] {
  const d = (c: LabCellResult) => c.details as { path: string; family: number; mitigation: string; resetBy: string | null };
  const cols = [...new Set(r.cells.map((c) => d(c).mitigation))];
  const rows = [...new Set(r.cells.map((c) => `${d(c).path}${d(c).family === 6 ? '/v6' : ''}`))];
  const by = (x: string | null) => (x === 'client-pod' ? 'pod' : x === 'client-node' ? 'node' : x === 'server-side' ? 'srv' : '?');
  const cell = (c: LabCellResult | undefined) => (c ? `${mark(c, true)}${c.verdict === 'reset' ? ` ${by(d(c).resetBy)}` : ''}` : '-');
  const table = rows.map((row) => ({ row, cells: cols.map((m) => cell(r.cells.find((c) => `${d(c).path}${d(c).family === 6 ? '/v6' : ''}` === row && d(c).mitigation === m))) }));
  const width = Math.max(...cols.map((c) => c.length), ...table.flatMap((x) => x.cells.map(visibleLength))) + 2;
  const head = Math.max(...rows.map((x) => x.length)) + 2;
  // Columns are wide: print them as two blocks when they do not fit 80 columns.
  const perBlock = Math.max(1, Math.floor((80 - head) / width));
  const out = ['RESET pod: the client pod sent the RST; RESET node: the client’s node did (its own stack)'];
  for (let i = 0; i < cols.length; i += perBlock) {
    const idx = cols.slice(i, i + perBlock).map((_, j) => i + j);
    out.push('service'.padEnd(head) + idx.map((j) => cols[j]!.padEnd(width)).join('').trimEnd());
    for (const x of table) out.push(x.row.padEnd(head) + idx.map((j) => padVisible(x.cells[j]!, width)).join('').trimEnd());
  }
  return out;
}

function detailLine(c: LabCellResult): string {
  const x = c.details as Record<string, unknown>;
  const parts: string[] = [];
  if (typeof x.models === 'string') parts.push(`models ${x.models}`);
  if (c.verdict === 'reset' && 'resetBy' in x) parts.push(`RST sent by ${String(x.resetBy ?? 'unknown')} (seen on the client's node)${x.rstSourceAtServer ? `, reached the server from ${String(x.rstSourceAtServer)}` : ''}`);
  if (typeof x.reclaimedAfterMs === 'number') parts.push(`reclaimed ${formatMs(x.reclaimedAfterMs)} after the app's FIN`);
  const reuse = x.reuse as { result?: string; ms?: number } | null | undefined;
  if (reuse) parts.push(`reuse of the source port: ${reuse.result} in ${formatMs(reuse.ms ?? 0)}`);
  const leak = x.leak as { finWait2: string; closeWait: string | null } | null | undefined;
  if (leak) parts.push(`left: ${leak.finWait2.split(' ').slice(0, 5).join(' ')}${leak.closeWait ? ` + ${leak.closeWait.split(' ').slice(0, 5).join(' ')}` : ''}`);
  return parts.join('; ');
}

export function labText(r: LabReport): string {
  const out: string[] = [];
  out.push(`ctprobe lab ${r.scenario} — kernel ${r.kernel} (profile ${r.profile}: ${r.profileLabel})${r.engine.name === 'netns' ? '' : `, engine ${r.engine.name} ${r.engine.version}`}`);
  if (r.guest) {
    const g = r.guest;
    out.push(`  in a qemu guest: ${g.package ? `Debian ${g.package} ${g.version}` : g.release}, ${g.accel === 'kvm' ? 'KVM' : 'software emulation (TCG)'}, booted in ${formatMs(g.bootMs)}`);
  }
  if (r.logModulesLoaded.length) out.push(`  kernel log: no nf_log backend was bound; loaded ${r.logModulesLoaded.join(' + ')} (logger ${r.logBackend})`);
  if (r.scenario === 'oow-rst') out.push(`  on this kernel: ${r.profileSummary}`);
  out.push('');
  if (r.scenario === 'oow-rst') out.push(...oowMatrix(r));
  else if (r.scenario === 'k8s-service') out.push(...k8sMatrix(r));
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
    for (const l of c.invalidLog.slice(0, 4)) out.push(...wrapText(`kernel: ${l.replace(/ IN=.*$/, '')}`, 78, '      ').map((x, i) => (i ? `        ${x.trimStart()}` : x)));
    if (c.invalidLog.length > 4) out.push(`      kernel: … ${c.invalidLog.length - 4} more line(s)`);
  }
  if (r.kernelLog === 'unavailable') out.push('', ...wrapText(`note: no kernel log lines were collected: ${r.logWhy ?? 'the kernel log could not be read'}.`, 96, ''));
  out.push('');
  if (r.scenario === 'k8s-service') {
    out.push(...wrapText('Fixes on a real node: the RST from the pod (ClusterIP) is stopped by an INVALID drop in FORWARD (kube-proxy v1.15+ writes it unless be_liberal is on); the RST from the node (NodePort, masquerade) by one in INPUT; be_liberal stops both. `ctprobe audit` says which of the two this node is protected against.', 80));
  } else if (r.scenario === 'oow-rst') {
    out.push(...wrapText("Fixes on a real host: `ctprobe fix apply --method drop-invalid --chain INPUT` (drops INVALID packets before the host's TCP answers them) or `--method be-liberal` (conntrack stops judging windows); see `ctprobe audit`.", 80));
  } else {
    out.push(...wrapText("Fixes on a real host: keep nf_conntrack_tcp_timeout_close_wait above the longest time an application waits before closing a half-closed connection, and lower the proxy's idle_timeout; find leaks with `ctprobe leaks`.", 80));
  }
  if (r.kept) {
    out.push('', 'Topology kept (remove with `ctprobe lab clean`). Explore it with:');
    const daemons = r.kept.filter((k) => k.startsWith('dockerd '));
    for (const n of r.kept.filter((k) => !k.startsWith('dockerd ')).slice(0, 6)) out.push(`  ip netns exec ${n} sh`);
    for (const d of daemons.slice(0, 4)) out.push(`  docker -H unix://${d.slice('dockerd '.length)} ps -a`);
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
