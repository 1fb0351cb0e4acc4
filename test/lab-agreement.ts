/**
 * Model-vs-kernel agreement on a lab capture directory (`ctprobe lab … --capture DIR`): every cell's
 * capture replayed through the model with the cell's sysctls, compared with the kernel's log lines
 * the lab attributed to that cell (src/conntrack/agreement.ts). Shared by the host and guest tests.
 */
import { readFileSync } from 'node:fs';
import { checkAgreement, describeMismatches, replayedPacket, type AgreementResult, type ReplayedPacket } from '../src/conntrack/agreement.js';
import { explainCapture } from '../src/conntrack/explain.js';
import type { Sysctls } from '../src/conntrack/model.js';
import type { NatMapping } from '../src/conntrack/nat.js';
import { parseConntrackLine } from '../src/inspect/conntrack.js';
import { profileForRelease, type KernelProfile } from '../src/conntrack/profile.js';

export interface LabIndexCell {
  id: string;
  capture: string | null;
  captureDropped: number | null;
  ifaces: string[];
  ports: number[];
  verdict: string;
  /** The captured namespace's interfaces by index (tcpdump -i any), when the lab recorded them. */
  ifindex?: Record<string, string> | null;
  details: Record<string, unknown>;
  invalidLog: string[];
}

export interface LabIndex {
  kernel: string;
  /** `uname -v` of the kernel (absent in older indexes). */
  kernelVersion?: string;
  profile: string;
  cells: LabIndexCell[];
}

export function readLabIndex(dir: string): LabIndex {
  return JSON.parse(readFileSync(`${dir}/index.json`, 'utf8')) as LabIndex;
}

/** The conntrack sysctls a lab cell set in its NAT (or app) namespace. */
export function cellSysctls(cell: LabIndexCell): Partial<Sysctls> {
  const d = cell.details;
  const s: Partial<Sysctls> = { beLiberal: d.mitigation === 'be-liberal' || d.beLiberal === true };
  if (typeof d.closeWaitTimeoutS === 'number') s.timeouts = { close_wait: d.closeWaitTimeoutS };
  return s;
}

export interface CellAgreement {
  id: string;
  result: AgreementResult;
  /** One line per mismatch. */
  problems: string[];
  replayed: number;
}

export async function cellAgreement(cell: LabIndexCell, profile: KernelProfile, natMappings?: readonly NatMapping[]): Promise<CellAgreement> {
  if (!cell.capture) throw new Error(`${cell.id}: no capture (run the lab with --capture DIR)`);
  const replay: ReplayedPacket[] = [];
  // The lab attributes kernel lines to a cell by its ports (the app's source port, the server's
  // port): compare the packets of those connections. (The half-close proxy's own upstream
  // connection uses an ephemeral port the lab does not attribute.)
  const ports = new Set(cell.ports);
  await explainCapture(cell.capture, {
    profile,
    sysctls: cellSysctls(cell),
    ...(natMappings ? { natMappings } : {}),
    onPacket: (p) => {
      if (ports.has(p.srcPort) || ports.has(p.dstPort)) replay.push(replayedPacket(p));
    },
  });
  // Only the captured host's lines: in topologies with several conntrack hosts each logs the packet.
  const hostInterfaces = cell.ifindex ? Object.values(cell.ifindex) : undefined;
  const result = checkAgreement(replay, cell.invalidLog, hostInterfaces ? { hostInterfaces } : {});
  return { id: cell.id, result, problems: describeMismatches(result), replayed: replay.length };
}

/** Agreement on every cell of a capture directory, modelled with the profile of the kernel it ran on. */
export async function labAgreement(dir: string): Promise<{ kernel: string; cells: CellAgreement[] }> {
  const index = readLabIndex(dir);
  const profile = profileForRelease(index.kernel, index.kernelVersion);
  const cells: CellAgreement[] = [];
  for (const c of index.cells) cells.push(await cellAgreement(c, profile));
  return { kernel: index.kernel, cells };
}

/** NAT mappings from a `conntrack -L` snapshot the lab took (k8s-service cells, `conntrackSnapshot`). */
export function conntrackMappings(file: string): NatMapping[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => /^tcp\s/.test(l))
    .map((l, i) => parseConntrackLine(l, i + 1))
    .map((e) => ({
      orig: { src: e.original.src, sport: e.original.sport ?? 0, dst: e.original.dst, dport: e.original.dport ?? 0 },
      reply: { src: e.reply.src, sport: e.reply.sport ?? 0, dst: e.reply.dst, dport: e.reply.dport ?? 0 },
    }));
}
