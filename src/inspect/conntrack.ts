/**
 * `conntrack -L` (plain, `-o extended`, `-o id`, `-o timestamp`), /proc/net/nf_conntrack, and
 * `conntrack -S`. Entries offloaded to a flowtable carry `[OFFLOAD]` / `[HW_OFFLOAD]` and no
 * timeout. Addresses are canonical (RFC 5952): /proc prints IPv6 fully expanded
 * (`2001:0db8:0000:…`), conntrack and ss compressed, and the leak detector compares them.
 */
import { InputError } from '../errors.js';
import { canonicalIp } from '../packet/address.js';
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
  /** Seconds left; null for an entry offloaded to a flowtable (the kernel prints none). */
  timeout: number | null;
  state: string | null;
  original: CtTuple;
  reply: CtTuple;
  assured: boolean;
  unreplied: boolean;
  /** Offloaded to a flowtable: 'sw' ([OFFLOAD]) or 'hw' ([HW_OFFLOAD]). */
  offload: 'sw' | 'hw' | null;
  mark: number | null;
  zone: number | null;
  secctx: string | null;
  labels: string | null;
  use: number | null;
  id: number | null;
}

const TUPLE_KEYS = new Set(['src', 'dst', 'sport', 'dport', 'packets', 'bytes', 'type', 'code']);
const STATES = new Set(['NONE', 'SYN_SENT', 'SYN_RECV', 'ESTABLISHED', 'FIN_WAIT', 'CLOSE_WAIT', 'LAST_ACK', 'TIME_WAIT', 'CLOSE', 'SYN_SENT2', 'LISTEN']);

function tuple(kv: Array<[string, string]>): CtTuple {
  const g = (k: string) => kv.find(([a]) => a === k)?.[1];
  const n = (k: string) => {
    const v = g(k);
    return v !== undefined && /^\d+$/.test(v) ? Number(v) : null;
  };
  return { src: canonicalIp(g('src') ?? ''), dst: canonicalIp(g('dst') ?? ''), sport: n('sport'), dport: n('dport'), packets: n('packets'), bytes: n('bytes') };
}

const isUint = (t: string | undefined): boolean => t !== undefined && /^\d+$/.test(t);

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
  const protoText = tok[i++];
  // an offloaded entry has no timeout: the state or the first src= follows the protocol number
  const timeoutText = isUint(tok[i]) ? tok[i++] : undefined;
  if (!/^[a-z0-9]+$/.test(protocol) || !isUint(protoText)) throw new InputError('not a conntrack entry (want: PROTO NUM TIMEOUT [STATE] src=… dst=…)', where);
  const protoNum = Number(protoText);
  const timeout = timeoutText === undefined ? null : Number(timeoutText);
  let state: string | null = null;
  if (STATES.has(tok[i] ?? '')) state = tok[i++]!;
  const kvs: Array<Array<[string, string]>> = [[]];
  let assured = false;
  let unreplied = false;
  let offload: CtEntry['offload'] = null;
  const extra: Record<string, string> = {};
  for (; i < tok.length; i++) {
    const t = tok[i]!;
    if (t === '[ASSURED]') assured = true;
    else if (t === '[UNREPLIED]') unreplied = true;
    else if (t === '[OFFLOAD]') offload = 'sw';
    else if (t === '[HW_OFFLOAD]') offload = 'hw';
    else if (t.startsWith('[')) {
      // other flags, or a bracketed group with spaces (-o timestamp: "[start=Tue Jan 31 10:00:00 2023]")
      while (!tok[i]!.endsWith(']') && i + 1 < tok.length) i++;
    } else {
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
  if (timeout === null && offload === null) throw new InputError('conntrack entry without a timeout (only offloaded entries have none)', where);
  const n = (k: string) => (isUint(extra[k]) ? Number(extra[k]) : null);
  return { line: lineNo, l3, protocol, protoNum, timeout, state, original: tuple(kvs[0]!), reply: tuple(kvs[1]!), assured, unreplied, offload, mark: n('mark'), zone: n('zone'), secctx: extra.secctx ?? null, labels: extra.labels ?? null, use: n('use'), id: n('id') };
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
 * The entry lines of `conntrack -L` output, trimmed and numbered, as they are read: blanks and the
 * tool's banner skipped; an error of `each` is thrown, or skipped when lenient.
 */
async function forEachEntryLine(src: LineSource, o: { lenient?: boolean }, each: (line: string, n: number) => void): Promise<void> {
  let n = 0;
  for await (const batch of lineBatches(src))
    for (const raw of batch) {
      n++;
      const l = raw.trim();
      if (!l || (l.charCodeAt(0) === 99 && /^conntrack v[\d.]+ \(conntrack-tools\)/.test(l))) continue;
      try {
        each(l, n);
      } catch (e) {
        if (!o.lenient) throw e;
      }
    }
}

/**
 * Each entry's protocol and original source endpoint as it is read: the common TCP shape is only
 * matched (nothing built), other lines go through parseConntrackLine (same checks, same errors).
 */
export function forEachConntrackOrigin(src: LineSource, fn: (protocol: string, src: string, sport: number | null) => void, o: { lenient?: boolean } = {}): Promise<void> {
  return forEachEntryLine(src, o, (l, n) => {
    const m = TCP_LINE_ORIGIN.exec(l);
    if (m) return fn('tcp', canonicalIp(m[1]!), Number(m[2]));
    const e = parseConntrackLine(l, n);
    fn(e.protocol, e.original.src, e.original.sport);
  });
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
    original: { src: canonicalIp(m[4]!), dst: canonicalIp(m[5]!), sport: Number(m[6]), dport: Number(m[7]), packets: num(m[8]), bytes: num(m[9]) },
    reply: { src: canonicalIp(m[11]!), dst: canonicalIp(m[12]!), sport: Number(m[13]), dport: Number(m[14]), packets: num(m[15]), bytes: num(m[16]) },
    assured: m[17] !== undefined,
    unreplied: m[10] !== undefined,
    offload: null,
    mark: num(m[18]),
    zone: num(m[19]),
    secctx: null,
    labels: null,
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
export function forEachConntrack(src: LineSource, fn: (e: CtEntry) => void, o: { lenient?: boolean } = {}): Promise<void> {
  return forEachEntryLine(src, o, (l, n) => fn(parseConntrackLineFast(l, n)));
}

export interface CtStats {
  perCpu: Array<{ cpu: number; counters: Record<string, number> }>;
  totals: Record<string, number>;
}

/** One `conntrack -S` line ("cpu=0 found=0 invalid=12 …") into `s`. */
function addStatsLine(s: CtStats, raw: string, n: number): void {
  const l = raw.trim();
  if (!l) return;
  // NAME=NUMBER tokens (split, not a global regex: `\w+=` backtracks quadratically on long words)
  let cpu: number | null = null;
  const counters: Record<string, number> = {};
  for (const t of l.split(/\s+/)) {
    const eq = t.indexOf('=');
    if (eq <= 0) continue;
    const k = t.slice(0, eq);
    const v = t.slice(eq + 1);
    if (!/^\w+$/.test(k) || !/^\d+$/.test(v)) continue;
    if (k === 'cpu') cpu = Number(v);
    else counters[k] = Number(v);
  }
  if (cpu === null) throw new InputError('not a conntrack -S line (no cpu=)', `line ${n}`);
  for (const [k, v] of Object.entries(counters)) s.totals[k] = (s.totals[k] ?? 0) + v;
  s.perCpu.push({ cpu, counters });
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
