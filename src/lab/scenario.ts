/** What every lab scenario provides to the runner, and what every cell reports. */
import type { KernelProfile } from './expect.js';

export interface LabCellResult {
  id: string;
  verdict: string;
  expected: string;
  match: boolean;
  /** Why this kernel should give the expected verdict, in plain words. */
  why: string;
  /** The kernel's invalid-packet log lines for this cell. */
  invalidLog: string[];
  /** conntrack -S `invalid` delta in the NAT/app namespace; null when unreadable. */
  invalidCount: number | null;
  ms: number;
  /** Namespaces the cell created (for --keep and teardown); not printed in JSON. */
  namespaces: string[];
  /** Interfaces whose names attribute kernel log lines to this cell. */
  ifaces: string[];
  /** Ports whose SPT=/DPT= attribute kernel log lines to this cell. */
  ports: number[];
  /** Scenario-specific figures. */
  details: Record<string, unknown>;
  /** The capture file of this cell, with `--capture`. */
  capture?: string;
  /** With `--capture`: ifindex → name in the captured namespace (SLL2 records carry the ifindex). */
  ifindex?: Record<string, string>;
  /** With `--capture`: packets tcpdump reported as dropped by the kernel (null: unknown). */
  captureDropped?: number | null;
}

export interface LabContext {
  runId: string;
  profile: KernelProfile;
  /** Called with every namespace before it is created, so teardown can remove it on any path. */
  track(namespaces: string[]): void;
  /** When set, cells write a capture of their NAT/app host here (`lab --capture DIR`). */
  captureDir: string | null;
}

export interface Scenario {
  name: string;
  /** One line for `lab list`. */
  what: string;
  cells: number;
  cellId(index: number): string;
  runCell(index: number, ctx: LabContext): Promise<LabCellResult>;
}
