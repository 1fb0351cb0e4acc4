/**
 * The lab's leak check: the half-close leak detector of src/inspect over `ss -tanoepi` and
 * `conntrack -L` of the app namespace, narrowed to the app's source port. Only sockets a process
 * still holds count: once the proxy closes them, an orphaned FIN-WAIT-2 is the kernel's to reap
 * (tcp_fin_timeout), not a leak.
 */
import { parseConntrack } from '../inspect/conntrack.js';
import { findLeaks } from '../inspect/leaks.js';
import { parseSs, type SsSocket } from '../inspect/ss.js';

export interface LabLeak {
  finWait2: string;
  closeWait: string | null;
}

const show = (s: SsSocket) => `${s.state} ${s.recvQ} ${s.sendQ} ${s.local}:${s.localPort ?? '*'} ${s.peer}:${s.peerPort ?? '*'}${s.users[0] ? ` ${s.users[0].name}/${s.users[0].pid}` : ''}`;

export async function findProxyLeak(ss: string, conntrack: string, proxyPort: number, appPort: number): Promise<LabLeak | null> {
  const sockets = await parseSs(ss, { lenient: true });
  const entries = await parseConntrack(conntrack, { lenient: true });
  const found = findLeaks(sockets, entries, { proxyPort });
  const leak = [...found.leaks, ...found.halfLeaks].find((l) => l.appPort === appPort);
  return leak ? { finWait2: show(leak.finWait2), closeWait: leak.closeWait ? show(leak.closeWait) : null } : null;
}
