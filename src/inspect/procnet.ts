/**
 * Per-namespace kernel files that need no tool: `/proc/net/stat/nf_conntrack` (conntrack's
 * statistics, one hex row per CPU under a header that names the columns, which differ between
 * kernel versions) and `/proc/net/tcp`/`tcp6` (sockets: local and remote endpoint, state).
 */
import { InputError } from '../errors.js';
import { ipv4ToString, ipv6ToString } from '../packet/address.js';
import type { SsProcess, SsSocket } from './ss.js';

/** `/proc/net/stat/nf_conntrack` → each column summed over CPUs (`entries` is global: taken once). */
export function parseProcConntrackStat(text: string): Record<string, number> {
  const lines = text.split('\n').filter((l) => l.trim());
  const header = lines[0]?.trim().split(/\s+/) ?? [];
  if (!header.includes('invalid')) throw new InputError('not /proc/net/stat/nf_conntrack (no header naming "invalid")');
  const totals: Record<string, number> = Object.fromEntries(header.map((h) => [h, 0]));
  for (const [n, line] of lines.slice(1).entries()) {
    const cells = line.trim().split(/\s+/);
    if (cells.length !== header.length || !cells.every((c) => /^[0-9a-f]+$/i.test(c))) throw new InputError('malformed row', `line ${n + 2}`);
    header.forEach((h, i) => {
      const v = parseInt(cells[i]!, 16);
      totals[h] = h === 'entries' ? v : totals[h]! + v;
    });
  }
  return totals;
}

/** TCP states as /proc/net/tcp numbers them (include/net/tcp_states.h). */
export const PROC_TCP_STATE = { ESTABLISHED: 1, FIN_WAIT2: 5, CLOSE_WAIT: 8, LISTEN: 10 } as const;

export interface ProcTcpSocket {
  local: string;
  localPort: number;
  remote: string;
  remotePort: number;
  state: number;
  /** The socket's inode; 0 for an orphan (closed by its process, left to the kernel). */
  inode: number;
}

function hexAddr(h: string): string {
  // little-endian 32-bit words, one (IPv4) or four (IPv6)
  const b = new Uint8Array(h.length / 2);
  for (let w = 0; w < h.length / 8; w++) {
    const n = parseInt(h.slice(w * 8, w * 8 + 8), 16);
    b.set([n & 255, (n >>> 8) & 255, (n >>> 16) & 255, n >>> 24], w * 4);
  }
  if (b.length === 4) return ipv4ToString(b);
  const v4mapped = b.subarray(0, 10).every((x) => x === 0) && b[10] === 255 && b[11] === 255;
  return v4mapped ? ipv4ToString(b, 12) : ipv6ToString(b);
}

/**
 * `/proc/net/tcp` or `tcp6` → sockets; `keep` filters before an address is decoded (a namespace
 * with thousands of sockets costs one split per line).
 */
export function parseProcTcp(text: string, keep: (state: number, localPort: number) => boolean = () => true): ProcTcpSocket[] {
  const out: ProcTcpSocket[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4 || !/^\d+:$/.test(f[0]!)) continue;
    const [la, lp] = f[1]!.split(':');
    const [ra, rp] = f[2]!.split(':');
    const state = parseInt(f[3]!, 16);
    const localPort = parseInt(lp ?? '', 16);
    if (!la || !ra || Number.isNaN(localPort) || !keep(state, localPort)) continue;
    out.push({ local: hexAddr(la), localPort, remote: hexAddr(ra), remotePort: parseInt(rp ?? '0', 16), state, inode: Number(f[9] ?? 0) || 0 });
  }
  return out;
}

/** include/net/tcp_states.h numbers → the state names ss prints. */
const SS_STATE_NAME = ['UNKNOWN', 'ESTAB', 'SYN-SENT', 'SYN-RECV', 'FIN-WAIT-1', 'FIN-WAIT-2', 'TIME-WAIT', 'UNCONN', 'CLOSE-WAIT', 'LAST-ACK', 'LISTEN', 'CLOSING', 'NEW-SYN-RECV'];

/**
 * /proc/net/tcp sockets in the shape `ss -tanoepi` gives (what the leak detector reads), with their
 * owners by inode (from the processes' fd tables): the same answer without running ss.
 */
export function procTcpAsSs(sockets: ProcTcpSocket[], owners: ReadonlyMap<number, SsProcess[]>): SsSocket[] {
  return sockets.map((s, i) => ({
    line: i + 1,
    netid: 'tcp',
    state: SS_STATE_NAME[s.state] ?? 'UNKNOWN',
    recvQ: 0,
    sendQ: 0,
    local: s.local,
    localPort: s.localPort,
    peer: s.remote,
    peerPort: s.remotePort,
    timer: null,
    users: owners.get(s.inode) ?? [],
    uid: null,
    ino: s.inode || null,
    sk: null,
    cgroup: null,
    shutdown: null,
    info: null,
  }));
}
