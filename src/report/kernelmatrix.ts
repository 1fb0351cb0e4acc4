/**
 * The kernel matrix's verdict and README table, from the `lab SCENARIO --kernel REL -o json`
 * documents that scripts/kernel-matrix.sh collects (DIR/<REL>/<scenario>.json). Pure: the script
 * scripts/kernel-matrix-table.mjs reads the files and rewrites the README between the markers.
 */

export interface MatrixRun {
  series: string;
  scenario: string;
  /** The `lab -o json` document; null when the run produced none. */
  doc: MatrixDoc | null;
}

export interface MatrixDoc {
  type: string;
  kernel: string;
  scenario: string;
  kernelLog: string;
  ms: number;
  cells: Array<{ id: string; verdict: string; expected: string; match: boolean; invalidLog: string[] }>;
  guest?: { accel: string; package: string | null; version: string | null; bootMs: number };
}

/** Scenarios whose cells must show kernel log lines on every kernel (INVALID / ignored packets). */
const MUST_LOG = new Set(['oow-rst', 'port-reuse']);

/** What is wrong with a matrix, one line each; empty when it holds. */
export function matrixProblems(runs: MatrixRun[]): string[] {
  const out: string[] = [];
  for (const r of runs) {
    const at = `${r.series} ${r.scenario}`;
    if (!r.doc) {
      out.push(`${at}: no result`);
      continue;
    }
    if (!r.doc.kernel.startsWith(`${r.series}.`)) out.push(`${at}: ran on ${r.doc.kernel}, not ${r.series}`);
    if (!r.doc.cells.length) out.push(`${at}: no cells`);
    for (const c of r.doc.cells) if (!c.match) out.push(`${at}: ${c.id} saw ${c.verdict}, expected ${c.expected}`);
    const lines = r.doc.cells.reduce((n, c) => n + c.invalidLog.length, 0);
    if (MUST_LOG.has(r.scenario) && lines === 0) out.push(`${at}: no kernel log line attributed to any cell (kernelLog ${r.doc.kernelLog})`);
  }
  return out;
}

/** The README table: one row per kernel, one column per scenario (cells matched / cells). */
export function matrixTable(runs: MatrixRun[], date: string): string {
  const order = ['oow-rst', 'half-close-leak', 'port-reuse'];
  const rank = (x: string) => (order.includes(x) ? order.indexOf(x) : order.length);
  const scenarios = [...new Set(runs.map((r) => r.scenario))].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  const series = [...new Set(runs.map((r) => r.series))];
  const head = `| kernel (Debian package version) | ${scenarios.join(' | ')} | boot |`;
  const rows = series.map((s) => {
    const mine = runs.filter((r) => r.series === s);
    const doc = mine.find((r) => r.doc)?.doc ?? null;
    const pkg = doc?.guest?.version ? `${doc.kernel} (Debian ${doc.guest.version})` : doc?.kernel ?? s;
    const cols = scenarios.map((sc) => {
      const d = mine.find((r) => r.scenario === sc)?.doc;
      if (!d) return 'not run';
      const ok = d.cells.filter((c) => c.match).length;
      const lines = d.cells.reduce((n, c) => n + c.invalidLog.length, 0);
      return `${ok}/${d.cells.length} ${ok === d.cells.length ? '✓' : '✗'}, ${lines} log lines`;
    });
    const boots = mine.map((r) => r.doc?.guest?.bootMs).filter((b): b is number => typeof b === 'number');
    const boot = boots.length ? `${(Math.min(...boots) / 1000).toFixed(0)}–${(Math.max(...boots) / 1000).toFixed(0)} s (${doc?.guest?.accel ?? '?'})` : '-';
    return `| ${pkg} | ${cols.join(' | ')} | ${boot} |`;
  });
  return [`Checked ${date} by \`scripts/kernel-matrix.sh\` (cells matched / cells, kernel log lines attributed):`, '', head, `|${'---|'.repeat(scenarios.length + 2)}`, ...rows].join('\n');
}

export const README_BEGIN = '<!-- kernel-matrix:begin (scripts/kernel-matrix.sh writes this table) -->';
export const README_END = '<!-- kernel-matrix:end -->';

/** Replace the text between the markers; null when the README has no markers. */
export function replaceBetweenMarkers(readme: string, table: string): string | null {
  const a = readme.indexOf(README_BEGIN);
  const b = readme.indexOf(README_END);
  if (a < 0 || b < a) return null;
  return `${readme.slice(0, a + README_BEGIN.length)}\n${table}\n${readme.slice(b)}`;
}
