/**
 * Pathological lines for every text parser: long lines built to make a backtracking regex or a
 * re-scan go quadratic (unbalanced `users:((`, `OPT (` repeated, long words without `=`…). The
 * bench prints the cost per input size; the fuzz test (src/inspect/fuzz.test.ts) checks that the
 * cost of 4n bytes stays near 4× the cost of n.
 */
import { parseConntrackLine, parseConntrackStatsText } from '../inspect/conntrack.js';
import { parseKernelLogLine } from '../inspect/kernlog.js';
import { parseNstatLine } from '../inspect/nstat.js';
import { parseSsLine } from '../inspect/ss.js';
import { CtprobeError } from '../errors.js';

export interface Pathological {
  name: string;
  /** A line of about n characters. */
  make: (n: number) => string;
  /** Parse it synchronously; the project's typed errors are an answer, anything else a bug. */
  parse: (line: string) => unknown;
}

const rep = (s: string, n: number) => s.repeat(Math.max(1, Math.floor(n / s.length)));
const SS_HEAD = 'tcp ESTAB 0 0 192.0.2.1:40000 198.51.100.2:9000 ';
const CT_HEAD = 'tcp 6 54 ESTABLISHED src=192.0.2.1 dst=198.51.100.2 sport=1 dport=2 ';
const KL_HEAD = 'nf_ct_proto_6: invalid IN=eth0 OUT= SRC=192.0.2.1 DST=198.51.100.2 PROTO=TCP ';


export const PATHOLOGICAL: Pathological[] = [
  { name: 'ss: unbalanced users:((', make: (n) => SS_HEAD + 'users:((' + rep('"x" ', n), parse: parseSsLine },
  { name: 'ss: users:(( with open quotes', make: (n) => SS_HEAD + 'users:((' + rep('("\\', n), parse: parseSsLine },
  { name: 'ss: many tokens', make: (n) => SS_HEAD + rep('ino:1 ', n), parse: parseSsLine },
  { name: 'conntrack -L: unterminated [', make: (n) => CT_HEAD + '[start=' + rep('Tue ', n), parse: parseConntrackLine },
  { name: 'conntrack -L: many tuples', make: (n) => CT_HEAD + rep('src=1 ', n), parse: parseConntrackLine },
  { name: 'conntrack -S: long word', make: (n) => 'cpu=0 ' + rep('a', n), parse: parseConntrackStatsText },
  { name: 'conntrack -S: word=word…', make: (n) => 'cpu=0 ' + rep('a=', n), parse: parseConntrackStatsText },
  { name: 'nstat: long name of digits', make: (n) => 'A' + rep('1', n) + 'x', parse: parseNstatLine },
  { name: 'nstat: many numbers', make: (n) => 'TcpInSegs ' + rep('1 ', n), parse: parseNstatLine },
  { name: 'kernel log: repeated OPT (', make: (n) => KL_HEAD + rep('OPT (', n), parse: parseKernelLogLine },
  { name: 'kernel log: repeated [', make: (n) => rep('[', n) + ' ' + KL_HEAD, parse: parseKernelLogLine },
  { name: 'kernel log: kmsg commas', make: (n) => '1,2,3,' + rep(',', n), parse: parseKernelLogLine },
  { name: 'kernel log: IN= repeated', make: (n) => rep('IN=', n) + ' SRC=1', parse: parseKernelLogLine },
  { name: 'kernel log: syslog host', make: (n) => 'Feb  4 16:10:09 ' + rep('a', n) + ' kernel: x', parse: parseKernelLogLine },
];

/** One call, typed errors swallowed. */
export function parseQuietly(p: Pathological, line: string): void {
  try {
    p.parse(line);
  } catch (e) {
    if (!(e instanceof CtprobeError)) throw e;
  }
}

/**
 * Milliseconds per call of `p` on a line of n characters: calls are batched until a batch takes
 * ≥ minMs (timer resolution), and the best of `rounds` batches is kept (a loaded machine only
 * ever makes a batch slower).
 */
export function costPerCall(p: Pathological, n: number, rounds = 5, minMs = 8): number {
  const line = p.make(n);
  let best = Infinity;
  for (let r = 0; r < rounds; r++) {
    let calls = 0;
    const t0 = performance.now();
    let t = t0;
    do {
      parseQuietly(p, line);
      calls++;
      t = performance.now();
    } while (t - t0 < minMs);
    best = Math.min(best, (t - t0) / calls);
  }
  return best;
}

export async function benchParsers(): Promise<void> {
  const n = 250_000;
  for (const p of PATHOLOGICAL) {
    const a = costPerCall(p, n);
    const b = costPerCall(p, 4 * n);
    console.log(`${p.name.padEnd(34)} ${(n / 1000).toFixed(0)} KB ${a.toFixed(2)} ms, ${((4 * n) / 1000).toFixed(0)} KB ${b.toFixed(2)} ms (×${(b / a).toFixed(1)}; linear ≈ ×4)`);
  }
}

/** mulberry32: small, seeded, good enough to pick fuzz mutations. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
