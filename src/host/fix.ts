/**
 * Workarounds, applied and removed idempotently, touching only what ctprobe added:
 * - drop-invalid (iptables): a chain CTPROBE-INVALID (INVALID → DROP, then RETURN) jumped to from
 *   position 1 of INPUT or FORWARD, every rule commented "ctprobe" — the seed's MY-WORKAROUND chain,
 *   applied in one `iptables-restore --noflush` transaction so a failure leaves nothing half done;
 * - drop-invalid (nft): a table `inet ctprobe` with one base chain, added or deleted in one `nft -f`;
 * - be-liberal: net.netfilter.nf_conntrack_tcp_be_liberal=1, the previous value kept under
 *   /run/ctprobe so `remove` restores it.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { CtprobeError } from '../errors.js';
import { parseIptablesSave } from './firewall.js';
import { readConntrackSysctls, writeSysctl } from './sysctl.js';
import { runInTarget, targetNetnsId, type Target } from './target.js';
import { STATE_DIR } from './statedir.js';
import { findTool } from './exec.js';

export type FixMethod = 'drop-invalid' | 'be-liberal';
export type FixChain = 'INPUT' | 'FORWARD';
export type FixBackend = 'iptables' | 'nft';

export const CTPROBE_CHAIN = 'CTPROBE-INVALID';

export interface FixStatus {
  dropInvalid: { iptables: FixChain[]; nft: FixChain[] };
  beLiberal: { value: number | null; appliedByCtprobe: boolean; previous: number | null };
}

export interface FixResult {
  changed: boolean;
  message: string;
  /** The exact commands / ruleset text (what --dry-run prints). */
  commands: string[];
}


function iptSave(t: Target): string {
  return runInTarget(t, 'iptables-save', []).stdout;
}

function iptStatus(t: Target): FixChain[] {
  const tables = parseIptablesSave(iptSave(t));
  const filter = tables.get('filter');
  if (!filter?.chains.has(CTPROBE_CHAIN)) return [];
  const out: FixChain[] = [];
  for (const c of ['INPUT', 'FORWARD'] as const) if (filter.chains.get(c)?.rules.some((r) => r.target === CTPROBE_CHAIN && r.comment === 'ctprobe')) out.push(c);
  return out;
}

function nftStatus(t: Target): FixChain[] {
  if (!findTool('nft')) return [];
  const r = runInTarget(t, 'nft', ['list', 'table', 'inet', 'ctprobe'], { allowFail: true });
  if (r.status !== 0) return [];
  const out: FixChain[] = [];
  if (/hook input/.test(r.stdout)) out.push('INPUT');
  if (/hook forward/.test(r.stdout)) out.push('FORWARD');
  return out;
}

function stateFile(t: Target): string {
  return `${STATE_DIR}/fix-be-liberal-${targetNetnsId(t)}.json`;
}

export function fixStatus(t: Target, withNft = true): FixStatus {
  const v = readConntrackSysctls(t).nf_conntrack_tcp_be_liberal ?? null;
  let previous: number | null = null;
  let applied = false;
  try {
    previous = (JSON.parse(readFileSync(stateFile(t), 'utf8')) as { previous: number }).previous;
    applied = true;
  } catch {
    /* not applied by ctprobe */
  }
  return { dropInvalid: { iptables: iptStatus(t), nft: withNft ? nftStatus(t) : [] }, beLiberal: { value: v, appliedByCtprobe: applied, previous } };
}

export function iptablesApplyText(chain: FixChain): string {
  return [
    '*filter',
    `:${CTPROBE_CHAIN} - [0:0]`,
    `-A ${CTPROBE_CHAIN} -m comment --comment ctprobe -m conntrack --ctstate INVALID -j DROP`,
    `-A ${CTPROBE_CHAIN} -m comment --comment ctprobe -j RETURN`,
    `-I ${chain} 1 -m comment --comment ctprobe -j ${CTPROBE_CHAIN}`,
    'COMMIT',
    '',
  ].join('\n');
}

function iptablesRemoveText(chains: FixChain[]): string {
  return ['*filter', ...chains.map((c) => `-D ${c} -m comment --comment ctprobe -j ${CTPROBE_CHAIN}`), `-F ${CTPROBE_CHAIN}`, `-X ${CTPROBE_CHAIN}`, 'COMMIT', ''].join('\n');
}

export function nftApplyText(chain: FixChain): string {
  const hook = chain === 'INPUT' ? 'input' : 'forward';
  return `table inet ctprobe {\n  chain ${hook} {\n    type filter hook ${hook} priority filter - 1; policy accept;\n    ct state invalid counter drop comment "ctprobe"\n  }\n}\n`;
}

