/**
 * `ss -tanoepi` / `ss -naoep` output → sockets. One socket per line (with or without the Netid
 * column); `-i` continuation lines (indented) are attached to the socket before them.
 */
import { InputError } from '../errors.js';
import { lineBatches, splitEndpoint, type LineSource } from './lines.js';

export const SS_STATES = new Set(['ESTAB', 'SYN-SENT', 'SYN-RECV', 'FIN-WAIT-1', 'FIN-WAIT-2', 'TIME-WAIT', 'CLOSE', 'CLOSE-WAIT', 'LAST-ACK', 'LISTEN', 'CLOSING', 'UNCONN', 'NEW-SYN-RECV', 'BOUND', 'UNKNOWN']);

export interface SsProcess {
  name: string;
  pid: number;
  fd: number;
}

export interface SsSocket {
  line: number;
  netid: string | null;
  state: string;
  recvQ: number;
  sendQ: number;
  local: string;
  localPort: number | null;
  peer: string;
  peerPort: number | null;
  timer: { kind: string; time: string; retrans: number } | null;
  users: SsProcess[];
  uid: number | null;
  ino: number | null;
  sk: string | null;
  cgroup: string | null;
  /** Shutdown marks: '<->' open both ways, '-->' we sent FIN, '<--' peer sent FIN, '---' both. */
  shutdown: string | null;
  info: string | null;
}

const SHUTDOWN = new Set(['<->', '-->', '<--', '---']);
/** users:(("name",pid=N,fd=N)) with one process and no space in its name: the common token. */
const ONE_USER = /^users:\(\("((?:[^"\\ ]|\\.)*)",pid=(\d+),fd=(\d+)\)\)$/;

/** Opening minus closing parentheses in a token. */
function parenDepth(t: string): number {
  let d = 0;
  for (let k = 0; k < t.length; k++) {
    const c = t.charCodeAt(k);
    if (c === 40) d++;
    else if (c === 41) d--;
  }
  return d;
}

/** Parse one socket line (not a header or continuation). Throws InputError naming the line. */
export function parseSsLine(text: string, lineNo = 0): SsSocket {
  const where = (): string => `line ${lineNo}`;
  const tok = text.trim().split(/\s+/);
  let i = 0;
  let netid: string | null = null;
  if (!SS_STATES.has(tok[0] ?? '') && SS_STATES.has(tok[1] ?? '')) netid = tok[i++]!;
  const state = tok[i++] ?? '';
  if (!SS_STATES.has(state)) throw new InputError(`not an ss socket line (state '${state.slice(0, 20)}')`, where());
  const recvQ = Number(tok[i++]);
  const sendQ = Number(tok[i++]);
  if (!Number.isInteger(recvQ) || !Number.isInteger(sendQ)) throw new InputError('ss line without queue sizes', where());
  const l = splitEndpoint(tok[i++] ?? '');
  const p = splitEndpoint(tok[i++] ?? '');
  if (!l || !p) throw new InputError('ss line without local and peer address:port', where());
  // One pass over the remaining tokens, dispatching on their prefix.
  let timer: SsSocket['timer'] = null;
  let users: SsProcess[] = [];
  let uid: number | null = null;
  let ino: number | null = null;
  let sk: string | null = null;
  let cgroup: string | null = null;
  for (let j = i; j < tok.length; j++) {
    let t = tok[j]!;
    const c = t.charCodeAt(0);
    // most tokens: one process in users:(…), uid:, ino:, sk: — dispatch on the first letter
    if (c === 117 && t.startsWith('users:((') && t.endsWith('))')) {
      const one = ONE_USER.exec(t);
      if (one) {
        users = [{ name: one[1]!, pid: Number(one[2]), fd: Number(one[3]) }];
        continue;
      }
    }
    if (c === 117 && t.startsWith('uid:')) uid = Number(t.slice(4));
    else if (c === 105 && t.startsWith('ino:')) ino = Number(t.slice(4));
    else if (c === 115 && t.startsWith('sk:')) sk = t.slice(3);
    else if (t.startsWith('users:(')) {
      // a process name may contain spaces: rejoin until the parentheses balance (counted
      // incrementally: re-counting the joined text each time was quadratic on long lines)
      let depth = parenDepth(t);
      const parts = [t];
      while (j + 1 < tok.length && depth !== 0) {
        const next = tok[++j]!;
        depth += parenDepth(next);
        parts.push(next);
      }
      t = parts.join(' ');
      users = [...t.matchAll(/\("((?:[^"\\]|\\.)*)",pid=(\d+),fd=(\d+)\)/g)].map((m) => ({ name: m[1]!, pid: Number(m[2]), fd: Number(m[3]) }));
    } else if (t.startsWith('timer:(')) {
      const m = /^timer:\((\w+),([^,)]*),(\d+)\)/.exec(t);
      if (m) timer = { kind: m[1]!, time: m[2]!, retrans: Number(m[3]) };
    } else if (t.startsWith('uid:')) uid = Number(t.slice(4));
    else if (t.startsWith('ino:')) ino = Number(t.slice(4));
    else if (t.startsWith('sk:')) sk = t.slice(3);
    else if (t.startsWith('cgroup:')) cgroup = t.slice(7);
  }
  const last = tok[tok.length - 1] ?? '';
  return {
    line: lineNo,
    netid,
    state,
    recvQ,
    sendQ,
    local: l.addr,
    localPort: l.port,
    peer: p.addr,
    peerPort: p.port,
    timer,
    users,
    uid: Number.isInteger(uid) ? uid : null,
    ino: Number.isInteger(ino) ? ino : null,
    sk,
    cgroup,
    shutdown: SHUTDOWN.has(last) ? last : null,
    info: null,
  };
}

