/**
 * `conntrack -L` (plain, `-o extended`, `-o id`), /proc/net/nf_conntrack, and `conntrack -S`.
 */
import { InputError } from '../errors.js';
import { lineBatches, type LineSource } from './lines.js';

export interface CtTuple {
  src: string;
  dst: string;
  sport: number | null;
  dport: number | null;
  packets: number | null;
  bytes: number | null;
}

export interface CtEntry {
  line: number;
  l3: string | null;
  protocol: string;
  protoNum: number;
  timeout: number;
  state: string | null;
  original: CtTuple;
  reply: CtTuple;
  assured: boolean;
  unreplied: boolean;
  mark: number | null;
  zone: number | null;
  use: number | null;
  id: number | null;
}

const TUPLE_KEYS = new Set(['src', 'dst', 'sport', 'dport', 'packets', 'bytes', 'type', 'code']);
const STATES = new Set(['NONE', 'SYN_SENT', 'SYN_RECV', 'ESTABLISHED', 'FIN_WAIT', 'CLOSE_WAIT', 'LAST_ACK', 'TIME_WAIT', 'CLOSE', 'SYN_SENT2', 'LISTEN']);

function tuple(kv: Array<[string, string]>): CtTuple {
  const g = (k: string) => kv.find(([a]) => a === k)?.[1];
  const n = (k: string) => (g(k) === undefined ? null : Number(g(k)));
  return { src: g('src') ?? '', dst: g('dst') ?? '', sport: n('sport'), dport: n('dport'), packets: n('packets'), bytes: n('bytes') };
}

/** Parse one entry line. Throws InputError naming the line. */
export function parseConntrackLine(text: string, lineNo = 0): CtEntry {
  const where = `line ${lineNo}`;
  const tok = text.trim().split(/\s+/);
  let i = 0;
  let l3: string | null = null;
  if (tok[0] === 'ipv4' || tok[0] === 'ipv6') {
    l3 = tok[0];
    i = 2;
  }
  const protocol = tok[i++] ?? '';
  const protoNum = Number(tok[i++]);
  const timeout = Number(tok[i++]);
  if (!/^[a-z0-9]+$/.test(protocol) || !Number.isInteger(protoNum) || !Number.isInteger(timeout)) throw new InputError('not a conntrack entry (want: PROTO NUM TIMEOUT [STATE] src=… dst=…)', where);
  let state: string | null = null;
  if (STATES.has(tok[i] ?? '')) state = tok[i++]!;
  const kvs: Array<Array<[string, string]>> = [[]];
  let assured = false;
  let unreplied = false;
  const extra: Record<string, string> = {};
  for (; i < tok.length; i++) {
    const t = tok[i]!;
    if (t === '[ASSURED]') assured = true;
    else if (t === '[UNREPLIED]') unreplied = true;
    else if (t.startsWith('[')) continue;
    else {
      const eq = t.indexOf('=');
      if (eq <= 0) throw new InputError(`unexpected token '${t.slice(0, 30)}'`, where);
      const k = t.slice(0, eq);
      const v = t.slice(eq + 1);
      if (k === 'src' && kvs[kvs.length - 1]!.some(([a]) => a === 'src')) kvs.push([]);
      // id= is a tuple field for ICMP (echo id) and the entry id otherwise (-o id)
      const inTuple = TUPLE_KEYS.has(k) || (k === 'id' && protocol.startsWith('icmp'));
      if (inTuple && kvs.length <= 2) {
        kvs[kvs.length - 1]!.push([k, v]);
      } else extra[k] = v;
    }
  }
  if (kvs.length < 2) throw new InputError('conntrack entry without both tuples', where);
  const n = (k: string) => (extra[k] === undefined ? null : Number(extra[k]));
  return { line: lineNo, l3, protocol, protoNum, timeout, state, original: tuple(kvs[0]!), reply: tuple(kvs[1]!), assured, unreplied, mark: n('mark'), zone: n('zone'), use: n('use'), id: n('id') };
}

/**
 * The common shape of a TCP entry in `conntrack -L` (optionally with the ipv4/ipv6 prefix of
 * /proc/net/nf_conntrack, counters, [UNREPLIED], [ASSURED], mark, zone, use, id), matched in one
 * pass. Anything else goes through parseConntrackLine; both give the same entry.
 */
const TCP_LINE = new RegExp(
  '^(?:(ipv[46])\\s+\\d+\\s+)?tcp\\s+6\\s+(\\d+)\\s+(' + [...STATES].join('|') + ')' +
    '\\s+src=(\\S+)\\s+dst=(\\S+)\\s+sport=(\\d+)\\s+dport=(\\d+)(?:\\s+packets=(\\d+)\\s+bytes=(\\d+))?(\\s+\\[UNREPLIED\\])?' +
    '\\s+src=(\\S+)\\s+dst=(\\S+)\\s+sport=(\\d+)\\s+dport=(\\d+)(?:\\s+packets=(\\d+)\\s+bytes=(\\d+))?(\\s+\\[ASSURED\\])?' +
    '(?:\\s+mark=(\\d+))?(?:\\s+zone=(\\d+))?(?:\\s+use=(\\d+))?(?:\\s+id=(\\d+))?\\s*$',
);

