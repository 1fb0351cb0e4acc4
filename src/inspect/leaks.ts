/**
 * The half-closed leak of a sidecar TCP proxy (Istio 43297): the proxy holds a FIN-WAIT-2 socket
 * on its port towards the application (the app's FIN never arrived: conntrack's CLOSE_WAIT entry
 * had expired, so the FIN was INVALID and not redirected) and its CLOSE-WAIT partner towards the
 * upstream, and conntrack has no entry left for the application's connection.
 *
 * Pairing: ss does not say which upstream socket belongs to which downstream one. A proxy such as
 * Envoy creates the upstream socket right after accepting the downstream one, so of the same
 * process's CLOSE-WAIT sockets the one with the nearest inode number is taken (each used once).
 */
import type { CtEntry } from './conntrack.js';
import type { SsProcess, SsSocket } from './ss.js';

export interface Leak {
  app: string;
  appPort: number;
  proxy: string;
  process: SsProcess | null;
  finWait2: SsSocket;
  closeWait: SsSocket | null;
  upstream: string | null;
  /** The proxy keeps both until its idle timeout: at most this long from the last data. */
  maxRemainingS: number;
  /** The app's port is free again (no socket of the app uses it) and in the ephemeral range. */
  portReuseRisk: boolean;
}

export interface LeakOptions {
  proxyPort: number;
  idleTimeoutS: number;
  ephemeral: [number, number];
}

export const DEFAULT_LEAK_OPTIONS: LeakOptions = { proxyPort: 15001, idleTimeoutS: 3600, ephemeral: [32768, 60999] };

const ep = (a: string, p: number | null) => `${a.includes(':') ? `[${a}]` : a}:${p ?? '*'}`;

export function findLeaks(sockets: SsSocket[], conntrack: CtEntry[] | null, opts: Partial<LeakOptions> = {}): { leaks: Leak[]; halfLeaks: Leak[] } {
  const o = { ...DEFAULT_LEAK_OPTIONS, ...opts };
  // App ports with a live conntrack entry: their FIN will still be tracked and redirected.
  const tracked = new Set<string>();
  for (const e of conntrack ?? []) if (e.protocol === 'tcp' && e.original.sport !== null) tracked.add(`${e.original.src}|${e.original.sport}`);
  // Local endpoints in use (addr|port → count), to tell whether the app's port is free again.
  const used = new Map<string, number>();
  for (const s of sockets) if (s.localPort !== null) used.set(`${s.local}|${s.localPort}`, (used.get(`${s.local}|${s.localPort}`) ?? 0) + 1);
  // The proxy's CLOSE-WAIT sockets per pid, sorted by inode, for the nearest-inode pairing.
  const closeWaitByPid = new Map<number, SsSocket[]>();
  for (const s of sockets)
    if (s.state === 'CLOSE-WAIT' && s.peerPort !== (opts.proxyPort ?? DEFAULT_LEAK_OPTIONS.proxyPort))
      for (const u of s.users) {
        const list = closeWaitByPid.get(u.pid);
        if (list) list.push(s);
        else closeWaitByPid.set(u.pid, [s]);
      }

  const candidates = sockets.filter((s) => s.state === 'FIN-WAIT-2' && s.localPort === o.proxyPort && s.users.length > 0 && s.peerPort !== null && !tracked.has(`${s.peer}|${s.peerPort}`));
  const takenCw = new Set<SsSocket>();
  const leaks: Leak[] = [];
  const halfLeaks: Leak[] = [];
  for (const fw of candidates) {
    const pid = fw.users[0]!.pid;
    let best: SsSocket | null = null;
    for (const s of closeWaitByPid.get(pid) ?? []) {
      if (takenCw.has(s)) continue;
      if (!best || Math.abs((s.ino ?? 0) - (fw.ino ?? 0)) < Math.abs((best.ino ?? 0) - (fw.ino ?? 0))) best = s;
    }
    if (best) takenCw.add(best);
    const appPort = fw.peerPort!;
    const appStillUses = (used.get(`${fw.peer}|${appPort}`) ?? 0) > 0;
    const leak: Leak = {
      app: ep(fw.peer, appPort),
      appPort,
      proxy: ep(fw.local, fw.localPort),
      process: fw.users[0] ?? null,
      finWait2: fw,
      closeWait: best,
      upstream: best ? ep(best.peer, best.peerPort) : null,
      maxRemainingS: o.idleTimeoutS,
      portReuseRisk: !appStillUses && appPort >= o.ephemeral[0] && appPort <= o.ephemeral[1],
    };
    (best ? leaks : halfLeaks).push(leak);
  }
  return { leaks, halfLeaks };
}
