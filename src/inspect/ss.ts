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
  const where = `line ${lineNo}`;
  const tok = text.trim().split(/\s+/);
  let i = 0;
  let netid: string | null = null;
  if (!SS_STATES.has(tok[0] ?? '') && SS_STATES.has(tok[1] ?? '')) netid = tok[i++]!;
  const state = tok[i++] ?? '';
  if (!SS_STATES.has(state)) throw new InputError(`not an ss socket line (state '${state.slice(0, 20)}')`, where);
  const recvQ = Number(tok[i++]);
  const sendQ = Number(tok[i++]);
  if (!Number.isInteger(recvQ) || !Number.isInteger(sendQ)) throw new InputError('ss line without queue sizes', where);
  const l = splitEndpoint(tok[i++] ?? '');
  const p = splitEndpoint(tok[i++] ?? '');
  if (!l || !p) throw new InputError('ss line without local and peer address:port', where);
  // One pass over the remaining tokens, dispatching on their prefix.
  let timer: SsSocket['timer'] = null;
  let users: SsProcess[] = [];
  let uid: number | null = null;
  let ino: number | null = null;
  let sk: string | null = null;
  let cgroup: string | null = null;
  for (let j = i; j < tok.length; j++) {
    let t = tok[j]!;
    if (t.startsWith('users:(')) {
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
  let n = 0;
  for await (const batch of lineBatches(src)) for (const raw of batch) {
    n++;
    if (!raw.trim()) continue;
    if (/^(Netid\s+)?State\s+Recv-Q/.test(raw.trim())) continue;
    if (/^\s/.test(raw) && out.length) {
      const prev = out[out.length - 1]!;
      prev.info = prev.info ? `${prev.info} ${raw.trim()}` : raw.trim();
      continue;
    }
    try {
      out.push(parseSsLine(raw, n));
    } catch (e) {
      if (!o.lenient) throw e;
    }
  }
  return out;
}
