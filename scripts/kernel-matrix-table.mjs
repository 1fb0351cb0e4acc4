// node scripts/kernel-matrix-table.mjs DIR [--readme README.md]
// Reads DIR/<series>/<scenario>.json (`ctprobe lab … --kernel … -o json`), prints the kernel × scenario
// table, rewrites it in the README between its markers, and exits 1 naming every cell that does not
// match (or a scenario that must log and logged nothing). The rendering lives in src/report/kernelmatrix.ts.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { matrixProblems, matrixTable, replaceBetweenMarkers } from '../dist/report/kernelmatrix.js';

const [dir, flag, readmePath] = process.argv.slice(2);
if (!dir || !existsSync(dir)) {
  process.stderr.write('usage: node scripts/kernel-matrix-table.mjs DIR [--readme README.md]\n');
  process.exit(2);
}
const runs = [];
for (const series of readdirSync(dir).filter((d) => /^\d+\.\d+$/.test(d)).sort((a, b) => a.localeCompare(b, undefined, { numeric: true }))) {
  for (const f of readdirSync(join(dir, series)).filter((x) => x.endsWith('.json')).sort()) {
    let doc = null;
    try {
      doc = JSON.parse(readFileSync(join(dir, series, f), 'utf8'));
    } catch {
      doc = null; // no result: matrixProblems names it
    }
    runs.push({ series, scenario: f.replace(/\.json$/, ''), doc });
  }
}
const problems = matrixProblems(runs);
const table = matrixTable(runs, new Date().toISOString().slice(0, 10));
process.stdout.write(table + '\n');
if (flag === '--readme' && readmePath) {
  const next = replaceBetweenMarkers(readFileSync(readmePath, 'utf8'), table);
  if (next === null) problems.push(`${readmePath}: no kernel-matrix markers`);
  else writeFileSync(readmePath, next);
}
for (const p of problems) process.stderr.write(`kernel-matrix: ${p}\n`);
const bad = new Set(problems.map((p) => p.split(':')[0]));
process.stdout.write(`kernel-matrix: ${runs.length - [...bad].filter((b) => runs.some((r) => `${r.series} ${r.scenario}` === b)).length} passed, ${bad.size} failed\n`);
process.exit(problems.length ? 1 : 0);
