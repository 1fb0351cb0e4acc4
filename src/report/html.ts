/**
 * Self-contained HTML pages (inline CSS and SVG, nothing fetched, readable printed): `explain`'s
 * diagrams, and the lab report's index with the verdict matrix linking to each cell's files.
 */
import type { ExplainSummary } from '../conntrack/explain.js';
import type { LabCellResult } from '../lab/scenario.js';
import type { LabReport } from '../lab/runner.js';
import { formatMs } from '../util/duration.js';
import { endpointText, type FlowTrace } from './flows.js';
import { html, raw, type Markup } from './markup.js';
import { COLOURS, partiesSvg, sequenceSvg, type Party } from './sequence.js';
import { wallClock, type TimeStyle } from './explain-text.js';

const CSS = `
body{font-family:"DejaVu Sans",Helvetica,Arial,sans-serif;color:#1b1b1b;background:#fff;margin:24px;max-width:1180px}
h1{font-size:20px;margin:0 0 6px}h2{font-size:16px;margin:28px 0 6px}
p,li,td,th{font-size:13px;line-height:1.45}
.meta{color:#555f6b}
table{border-collapse:collapse;margin:8px 0}
td,th{border:1px solid #c8ced6;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f5f8}
td.num{text-align:right}
.bad{color:${COLOURS.invalid};font-weight:bold}
.ok{background:#e6f4ea}.reset,.leak{background:#fde8e8}.miss{outline:3px solid #b35c00;outline-offset:-3px}
.cell a{margin-right:8px}
svg.sequence{max-width:100%;height:auto;border:1px solid #e3e7ec;margin:6px 0}
code{font-size:12px}pre{font-size:11px;white-space:pre-wrap;word-break:break-all;background:#f7f8fa;padding:8px}
@media print{body{margin:0;max-width:none}svg.sequence{border:none;break-inside:avoid}a{color:inherit;text-decoration:none}h2{break-after:avoid}}
`;

function page(title: string, body: Markup | Markup[]): string {
  return `<!DOCTYPE html>\n${html`<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${title}</title><style>${raw(CSS)}</style></head><body>
${body}
</body></html>`}\n`;
}

export interface ExplainPage {
  file: string;
  kernel: string;
  profile: string;
  profileLabel: string;
  summary: ExplainSummary;
  flows: FlowTrace[];
  time: TimeStyle;
  t0: number;
  /** Connections left out of the page (beyond the page's limit). */
  flowsOmitted: number;
  /** The kernel's own invalid-packet log lines for this capture (a lab cell's), shown under the diagrams. */
  kernelLog?: string[];
  /** Every connection in one diagram, a column per named party (explain --party). */
  parties?: Party[];
}

/** `explain --html`: a summary table, then one diagram per connection. */
export function explainHtml(p: ExplainPage): string {
  const s = p.summary;
  const rows = p.flows.map(
    (f, i) => html`<tr><td><a href="#flow-${i + 1}">${f.id}</a></td><td>${f.nat ? endpointText(f.nat) : '—'}</td><td class="num">${f.counts.packets}</td><td class="num">${f.counts.ignore}</td><td class="num${f.counts.invalid ? ' bad' : ''}">${f.counts.invalid}</td><td${f.counts.hostResets ? html` class="bad"` : ''}>${f.counts.hostResets ? 'reset by the NAT host' : '—'}</td><td>${f.finalState}</td></tr>`,
  );
  const diagrams = p.flows.map((f, i) => html`<h2 id="flow-${i + 1}">${i + 1}. ${f.id}</h2>${sequenceSvg(f, { time: p.time, t0: p.t0 })}`);
  const overview = p.parties?.length
    ? html`<h2 id="parties">All connections, one column per party</h2>${partiesSvg(p.parties.map((x) => x.name).join(' · '), p.flows, p.parties, { time: p.time, t0: p.t0 })}<p class="meta">The same packets, connection by connection:</p>`
    : '';
  const when = p.time === 'relative' ? `times relative to the first packet shown (${wallClock(p.t0)} UTC)` : p.time === 'wall' ? 'times of day, UTC' : 'times in seconds since the epoch';
  return page(
    `ctprobe explain ${p.file}`,
    html`<h1>ctprobe explain — ${p.file}</h1>
<p class="meta">Modelling kernel ${p.kernel} (profile ${p.profile}: ${p.profileLabel}). ${s.tcp} TCP packets (${s.duplicates} duplicate copies of a packet seen on several interfaces not drawn): ${s.accept} accept, ${s.ignore} ignore, <span class="${s.invalid ? 'bad' : ''}">${s.invalid} INVALID</span>. Sequence numbers are relative to each side's first; the kernel's reasons quote them as the kernel logs them (absolute); ${when}.</p>
${s.invalid ? html`<p>INVALID packets are not de-NATed: behind NAT they reach the host itself, whose TCP answers with RST. Fixes: <code>ctprobe fix apply --method drop-invalid</code> or <code>--method be-liberal</code> (see <code>ctprobe audit</code>).</p>` : ''}
<table><tr><th>connection</th><th>NAT host</th><th>packets</th><th>IGNORE</th><th>INVALID</th><th>consequence</th><th>final state</th></tr>${rows}</table>
${p.flowsOmitted ? html`<p class="meta">${p.flowsOmitted} more connection(s) not drawn: choose with --flow.</p>` : ''}
${overview}
${diagrams}
${p.kernelLog ? html`<h2>The kernel's log lines (nf_conntrack_log_invalid)</h2>${p.kernelLog.length ? html`<pre>${p.kernelLog.join('\n')}</pre>` : html`<p>none</p>`}` : ''}`,
  );
}

