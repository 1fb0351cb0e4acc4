/**
 * Guest boot time and per-kernel lab wall time: `lab oow-rst --kernel REL` for each kernel, as a
 * user runs it (kernel from the cache after the first run, then boot, cells one at a time).
 * CTPROBE_BENCH_KERNELS="6.1" limits the kernels.
 */
import { runLabInGuest } from '../lab/engines/guest.js';
import { formatMs } from '../util/duration.js';

export async function benchGuest(): Promise<void> {
  const kernels = (process.env.CTPROBE_BENCH_KERNELS ?? '5.10 6.1 6.12').split(/[\s,]+/).filter(Boolean);
  for (const k of kernels) {
    const t0 = performance.now();
    const r = await runLabInGuest({ spec: { scenario: 'oow-rst', offsets: [100000, -100000], mitigations: null, control: true, families: [4], captureDir: null }, kernel: { release: k } });
    const wall = performance.now() - t0;
    const g = r.guest!;
    const cells = r.cells.map((c) => c.ms).sort((a, b) => a - b);
    console.log(`${k} (${g.release}, ${g.accel}): boot ${formatMs(g.bootMs)}, lab oow-rst ${r.cells.length} cells ${formatMs(wall)} wall (guest ${formatMs(g.guestMs)}), ` +
      `per cell median ${formatMs(cells[cells.length >> 1]!)}, ${r.cells.filter((c) => c.match).length}/${r.cells.length} match`);
  }
}
