/** What a cell ran with, so its capture can be replayed through the model as the kernel saw it. */
import type { Sysctls } from '../conntrack/model.js';
import type { LabCellResult } from './scenario.js';

/** The conntrack sysctls of a cell's NAT/app namespace (be_liberal, close_wait) as the model takes them. */
export function cellSysctls(cell: Pick<LabCellResult, 'details'>): Partial<Sysctls> {
  const d = cell.details as { mitigation?: string; closeWaitTimeoutS?: number };
  return {
    beLiberal: d.mitigation === 'be-liberal',
    ...(typeof d.closeWaitTimeoutS === 'number' ? { timeouts: { close_wait: d.closeWaitTimeoutS } } : {}),
  };
}