export interface LabCellLinks {
  cell: LabCellResult;
  /** Relative links, each null when the file is not there. */
  diagram: string | null;
  log: string | null;
  capture: string | null;
}

const sign = (o: number) => (o >= 0 ? `+${o}` : `${o}`);

function cellBox(l: LabCellLinks | undefined): Markup {
  if (!l) return html`<td>—</td>`;
  const c = l.cell;
  const cls = `${c.verdict === 'reset' || c.verdict === 'leak' ? c.verdict : c.verdict === 'clean' || c.verdict === 'reclaimed' ? 'ok' : ''}${c.match ? '' : ' miss'}`;
  return html`<td class="cell ${cls}"><b>${c.verdict.toUpperCase()}</b> ${c.match ? '✓ as expected' : html`<span class="bad">✗ expected ${c.expected}</span>`}<br>${links(l)}</td>`;
}

function links(l: LabCellLinks): Markup {
  return html`${l.diagram ? html`<a href="${l.diagram}">diagram</a>` : ''}${l.log ? html`<a href="${l.log}">kernel log (${l.cell.invalidLog.length})</a>` : ''}${l.capture ? html`<a href="${l.capture}">capture</a>` : ''}`;
}

/** `lab --report DIR`: the verdict matrix, coloured, each cell linking to its diagram, log and capture. */
export function labReportHtml(r: LabReport, cells: LabCellLinks[]): string {
  const byId = new Map(cells.map((l) => [l.cell.id, l]));
  let matrix: Markup;
  if (r.scenario === 'oow-rst') {
    const d = (c: LabCellResult) => c.details as { offset: number; mitigation: string; natted: boolean };
    const mitigations = [...new Set(r.cells.filter((c) => d(c).natted).map((c) => d(c).mitigation))];
    const offsets = [...new Set(r.cells.map((c) => d(c).offset))];
    const control = r.cells.some((c) => !d(c).natted);
    const find = (o: number, m: string | null) => r.cells.find((c) => d(c).offset === o && (m === null ? !d(c).natted : d(c).natted && d(c).mitigation === m));
    matrix = html`<table><tr><th>offset</th>${mitigations.map((m) => html`<th>NAT, ${m}</th>`)}${control ? html`<th>no NAT (control)</th>` : ''}</tr>${offsets.map(
      (o) => html`<tr><th>${sign(o)}</th>${mitigations.map((m) => cellBox(byId.get(find(o, m)?.id ?? '')))}${control ? cellBox(byId.get(find(o, null)?.id ?? '')) : ''}</tr>`,
    )}</table>`;
  } else matrix = html`<table><tr><th>cell</th><th>verdict</th></tr>${r.cells.map((c) => html`<tr><th>${c.id}</th>${cellBox(byId.get(c.id))}</tr>`)}</table>`;
  const mismatches = r.cells.filter((c) => !c.match);
  const detail = r.cells.map((c) => {
    const l = byId.get(c.id);
    return html`<tr><td>${c.id}</td><td>${c.verdict}</td><td>${c.expected}</td><td>${c.why}</td><td class="num">${c.invalidCount ?? '?'}</td><td class="num">${formatMs(c.ms)}</td><td class="cell">${l ? links(l) : ''}</td></tr>`;
  });
  return page(
    `ctprobe lab ${r.scenario} — ${r.kernel}`,
    html`<h1>ctprobe lab ${r.scenario}</h1>
<p class="meta">Kernel ${r.kernel} (profile ${r.profile}: ${r.profileLabel}); run ${r.run}; ${r.cells.length} cells in ${formatMs(r.ms)}; kernel log ${r.kernelLog}.</p>
${mismatches.length ? html`<p class="bad">${mismatches.length} cell(s) differ from what this kernel's profile predicts — a finding, not noise.</p>` : html`<p>Every cell matches this kernel's profile.</p>`}
${matrix}
<p class="meta">Red: the connection was reset (or leaked); green: clean. An amber outline marks a cell that differs from its expectation. Each diagram replays the cell's capture (tcpdump -i any on the NAT/app host) through ctprobe's conntrack model.</p>
<h2>Per cell</h2>
<table><tr><th>cell</th><th>observed</th><th>expected</th><th>why</th><th>conntrack invalid</th><th>time</th><th>files</th></tr>${detail}</table>`,
  );
}
