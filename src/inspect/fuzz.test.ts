/**
 * Fuzz (seeded, bounded): every text parser, fed mutations of real lines, answers or throws one
 * of the project's typed errors — nothing else; and on pathological lines (src/bench/
 * pathological.ts) its cost grows linearly: 4× the input costs about 4× the time (quadratic would
 * be 16×; the check fails at 12×). Timing compares best-of batches, re-measured before failing, so a loaded machine does
 * not fail it.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { costPerCall, PATHOLOGICAL, prng } from '../bench/pathological.js';
import { CtprobeError } from '../errors.js';
import { parseConntrackLine, parseConntrackStatsText } from './conntrack.js';
import { parseKernelLogLine } from './kernlog.js';
import { parseNstatLine } from './nstat.js';
import { parseSsLine } from './ss.js';

const SEED = Number(process.env.CTPROBE_FUZZ_SEED ?? 0x5eed11);
const ROUNDS = 1500;

const ALPHABET = ' \t()[]"\\=:,;.%*<>-_/0123456789abcdefxyzABCDEFINSRCOPT\u00ff\ufffd';
const PIECES = ['users:((', '("', '",pid=', 'fd=', 'src=', 'dst=', 'sport=', '[OFFLOAD]', '[ASSURED]', 'IN=', 'SRC=', 'OPT (', 'nf_ct_tcp: ', 'kernel: ', '[ 1.2] ', 'cpu=', '=', '::', '[', ']', ':*', '%eth0'];

function mutate(line: string, rnd: () => number): string {
  let s = line;
  const ops = 1 + Math.floor(rnd() * 4);
  for (let k = 0; k < ops; k++) {
    const at = Math.floor(rnd() * (s.length + 1));
    switch (Math.floor(rnd() * 7)) {
      case 0: // cut
        s = rnd() < 0.5 ? s.slice(0, at) : s.slice(at);
        break;
      case 1: // random characters
        s = s.slice(0, at) + Array.from({ length: 1 + Math.floor(rnd() * 8) }, () => ALPHABET[Math.floor(rnd() * ALPHABET.length)]).join('') + s.slice(at);
        break;
      case 2: // a token the parsers care about
        s = s.slice(0, at) + PIECES[Math.floor(rnd() * PIECES.length)]! + s.slice(at);
        break;
      case 3: {
        // repeat a slice
        const len = Math.floor(rnd() * 12);
        s = s.slice(0, at) + s.slice(at, at + len).repeat(1 + Math.floor(rnd() * 20)) + s.slice(at);
        break;
      }
      case 4: // drop a slice
        s = s.slice(0, at) + s.slice(at + Math.floor(rnd() * 10));
        break;
      case 5: {
        // swap two tokens
        const t = s.split(' ');
        const i = Math.floor(rnd() * t.length);
        const j = Math.floor(rnd() * t.length);
        [t[i], t[j]] = [t[j]!, t[i]!];
        s = t.join(' ');
        break;
      }
      default: // replace a character
        s = s.slice(0, at) + ALPHABET[Math.floor(rnd() * ALPHABET.length)] + s.slice(at + 1);
    }
  }
  return s;
}

const fixtureLines = (...names: string[]) => names.flatMap((n) => readFileSync(new URL(`../../test/fixtures/${n}`, import.meta.url), 'utf8').split('\n').filter((l) => l.trim()));

const PARSERS: Array<{ name: string; corpus: string[]; parse: (l: string) => unknown }> = [
  { name: 'ss', corpus: fixtureLines('ss-naoep-6.1.txt', 'ss-tanoepi-3.16.txt', 'ss-naoepeim-6.1.txt'), parse: (l) => parseSsLine(l, 1) },
  { name: 'conntrack -L', corpus: fixtureLines('conntrack-L-6.18.txt', 'proc-nf_conntrack-6.18.txt', 'conntrack-offload.txt'), parse: (l) => parseConntrackLine(l, 1) },
  { name: 'conntrack -S', corpus: fixtureLines('conntrack-S-6.18.txt'), parse: parseConntrackStatsText },
  { name: 'nstat', corpus: fixtureLines('nstat-6.18.txt').filter((l) => !l.startsWith('#')), parse: (l) => parseNstatLine(l, 1) },
  { name: 'kernel log', corpus: fixtureLines('kernel-log-forms.txt', 'kernel-log-prefixes.txt'), parse: parseKernelLogLine },
];

describe(`fuzz (seed 0x${SEED.toString(16)}; set CTPROBE_FUZZ_SEED to replay)`, () => {
  for (const p of PARSERS)
    it(`${p.name}: ${ROUNDS} mutated lines, only typed errors`, () => {
      const rnd = prng(SEED ^ p.name.length);
      let answered = 0;
      for (let i = 0; i < ROUNDS; i++) {
        const line = mutate(p.corpus[Math.floor(rnd() * p.corpus.length)]!, rnd);
        try {
          p.parse(line);
          answered++;
        } catch (e) {
          if (!(e instanceof CtprobeError)) expect.fail(`${p.name} threw ${String(e)} on ${JSON.stringify(line)}`);
        }
      }
      // the corpus is real: a good share of mutations still parse
      expect(answered).toBeGreaterThan(0);
    });
});

describe('linear time on pathological lines', () => {
  for (const p of PATHOLOGICAL)
    it(p.name, () => {
      const n = 16_000;
      let ratio = Infinity;
      // re-measured up to 3 times: a loaded machine can spoil one pair, not three
      for (let attempt = 0; attempt < 3 && ratio >= 12; attempt++) ratio = Math.min(ratio, costPerCall(p, 4 * n, 5, 10) / costPerCall(p, n, 5, 10));
      expect(ratio, `cost(4n)/cost(n) = ${ratio.toFixed(1)} (linear ≈ 4, quadratic ≈ 16)`).toBeLessThan(12);
    });
});