export function applyFix(t: Target, method: FixMethod, o: { chain: FixChain; backend: FixBackend; dryRun: boolean }): FixResult {
  if (method === 'be-liberal') {
    const cur = readConntrackSysctls(t).nf_conntrack_tcp_be_liberal;
    if (cur === null) throw new CtprobeError('ESYS', 'net.netfilter.nf_conntrack_tcp_be_liberal does not exist here (is nf_conntrack loaded?)');
    const cmd = `sysctl -w net.netfilter.nf_conntrack_tcp_be_liberal=1`;
    if (cur === 1) return { changed: false, message: 'be_liberal is already 1', commands: [] };
    if (o.dryRun) return { changed: false, message: 'would set be_liberal=1', commands: [cmd] };
    mkdirSync(STATE_DIR, { recursive: true });
    writeFileSync(stateFile(t), JSON.stringify({ previous: cur }) + '\n');
    writeSysctl(t, 'nf_conntrack_tcp_be_liberal', 1);
    return { changed: true, message: `set nf_conntrack_tcp_be_liberal=1 (was ${cur}; 'fix remove' restores it)`, commands: [cmd] };
  }
  if (o.backend === 'nft') {
    const text = nftApplyText(o.chain);
    if (nftStatus(t).includes(o.chain)) return { changed: false, message: `already applied (nft table inet ctprobe, ${o.chain})`, commands: [] };
    if (o.dryRun) return { changed: false, message: 'would run nft -f - with:', commands: [text] };
    runInTarget(t, 'nft', ['-f', '-'], { input: text });
    return { changed: true, message: `added nft table inet ctprobe dropping ct state invalid in ${o.chain.toLowerCase()}`, commands: [text] };
  }
  const now = iptStatus(t);
  if (now.includes(o.chain)) return { changed: false, message: `already applied (${CTPROBE_CHAIN} jumped to from ${o.chain})`, commands: [] };
  // With the chain present (jumped to from the other chain), only add the jump.
  const text = now.length ? ['*filter', `-I ${o.chain} 1 -m comment --comment ctprobe -j ${CTPROBE_CHAIN}`, 'COMMIT', ''].join('\n') : iptablesApplyText(o.chain);
  if (o.dryRun) return { changed: false, message: 'would run iptables-restore --noflush with:', commands: [text] };
  runInTarget(t, 'iptables-restore', ['--noflush'], { input: text });
  return { changed: true, message: `added chain ${CTPROBE_CHAIN} (ctstate INVALID → DROP) at position 1 of ${o.chain}`, commands: [text] };
}

export function removeFix(t: Target, method: FixMethod, o: { dryRun: boolean }): FixResult {
  if (method === 'be-liberal') {
    let previous: number;
    try {
      previous = (JSON.parse(readFileSync(stateFile(t), 'utf8')) as { previous: number }).previous;
    } catch {
      return { changed: false, message: 'be_liberal was not set by ctprobe here; nothing to restore', commands: [] };
    }
    const cmd = `sysctl -w net.netfilter.nf_conntrack_tcp_be_liberal=${previous}`;
    if (o.dryRun) return { changed: false, message: 'would restore be_liberal', commands: [cmd] };
    writeSysctl(t, 'nf_conntrack_tcp_be_liberal', previous);
    rmSync(stateFile(t), { force: true });
    return { changed: true, message: `restored nf_conntrack_tcp_be_liberal=${previous}`, commands: [cmd] };
  }
  const res: FixResult = { changed: false, message: '', commands: [] };
  const ipt = iptStatus(t);
  const hasChain = parseIptablesSave(iptSave(t)).get('filter')?.chains.has(CTPROBE_CHAIN) ?? false;
  if (hasChain) {
    const text = iptablesRemoveText(ipt);
    res.commands.push(text);
    if (!o.dryRun) runInTarget(t, 'iptables-restore', ['--noflush'], { input: text });
    res.changed = !o.dryRun;
  }
  if (nftStatus(t).length) {
    const text = 'delete table inet ctprobe\n';
    res.commands.push(text);
    if (!o.dryRun) runInTarget(t, 'nft', ['-f', '-'], { input: text });
    res.changed = !o.dryRun;
  }
  res.message = res.commands.length ? (o.dryRun ? 'would remove ctprobe’s INVALID drop' : 'removed ctprobe’s INVALID drop (nothing else touched)') : 'nothing of ctprobe’s to remove';
  return res;
}
