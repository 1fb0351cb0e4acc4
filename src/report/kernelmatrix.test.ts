import { describe, expect, it } from 'vitest';
import { matrixProblems, matrixTable, README_BEGIN, README_END, replaceBetweenMarkers, type MatrixDoc, type MatrixRun } from './kernelmatrix.js';

const doc = (kernel: string, scenario: string, cells: Array<[string, boolean, number]>): MatrixDoc => ({
  type: 'lab-run',
  kernel,
  scenario,
  kernelLog: 'collected',
  ms: 1000,
  cells: cells.map(([id, match, lines]) => ({ id, verdict: match ? 'reset' : 'clean', expected: 'reset', match, invalidLog: Array.from({ length: lines }, () => 'nf_ct_proto_6: x') })),
  guest: { accel: 'tcg', package: `linux-image-${kernel}`, version: '6.1.192-3', bootMs: 15000 },
});

describe('kernel matrix', () => {
  const good: MatrixRun[] = [
    { series: '6.1', scenario: 'oow-rst', doc: doc('6.1.0-57-amd64', 'oow-rst', [['a', true, 2], ['b', true, 0]]) },
    { series: '6.1', scenario: 'half-close-leak', doc: doc('6.1.0-57-amd64', 'half-close-leak', [['c', true, 0]]) },
  ];
  it('holds when every cell matches and the scenarios that must log did', () => {
    expect(matrixProblems(good)).toEqual([]);
  });
  it('names a mismatch, a silent kernel, a wrong kernel and a missing result', () => {
    const bad: MatrixRun[] = [
      { series: '6.1', scenario: 'oow-rst', doc: doc('6.1.0-57-amd64', 'oow-rst', [['a', false, 0]]) },
      { series: '5.10', scenario: 'port-reuse', doc: doc('6.1.0-57-amd64', 'port-reuse', [['p', true, 1]]) },
      { series: '6.12', scenario: 'oow-rst', doc: null },
    ];
    const p = matrixProblems(bad);
    expect(p).toContain('6.1 oow-rst: a saw clean, expected reset');
    expect(p.some((x) => /6\.1 oow-rst: no kernel log line/.test(x))).toBe(true);
    expect(p).toContain('5.10 port-reuse: ran on 6.1.0-57-amd64, not 5.10');
    expect(p).toContain('6.12 oow-rst: no result');
  });
  it('renders one row per kernel with the Debian version and rewrites only between the markers', () => {
    const t = matrixTable(good, '2026-12-05');
    expect(t).toMatch(/Checked 2026-12-05/);
    expect(t).toMatch(/\| 6\.1\.0-57-amd64 \(Debian 6\.1\.192-3\) \| 2\/2 ✓, 2 log lines \| 1\/1 ✓, 0 log lines \| 15–15 s \(tcg\) \|/);
    expect(t).toMatch(/\| oow-rst \| half-close-leak \|/);
    const readme = `# x\n${README_BEGIN}\nold\n${README_END}\ntail\n`;
    expect(replaceBetweenMarkers(readme, 'NEW')).toBe(`# x\n${README_BEGIN}\nNEW\n${README_END}\ntail\n`);
    expect(replaceBetweenMarkers('# none', 'NEW')).toBeNull();
  });
});
