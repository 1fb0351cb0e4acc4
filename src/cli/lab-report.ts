/**
 * `lab --report DIR`: each cell's capture replayed through the model into a page of sequence
 * diagrams, and DIR/index.html linking them with the matrix. Wiring only: the replay is
 * conntrack's, the pages are report's.
 */
import { basename, join, relative } from 'node:path';
import { explainCapture } from '../conntrack/explain.js';
import { profileForRelease } from '../conntrack/profile.js';
import { cellParties, cellSysctls } from '../lab/replay.js';
import type { LabReport } from '../lab/runner.js';
import { writeDocuments, type RenderedDocument } from '../report/files.js';
import { FlowTracker } from '../report/flows.js';
import { explainHtml, labReportHtml, type LabCellLinks } from '../report/html.js';
import type { Output } from '../report/output.js';
import { parseParty, type Party } from '../report/sequence.js';

const MAX_ROWS = 600;
const MAX_FLOWS = 20;

export async function writeLabReport(dir: string, r: LabReport, out: Output): Promise<void> {
  const profile = profileForRelease(r.kernel);
  const links: LabCellLinks[] = [];
  const docs: RenderedDocument[] = [];
  for (const cell of r.cells) {
    if (!cell.capture) {
      links.push({ cell, diagram: null, log: null, capture: null });
      continue;
    }
    const tracker = new FlowTracker(MAX_ROWS, MAX_FLOWS);
    let t0: number | null = null;
    const summary = await explainCapture(cell.capture, {
      profile,
      sysctls: cellSysctls(cell),
      onPacket: (p) => {
        t0 ??= p.tsSec;
        tracker.add(p);
      },
    });
    const page = cell.capture.replace(/\.pcap$/, '.html');
    const flows = tracker.order.slice(0, MAX_FLOWS);
    const parties = cellParties(cell)?.map(parseParty).filter((p): p is Party => p !== null);
    docs.push({ path: page, content: explainHtml({ file: `${basename(cell.capture)} (lab cell ${cell.id})`, kernel: r.kernel, profile: profile.id, profileLabel: profile.label, summary, flows, time: 'relative', t0: t0 ?? 0, flowsOmitted: tracker.count - flows.length, kernelLog: cell.invalidLog, parties }), note: '' });
    links.push({ cell, diagram: relative(dir, page), log: relative(dir, cell.capture.replace(/\.pcap$/, '.log')), capture: relative(dir, cell.capture) });
  }
  const index = join(dir, 'index.html');
  docs.push({ path: index, content: labReportHtml(r, links), note: `report: ${index} (${links.filter((l) => l.diagram).length} cells with diagrams, kernel log lines and captures)` });
  writeDocuments(docs, out);
}
