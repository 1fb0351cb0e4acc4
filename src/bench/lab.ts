/** Wall time of the full oow-rst matrix and of each cell (target: ≤ 10 s on 2 cores). */
import { runLab } from '../lab/runner.js';
import { K8S_MITIGATION_NAMES, k8sScenario } from '../lab/k8s.js';
import { oowScenario } from '../lab/oow.js';
import { formatMs } from '../util/duration.js';

export async function benchLab(): Promise<void> {
  for (const concurrency of [5, 10]) {
    const r = await runLab({ scenario: oowScenario([100000, -100000], ['none', 'drop-input', 'drop-forward', 'be-liberal'], true), keep: false, concurrency });
    const cells = r.cells.map((c) => c.ms);
    const matched = r.cells.filter((c) => c.match).length;
    console.log(`concurrency ${concurrency}: matrix ${formatMs(r.ms)} wall (target ≤ 10s), ${r.cells.length} cells, ${matched} match`);
    console.log(`  per cell: min ${formatMs(Math.min(...cells))}, median ${formatMs(cells.sort((a, b) => a - b)[cells.length >> 1]!)}, max ${formatMs(Math.max(...cells))}`);
    for (const c of r.cells) console.log(`    ${c.id.padEnd(26)} ${c.verdict.padEnd(7)} ${formatMs(c.ms)}`);
  }
}

/** Wall time of `lab k8s-service` (every column, ClusterIP and NodePort) per IP family, as a user runs it. */
export async function benchK8sLab(): Promise<void> {
  for (const families of [[4], [6], [4, 6]] as Array<Array<4 | 6>>) {
    const r = await runLab({ scenario: k8sScenario(families, K8S_MITIGATION_NAMES), keep: false, concurrency: 10 });
    const matched = r.cells.filter((c) => c.match).length;
    console.log(`--family ${families.length === 2 ? 'both' : families[0]}: ${formatMs(r.ms)} wall, ${r.cells.length} cells, ${matched} match`);
  }
}
