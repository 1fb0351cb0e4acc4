/** `nstat -zas` / `nstat -az`: NAME VALUE RATE per line, after a "#kernel" header. */
import { InputError } from '../errors.js';
import { lineBatches, type LineSource } from './lines.js';

export interface NstatCounter {
  name: string;
  value: number;
  rate: number | null;
}

export async function parseNstat(src: LineSource): Promise<Map<string, NstatCounter>> {
  const out = new Map<string, NstatCounter>();
  let n = 0;
  for await (const batch of lineBatches(src)) for (const raw of batch) {
    n++;
    const l = raw.trim();
    if (!l || l.startsWith('#')) continue;
    // Name, then numbers; terminals sometimes show a glyph between them (as in the seed).
    const m = /^([A-Za-z][\w]*)\D*?(\d+)(?:\s+([\d.]+))?\s*$/.exec(l);
    if (!m) throw new InputError(`not an nstat counter line: '${l.slice(0, 40)}'`, `line ${n}`);
    out.set(m[1]!, { name: m[1]!, value: Number(m[2]), rate: m[3] === undefined ? null : Number(m[3]) });
  }
  return out;
}
