/**
 * Wall time of the full oow-rst matrix (10 cells; target ≤ 3 s here with all cells at once) and
 * where each cell's time goes: building the topology (tool spawns), starting the server and the
 * client (Node processes in namespaces), the traffic (waiting on the kernel and the protocol's
 * timers), the closing counters.
 */
import { runLab } from '../lab/runner.js';
import { K8S_MITIGATION_NAMES, k8sScenario } from '../lab/k8s.js';
import { oowScenario } from '../lab/oow.js';
import { formatMs } from '../util/duration.js';

export async function benchLab(): Promise<void> {
  for (const concurrency of [10, 5]) {
    const r = await runLab({ scenario: oowScenario([100000, -100000], ['none', 'drop-input', 'drop-forward', 'be-liberal'], true), keep: false, concurrency });
    const cells = r.cells.map((c) => c.ms);
    const matched = r.cells.filter((c) => c.match).length;
    const target = concurrency === 10 ? ' (target ≤ 3s, all cells at once)' : '';
    console.log(`concurrency ${concurrency}: matrix ${formatMs(r.ms)} wall${target}, ${r.cells.length} cells, ${matched} match`);
    console.log(`  per cell: min ${formatMs(Math.min(...cells))}, median ${formatMs([...cells].sort((a, b) => a - b)[cells.length >> 1]!)}, max ${formatMs(Math.max(...cells))}`);
    console.log(`    ${'cell'.padEnd(24)} ${'verdict'.padEnd(7)} ${'total'.padStart(6)} = ${'setup'.padStart(6)} + ${'server'.padStart(6)} + ${'client'.padStart(6)} + ${'kernel'.padStart(6)} + ${'counters'.padStart(8)}  spawns`);
    for (const c of r.cells) {
      const p = c.phases;
      const cols = p ? `${formatMs(p.setupMs).padStart(6)} + ${formatMs(p.serverStartMs).padStart(6)} + ${formatMs(p.clientStartMs).padStart(6)} + ${formatMs(p.kernelMs).padStart(6)} + ${formatMs(p.countersMs).padStart(8)}  ${p.spawns}` : '';
      console.log(`    ${c.id.padEnd(24)} ${c.verdict.padEnd(7)} ${formatMs(c.ms).padStart(6)} = ${cols}`);
    }
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
