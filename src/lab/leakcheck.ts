/**
 * The lab's leak check: in `ss -tanoepi` output of the app namespace, the proxy's FIN-WAIT-2
 * socket on its port towards the app's source port, and its CLOSE-WAIT partner towards the
 * upstream owned by the same process, with no conntrack entry left for the app's port.
 * Only sockets a process still holds count: once the proxy closes them, an orphaned FIN-WAIT-2
 * is the kernel's to reap (tcp_fin_timeout), not a leak.
 */
export interface LabLeak {
  finWait2: string;
  closeWait: string | null;
}

export function findProxyLeak(ss: string, conntrack: string, proxyPort: number, appPort: number): LabLeak | null {
  const lines = ss.split('\n');
  const fw = lines.find((l) => /^(tcp\s+)?FIN-WAIT-2\s/.test(l) && l.includes(`:${proxyPort} `) && new RegExp(`:${appPort}\\s`).test(l) && l.includes('users:('));
  if (!fw) return null;
  const pid = /pid=(\d+)/.exec(fw)?.[1];
  const cw = lines.find((l) => /^(tcp\s+)?CLOSE-WAIT\s/.test(l) && (!pid || l.includes(`pid=${pid},`))) ?? null;
  if (conntrack && new RegExp(`sport=${appPort}\\b`).test(conntrack)) return null;
  return { finWait2: fw.trim().replace(/\s+/g, ' '), closeWait: cw?.trim().replace(/\s+/g, ' ') ?? null };
}
