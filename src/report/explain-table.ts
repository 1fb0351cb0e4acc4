/**
 * What explain says when the modelled table was full (nf_conntrack_max): the same sentences in
 * the text stream and the text summary. A module of its own: both renderers load it.
 */
import type { ExplainSummary } from '../conntrack/explain.js';

/** 262,144 (by hand: toLocaleString would load ICU's data, megabytes, for one number) */
const n = (v: number): string => String(v).replace(/\B(?=(\d{3})+(?!\d))/g, ',');

/** Sentences for a summary whose table was full; none when it never was. */
export function tableFullSentences(s: Pick<ExplainSummary, 'conntrackMax' | 'earlyDrops' | 'tableFull'>): string[] {
  const out: string[] = [];
  if (s.earlyDrops)
    out.push(
      `conntrack table full (nf_conntrack_max ${n(s.conntrackMax)}): ${n(s.earlyDrops)} entries dropped early to make room for new ones. ` +
        "The kernel drops the unassured entries of a hash bucket near the new entry's (the hash has a random seed: which entries, no capture can tell); the model drops the oldest unassured entry, " +
        "so what follows for a flow whose entry went is the model's guess (the host's 'conntrack -S' early_drop counts the kernel's).",
    );
  if (s.tableFull)
    out.push(
      `${n(s.tableFull)} new connection attempts found the table full with every entry assured: the kernel dropped those packets ` +
        '("nf_conntrack: table full, dropping packet"); the model went on tracking them.',
    );
  return out;
}
