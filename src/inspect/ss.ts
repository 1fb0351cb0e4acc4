/**
 * `ss -tanoepi` / `ss -naoep` output → sockets. One socket per line (with or without the Netid
 * column); `-e`/`-i`/`-m` continuation lines (indented) are attached to the socket before them.
 * Only TCP and UDP sockets are kept: netlink, unix, packet, raw… lines of `ss -a` are counted
 * and skipped (their "addresses" are not address:port). Both iproute2 layouts are read: the old
 * one (unbracketed IPv6 `:::22`, `users:(("sshd",1234,3))`) and the current one (`[::]:22`,
 * `users:(("sshd",pid=1234,fd=3))`).
 */
import { InputError } from '../errors.js';
import { canonicalIp } from '../packet/address.js';
import { lineBatches, splitEndpoint, type LineSource } from './lines.js';

/** Netids whose sockets are kept; every other netid is skipped and counted. */
const KEPT_NETIDS = new Set(['tcp', 'udp']);
/** The other netids ss prints (skipped whatever follows them). */
const OTHER_NETIDS = new Set(['nl', 'u_str', 'u_dgr', 'u_seq', 'p_raw', 'p_dgr', 'raw', 'icmp6', 'sctp', 'dccp', 'tipc', 'v_str', 'v_dgr', 'xdp', 'mptcp', '???']);

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

/**
 * `users:(("envoy",pid=51435,fd=135),("nc",pid=7,fd=3))`, or the old `users:(("envoy",51435,135))`.
 * One left-to-right scan (a regex over a long unbalanced text could backtrack quadratically).
 */
function parseUsers(t: string): SsProcess[] {
  const out: SsProcess[] = [];
  let k = t.indexOf('("');
  while (k >= 0) {
    // the name: up to the closing quote not escaped by a backslash
    let e = k + 2;
    while (e < t.length && t.charCodeAt(e) !== 34) e += t.charCodeAt(e) === 92 ? 2 : 1;
    if (e >= t.length) break;
    const close = t.indexOf(')', e);
    if (close < 0) break;
    const fields = t.slice(e + 2, close).split(',');
    const num = (name: string, pos: number) => {
      const f = fields.find((x) => x.startsWith(`${name}=`));
      const v = f ? f.slice(name.length + 1) : fields[pos]?.includes('=') ? undefined : fields[pos];
      return v !== undefined && /^\d+$/.test(v) ? Number(v) : null;
    };
    const pid = num('pid', 0);
    const fd = num('fd', 1);
    if (t.charCodeAt(e + 1) === 44 && pid !== null && fd !== null) out.push({ name: t.slice(k + 2, e), pid, fd });
    k = t.indexOf('("', close);
  }
  return out;
}

/** The netid column of a line ("tcp", "u_str", …), or null when the line has none. */
export function ssNetid(text: string): string | null {
  const t = text.trimStart();
  const sp = t.search(/\s/);
  const first = sp < 0 ? t : t.slice(0, sp);
  return SS_STATES.has(first) ? null : first;
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
  const lt = tok[i++] ?? '';
  const pt = tok[i++] ?? '';
  const l = splitEndpoint(lt);
  const p = splitEndpoint(pt);
  if (!l || !p) {
    // `ss` without -n prints service names ("10.0.0.1:ssh"): the ports are then unknown.
    const named = [lt, pt].find((t) => /:[A-Za-z][\w.-]*$/.test(t));
    if (named) throw new InputError(`ss printed a service name instead of a port ('${named.slice(0, 40)}'): collect it with 'ss -n' (numeric), e.g. ss -naoep`, where());
    throw new InputError('ss line without local and peer address:port', where());
  }
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
      users = parseUsers(t);
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
    local: canonicalIp(l.addr),
    localPort: l.port,
    peer: canonicalIp(p.addr),
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
  /** Filled with what was skipped. */
  stats?: SsStats;
}

export interface SsStats {
  /** Sockets of other families (netlink, unix, packet, raw…) skipped, by netid. */
  skipped: Record<string, number>;
}

/** Parse whole ss output. Headers are skipped; garbage throws an InputError with its line number. */
export async function parseSs(src: LineSource, o: ParseOptions = {}): Promise<SsSocket[]> {
  const out: SsSocket[] = [];
  await forEachSs(src, (s) => out.push(s), o);
  return out;
}

const HEADER = /^(Netid\s+)?State\s+Recv-Q/;
/** A socket line without the Netid column: state, queues, local and peer endpoints. */
const SS_HEAD = new RegExp(`^(${[...SS_STATES].join('|')})\\s+(\\d+)\\s+(\\d+)\\s+(\\S+)\\s+(\\S+)(?:\\s|$)`);

/** forEachSs: sockets in states `full` rejects are handed over as their local endpoint only. */
export interface SsBrief {
  full(state: string): boolean;
  onBrief(local: string, localPort: number | null): void;
}

/**
 * Each socket of ss output as it is read (bounded memory for a million-socket file). A socket's
 * `-i` continuation lines are attached to it after it was handed over (same object); sockets of
 * other families are skipped and counted (stats).
 */
export async function forEachSs(src: LineSource, fn: (s: SsSocket) => void, o: ParseOptions & { brief?: SsBrief } = {}): Promise<void> {
  const skipped = o.stats?.skipped ?? {};
  const brief = o.brief;
  let n = 0;
  // the socket the next continuation line belongs to (null after a skipped or brief one)
  let prev: SsSocket | null = null;
  for await (const batch of lineBatches(src))
    for (const raw of batch) {
      n++;
      const c0 = raw.charCodeAt(0);
      if (brief && c0 >= 65 && c0 <= 90) {
        // A line starting with a state the caller needs only the local endpoint of: checked as
        // parseSsLine checks it (state, queues, both endpoints), nothing else built.
        const m = SS_HEAD.exec(raw);
        if (m && !brief.full(m[1]!)) {
          const l = splitEndpoint(m[4]!);
          if (l && splitEndpoint(m[5]!)) {
            prev = null;
            brief.onBrief(canonicalIp(l.addr), l.port);
            continue;
          }
        }
      }
      const trimmed = raw.trim();
      if (!trimmed) continue;
      if (HEADER.test(trimmed)) continue;
      if (c0 === 32 || c0 === 9) {
        // -e/-i/-m details of the socket above (indented)
        if (prev) prev.info = prev.info ? `${prev.info} ${trimmed}` : trimmed;
        continue;
      }
      const netid = ssNetid(trimmed);
      if (netid !== null && !KEPT_NETIDS.has(netid) && (OTHER_NETIDS.has(netid) || SS_STATES.has(trimmed.split(/\s+/, 2)[1] ?? ''))) {
        skipped[netid] = (skipped[netid] ?? 0) + 1;
        prev = null;
        continue;
      }
      try {
        prev = parseSsLine(raw, n);
        if (brief && !brief.full(prev.state)) {
          brief.onBrief(prev.local, prev.localPort);
          prev = null;
          continue;
        }
        fn(prev);
      } catch (e) {
        prev = null;
        if (!o.lenient) throw e;
      }
    }
}