/** TCP_LINE with only the original source and source port captured (the leak detector's need). */
const TCP_LINE_ORIGIN = new RegExp(TCP_LINE.source.replace(/\((?!\?)/g, '(?:').replace('src=(?:\\S+)\\s+dst=(?:\\S+)\\s+sport=(?:\\d+)', 'src=(\\S+)\\s+dst=(?:\\S+)\\s+sport=(\\d+)'));

/**
 * Each entry's protocol and original source endpoint as it is read: the common TCP shape is only
 * matched (nothing built), other lines go through parseConntrackLine (same checks, same errors).
 */
export async function forEachConntrackOrigin(src: LineSource, fn: (protocol: string, src: string, sport: number | null) => void, o: { lenient?: boolean } = {}): Promise<void> {
  let n = 0;
  for await (const batch of lineBatches(src))
    for (const raw of batch) {
      n++;
      const l = raw.trim();
      if (!l || (l.charCodeAt(0) === 99 && /^conntrack v[\d.]+ \(conntrack-tools\)/.test(l))) continue;
      const m = TCP_LINE_ORIGIN.exec(l);
      if (m) {
        fn('tcp', m[1]!, Number(m[2]));
        continue;
      }
      try {
        const e = parseConntrackLine(l, n);
        fn(e.protocol, e.original.src, e.original.sport);
      } catch (e) {
        if (!o.lenient) throw e;
      }
    }
}

const num = (s: string | undefined): number | null => (s === undefined ? null : Number(s));

/** parseConntrackLine for a trimmed line, through the one-pass match when the line has the common shape. */
export function parseConntrackLineFast(text: string, lineNo = 0): CtEntry {
  const m = TCP_LINE.exec(text);
  if (!m) return parseConntrackLine(text, lineNo);
  return {
    line: lineNo,
    l3: m[1] ?? null,
    protocol: 'tcp',
    protoNum: 6,
    timeout: Number(m[2]),
    state: m[3]!,
    original: { src: m[4]!, dst: m[5]!, sport: Number(m[6]), dport: Number(m[7]), packets: num(m[8]), bytes: num(m[9]) },
    reply: { src: m[11]!, dst: m[12]!, sport: Number(m[13]), dport: Number(m[14]), packets: num(m[15]), bytes: num(m[16]) },
    assured: m[17] !== undefined,
    unreplied: m[10] !== undefined,
    mark: num(m[18]),
    zone: num(m[19]),
    use: num(m[20]),
    id: num(m[21]),
  };
}

export async function parseConntrack(src: LineSource, o: { lenient?: boolean } = {}): Promise<CtEntry[]> {
  const out: CtEntry[] = [];
  await forEachConntrack(src, (e) => out.push(e), o);
  return out;
}

/** Each entry as it is read (bounded memory for a million-entry file). */
export async function forEachConntrack(src: LineSource, fn: (e: CtEntry) => void, o: { lenient?: boolean } = {}): Promise<void> {
  let n = 0;
  for await (const batch of lineBatches(src))
    for (const raw of batch) {
      n++;
      const l = raw.trim();
      if (!l || (l.charCodeAt(0) === 99 && /^conntrack v[\d.]+ \(conntrack-tools\)/.test(l))) continue;
      try {
        fn(parseConntrackLineFast(l, n));
      } catch (e) {
        if (!o.lenient) throw e;
      }
    }
}

export interface CtStats {
  perCpu: Array<{ cpu: number; counters: Record<string, number> }>;
  totals: Record<string, number>;
}

/** One `conntrack -S` line ("cpu=0 found=0 invalid=12 …") into `s`. */
function addStatsLine(s: CtStats, raw: string, n: number): void {
  const l = raw.trim();
  if (!l) return;
  const kv = [...l.matchAll(/(\w+)=(\d+)/g)];
  const cpu = kv.find((m) => m[1] === 'cpu');
  if (!cpu) throw new InputError('not a conntrack -S line (no cpu=)', `line ${n}`);
  const counters: Record<string, number> = {};
  for (const m of kv)
    if (m[1] !== 'cpu') {
      counters[m[1]!] = Number(m[2]);
      s.totals[m[1]!] = (s.totals[m[1]!] ?? 0) + Number(m[2]);
    }
  s.perCpu.push({ cpu: Number(cpu[2]), counters });
}

/** `conntrack -S` output (small: one line per CPU), parsed at once. */
export function parseConntrackStatsText(text: string): CtStats {
  const s: CtStats = { perCpu: [], totals: {} };
  text.split('\n').forEach((l, i) => addStatsLine(s, l, i + 1));
  return s;
}

/** `conntrack -S` from any line source: per CPU, plus totals. */
export async function parseConntrackStats(src: LineSource): Promise<CtStats> {
  const s: CtStats = { perCpu: [], totals: {} };
  let n = 0;
  for await (const batch of lineBatches(src)) for (const raw of batch) addStatsLine(s, raw, ++n);
  return s;
}
