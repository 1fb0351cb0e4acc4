/**
 * The model against real kernels in guests: every cell of every capture directory under
 * KERNEL_MATRIX_DIR (written by scripts/kernel-matrix.sh: DIR/<series>/<scenario>/index.json from
 * `lab SCENARIO --kernel REL --capture …`) replayed through the model with the guest kernel's
 * profile, compared with that kernel's own log lines. Skipped without KERNEL_MATRIX_DIR (the
 * guests take minutes; `npm test` stays quick).
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { labAgreement, readLabIndex } from './lab-agreement.js';

const root = process.env.KERNEL_MATRIX_DIR;

/** Capture directories (those holding an index.json) up to two levels below `dir`. */
function captureDirs(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, depth: number) => {
    if (existsSync(join(d, 'index.json'))) out.push(d);
    if (depth < 2) for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(join(d, e.name), depth + 1);
  };
  walk(dir, 0);
  return out.sort();
}

describe.skipIf(!root)('model vs guest kernels (KERNEL_MATRIX_DIR)', () => {
  const dirs = root ? captureDirs(root) : [];
  it('finds capture directories', () => expect(dirs.length).toBeGreaterThan(0));
  for (const dir of dirs) {
    const index = readLabIndex(dir);
    it(`${index.kernel} ${dir.slice(root!.length + 1)}: the model logs what the kernel logged, nothing more`, async () => {
      const { cells } = await labAgreement(dir);
      for (const c of cells) {
        expect(c.replayed, `${index.kernel} ${c.id}: an empty capture proves nothing`).toBeGreaterThan(0);
        expect(c.problems, `${index.kernel} ${c.id}`).toEqual([]);
      }
      const kernelLines = cells.reduce((n, c) => n + c.result.kernelLines, 0);
      const compared = cells.reduce((n, c) => n + c.result.compared, 0);
      // Lines about packets a capture does not hold (retransmissions after it stopped) are not compared; the rest are.
      if (kernelLines > 0) expect(compared, 'the comparison had something to compare').toBeGreaterThan(0);
      console.log(`agreement ${index.kernel} ${dir.slice(root!.length + 1)}: ${cells.length} cells, ${cells.reduce((n, c) => n + c.replayed, 0)} packets replayed, ${compared}/${kernelLines} kernel lines compared, all agree`);
    }, 120_000);
  }
});
