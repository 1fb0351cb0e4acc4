/** explain --html / --svg: the documents drawn from the connections a replay kept (pure). */
import type { ExplainSummary } from '../conntrack/explain.js';
import type { RenderedDocument } from './files.js';
import type { FlowTrace } from './flows.js';
import { explainHtml } from './html.js';
import type { TimeStyle } from './explain-text.js';
import { partiesSvg, sequenceSvg, type Party } from './sequence.js';

export interface ExplainPictures {
  html: string | null;
  svg: string | null;
  /** Connections in the order seen. */
  /** The connections to draw (the first ones seen). */
  flows: readonly FlowTrace[];
  /** Connections seen in all (flows may hold only the first of them). */
  flowCount: number;
  parties: Party[];
  time: TimeStyle;
  t0: number;
  file: string;
  kernel: string;
  profile: { id: string; label: string };
  summary: ExplainSummary;
  maxDiagrams: number;
}

const svgDocument = (svg: string) => `<?xml version="1.0" encoding="UTF-8"?>\n${svg}\n`;

export function explainPictureDocuments(p: ExplainPictures): RenderedDocument[] {
  const docs: RenderedDocument[] = [];
  const flows = [...p.flows];
  const total = Math.max(p.flowCount, flows.length);
  if (p.html) {
    const shown = flows.slice(0, p.maxDiagrams);
    const content = explainHtml({ file: p.file, kernel: p.kernel, profile: p.profile.id, profileLabel: p.profile.label, summary: p.summary, flows: shown, time: p.time, t0: p.t0, flowsOmitted: total - shown.length, parties: p.parties });
    const more = total > shown.length ? ` (${total - shown.length} more connection(s) not drawn: choose with --flow)` : '';
    docs.push({ path: p.html, content, note: `wrote ${p.html}: ${shown.length} sequence diagram(s)${more}` });
  }
  if (p.svg) {
    if (!flows.length) docs.push({ path: p.svg, content: null, note: `no connection to draw: ${p.svg} not written` });
    else if (p.parties.length) {
      const content = svgDocument(partiesSvg(p.parties.map((x) => x.name).join(' · '), flows, p.parties, { time: p.time, t0: p.t0 }).s);
      const more = total > flows.length ? ` (${total - flows.length} more not drawn: choose with --flow)` : '';
      docs.push({ path: p.svg, content, note: `wrote ${p.svg}: ${flows.length} connection(s), ${p.parties.length} parties${more}` });
    } else {
      const others = total > 1 ? ` (${total - 1} other connection(s): pick one with --flow, or use --html for all)` : '';
      docs.push({ path: p.svg, content: svgDocument(sequenceSvg(flows[0]!, { time: p.time, t0: p.t0 }).s), note: `wrote ${p.svg}: ${flows[0]!.id}${others}` });
    }
  }
  return docs;
}
