/** `collect`'s result and progress. */
import type { CollectProgress, CollectResult } from '../host/bundle.js';
import type { Renderer } from './output.js';
import { wrapText } from './text.js';

export const collectResult: Renderer<CollectResult> = {
  json: (r) => ({ type: 'collect', ...r }),
  text(r) {
    const out = [`wrote ${r.out}: ${r.files} file(s), ${(r.bytes / 1024).toFixed(0)} KiB, from ${r.target}`];
    if (r.capture) out.push(r.capture.ok ? `  with a ${r.capture.seconds}s capture (tcpdump -i any, tcp)` : `  capture failed: ${r.capture.why}`);
    for (const f of r.failed) out.push(...wrapText(`  not collected: ${f.what} — ${f.why}`, 78, '  '));
    out.push(`Analyse it anywhere: ctprobe audit --from ${r.out}; ctprobe leaks --from ${r.out}; ctprobe invalid-log show --from ${r.out}${r.capture?.ok ? `; ctprobe explain --from ${r.out}` : ''}`);
    return out.join('\n');
  },
};

export function collectProgressLine(p: CollectProgress): string {
  return `collect: ${p.step} ${p.what}`;
}
