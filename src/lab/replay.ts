/** What a cell ran with, so its capture can be replayed through the model as the kernel saw it. */
import type { Sysctls } from '../conntrack/model.js';
import { HC } from './halfclose.js';
import type { LabCellResult } from './scenario.js';

/** The conntrack sysctls of a cell's NAT/app namespace (be_liberal, close_wait) as the model takes them. */
export function cellSysctls(cell: Pick<LabCellResult, 'details'>): Partial<Sysctls> {
  const d = cell.details as { mitigation?: string; closeWaitTimeoutS?: number };
  return {
    beLiberal: d.mitigation === 'be-liberal',
    ...(typeof d.closeWaitTimeoutS === 'number' ? { timeouts: { close_wait: d.closeWaitTimeoutS } } : {}),
  };
}

/**
 * The parties of a half-close cell's capture, for a diagram with one column each (NAME=EP,…):
 * the app's socket, the proxy (its listener on 15001 and, on the app's host, its other sockets),
 * the upstream. Null for cells whose capture is one connection through a NAT host.
 */
export function cellParties(cell: Pick<LabCellResult, 'details'>): string[] | null {
  const sport = (cell.details as { sourcePort?: number }).sourcePort;
  if (typeof sport !== 'number') return null;
  return [`app=${HC.app}:${sport}`, `proxy :${HC.proxyPort}=127.0.0.1:${HC.proxyPort},*:${HC.proxyPort},${HC.app}:*`, `upstream=${HC.upstream}:${HC.upstreamPort}`];
}
