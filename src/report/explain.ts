/** `explain`'s stream: one line (or JSON line) per reported packet, then per-flow summaries and a total. */
import type { ExplainedPacket, ExplainSummary, FlowSummary } from '../conntrack/explain.js';
import type { KernelProfile } from '../conntrack/profile.js';
import { jsonLine, type LineRenderer, type Renderer } from './output.js';

export interface ExplainHeader {
  file: string;
  kernel: string;
  profile: KernelProfile;
}

function packetText(p: ExplainedPacket): string {
  const d = p.decision;
  const head = `#${p.index} ${p.tsSec.toFixed(6)} ${p.src}:${p.srcPort} > ${p.dst}:${p.dstPort} [${p.flags}] seq ${p.seq} ack ${p.ack} len ${p.len}`;
  const nat = p.natMatchedTo ? ` (NAT: flow of ${p.natMatchedTo})` : '';
  const reason = d.reason ? ` "${d.reason}"${d.logged ? '' : ' (not logged on this kernel)'}` : '';
  const extra = d.secondaryReason ? `; also "${d.secondaryReason}"` : d.note ? `; ${d.note}` : '';
  return `${head}${nat}\n    ${d.dir} ${d.stateBefore} → ${d.stateAfter}  ${d.verdict}${reason}${extra}\n    ${p.consequence}`;
}

function packetJson(p: ExplainedPacket): string {
  const d = p.decision;
  return jsonLine('packet', { index: p.index, ts: p.tsSec, src: `${p.src}:${p.srcPort}`, dst: `${p.dst}:${p.dstPort}`, flags: p.flags, seq: p.seq, ack: p.ack, len: p.len, dir: d.dir, stateBefore: d.stateBefore, stateAfter: d.stateAfter, verdict: d.verdict, reason: d.reason, logged: d.logged, check: d.check, secondaryReason: d.secondaryReason, note: d.note, natMatchedTo: p.natMatchedTo, consequence: p.consequence });
}

export const explainPackets: LineRenderer<ExplainedPacket> = { text: packetText, json: packetJson };

export const explainHeader: LineRenderer<ExplainHeader> = {
  text: (h) => `explain ${h.file} — modelling kernel ${h.kernel} (profile ${h.profile.id}: ${h.profile.label})${h.profile.caveat ? `\n  note: ${h.profile.caveat}` : ''}`,
  json: (h) => jsonLine('header', { file: h.file, kernel: h.kernel, profile: h.profile.id }),
};

function flowText(f: FlowSummary): string {
  return `  ${f.flow}${f.reply ? ` (NAT, reply ${f.reply})` : ''}: ${f.packets} packets, ${f.accept} accept, ${f.ignore} ignore, ${f.invalid} INVALID, final state ${f.finalState}${f.firstInvalid ? `; first INVALID #${f.firstInvalid.index}: "${f.firstInvalid.reason ?? ''}"` : ''}`;
}

/** The end of the stream: per-flow lines and the total (a "document" of JSON lines in json mode). */
export const explainSummary: Renderer<ExplainSummary & { kernel: string; profile: string }> = {
  text(s) {
    const out = ['', `flows (${s.flows.length}):`, ...s.flows.map(flowText)];
    out.push(`summary: ${s.tcp} TCP packets (${s.duplicates} duplicate copies, ${s.skipped} non-TCP skipped): ${s.accept} accept, ${s.ignore} ignore, ${s.invalid} INVALID`);
    if (s.invalid) out.push('INVALID packets are not de-NATed: behind NAT they reach the host itself and are answered with RST. Fixes: ctprobe fix apply --method drop-invalid | be-liberal (see ctprobe audit).');
    return out.join('\n');
  },
  json(s) {
    const { flows: _f, ...rest } = s;
    return { type: 'summary', ...rest };
  },
};

/** The summary in JSON-lines mode: one `flow` line per flow, then the `summary` line. */
export function explainSummaryLines(s: ExplainSummary & { kernel: string; profile: string }): string[] {
  return [...s.flows.map((f) => jsonLine('flow', f)), JSON.stringify(explainSummary.json(s))];
}
