/** `nstat -zas` / `nstat -az`: NAME VALUE RATE per line, after a "#kernel" header. */
import { InputError } from '../errors.js';
import { lineBatches, type LineSource } from './lines.js';

export interface NstatCounter {
  name: string;
  value: number;
  rate: number | null;
}

/**
 * NAME VALUE [RATE]; terminals sometimes show a glyph between name and value (as in the seed).
 * Tokens, not one regex: `^([A-Za-z]\w*)\D*?(\d+)…$` backtracks quadratically on a long name.
 */
export function parseNstatLine(l: string, lineNo = 0): NstatCounter {
  const c = counterLine(l.trim());
  if (!c) throw new InputError(`not an nstat counter line: '${l.trim().slice(0, 40)}'`, `line ${lineNo}`);
  return c;
}

function counterLine(l: string): NstatCounter | null {
  const tok = l.split(/\s+/);
  const nm = /^[A-Za-z]\w*/.exec(tok[0]!);
  if (!nm || /\d/.test(tok[0]!.slice(nm[0].length))) return null;
  const name = nm[0];
  let i = 1;
  if (i < tok.length && !/^\d/.test(tok[i]!)) i++; // one glyph token
  const value = tok[i++];
  if (value === undefined || !/^\d+$/.test(value)) return null;
  const rate = tok[i++];
  if (rate !== undefined && !/^\d+(\.\d*)?$/.test(rate)) return null;
  if (i < tok.length) return null;
  return { name, value: Number(value), rate: rate === undefined ? null : Number(rate) };
}

export async function parseNstat(src: LineSource): Promise<Map<string, NstatCounter>> {
  const out = new Map<string, NstatCounter>();
  let n = 0;
  for await (const batch of lineBatches(src)) for (const raw of batch) {
    n++;
    const l = raw.trim();
    if (!l || l.startsWith('#')) continue;
    const c = parseNstatLine(l, n);
    out.set(c.name, c);
  }
  return out;
}