export interface ParseOptions {
  /** Skip lines that are not sockets instead of throwing (support bundles with noise). */
  lenient?: boolean;
}

/** Parse whole ss output. Headers are skipped; garbage throws an InputError with its line number. */
export async function parseSs(src: LineSource, o: ParseOptions = {}): Promise<SsSocket[]> {
  const out: SsSocket[] = [];
  await forEachSs(src, (s) => out.push(s), o);
  return out;
}

const HEADER = /^(Netid\s+)?State\s+Recv-Q/;
/** A socket line without the Netid column: state, queues, local and peer endpoints. */
const SS_HEAD = new RegExp(`^\\s*(${[...SS_STATES].join('|')})\\s+(\\d+)\\s+(\\d+)\\s+(\\S+)\\s+(\\S+)(?:\\s|$)`);

/** forEachSs: sockets in states `full` rejects are handed over as their local endpoint only. */
export interface SsBrief {
  full(state: string): boolean;
  onBrief(local: string, localPort: number | null): void;
}

/**
 * Each socket of ss output as it is read (bounded memory for a million-socket file). A socket's
 * `-i` continuation lines are attached to it after it was handed over (same object).
 */
export async function forEachSs(src: LineSource, fn: (s: SsSocket) => void, o: ParseOptions & { brief?: SsBrief } = {}): Promise<void> {
  const brief = o.brief;
  let briefPrev = false;
  let prev: SsSocket | null = null;
  let n = 0;
  for await (const batch of lineBatches(src))
    for (const raw of batch) {
      n++;
      const c = raw.charCodeAt(0) | 32;
      if (!(c >= 97 && c <= 122)) {
        // not starting with a letter: blank, indented (a continuation line) or garbage
        const t = raw.trim();
        if (!t || HEADER.test(t)) continue;
        if (/^\s/.test(raw) && (prev || briefPrev)) {
          if (prev) prev.info = prev.info ? `${prev.info} ${t}` : t;
          continue;
        }
      } else if ((c === 115 || c === 110) && HEADER.test(raw)) continue; // S(tate) or N(etid) header
      try {
        if (brief) {
          // Sockets the caller needs only the local endpoint of: checked as parseSsLine checks
          // them (state, queues, both endpoints), nothing else built.
          const m = SS_HEAD.exec(raw);
          if (m && !brief.full(m[1]!)) {
            const l = splitEndpoint(m[4]!);
            if (l && splitEndpoint(m[5]!)) {
              prev = null;
              briefPrev = true; // its continuation lines are skipped, not parsed as sockets
              brief.onBrief(l.addr, l.port);
              continue;
            }
          }
        }
        prev = parseSsLine(raw, n);
        briefPrev = false;
        if (brief && !brief.full(prev.state)) {
          brief.onBrief(prev.local, prev.localPort);
          continue;
        }
        fn(prev);
      } catch (e) {
        if (!o.lenient) throw e;
      }
    }
}
