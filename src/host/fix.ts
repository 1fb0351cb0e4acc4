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
import { PrivilegeError, SystemError } from '../errors.js';
import { parseIptablesSave } from './firewall.js';
import { readConntrackSysctls, writeSysctls } from './sysctl.js';
import { runInTarget, targetNetnsId, type Target } from './target.js';
import { netnsStateFile, pruneStateFiles, STATE_DIR } from './statedir.js';
import { findTool, isRoot } from './exec.js';

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

/** ctprobe's nft table as text, or null when it does not exist. */
function nftTable(t: Target): string | null {
  if (!findTool('nft')) return null;
  const r = runInTarget(t, 'nft', ['list', 'table', 'inet', 'ctprobe'], { allowFail: true });
  return r.status === 0 ? r.stdout : null;
}

function nftStatus(t: Target): FixChain[] {
  const text = nftTable(t);
  if (text === null) return [];
  const r = { stdout: text };
  const out: FixChain[] = [];
  if (/hook input/.test(r.stdout)) out.push('INPUT');
  if (/hook forward/.test(r.stdout)) out.push('FORWARD');
  return out;
}

function stateFile(t: Target): string {
  return netnsStateFile('fix-be-liberal', targetNetnsId(t));
}

/** What the namespace looked like before ctprobe's iptables chain, so remove can restore it exactly. */
function dropStateFile(t: Target): string {
  return netnsStateFile('fix-drop-invalid', targetNetnsId(t));
}

/** Fixes change a firewall or a sysctl: fail in one line, up front, without the privilege. */
export function requireFixPrivilege(): void {
  if (!isRoot()) throw new PrivilegeError('fix reads and changes the firewall and conntrack sysctls: run it as root (or with CAP_NET_ADMIN)');
}

/**
 * An iptables `filter` table that ctprobe's apply created (it was not there before) and that is
 * now empty again: built-in chains only, policy ACCEPT, no rules.
 */
function filterTableIsPristine(save: string): boolean {
  const filter = parseIptablesSave(save).get('filter');
  if (!filter) return false;
  return [...filter.chains].every(([name, c]) => ['INPUT', 'FORWARD', 'OUTPUT'].includes(name) && c.policy === 'ACCEPT' && c.rules.length === 0);
}

export function fixStatus(t: Target, withNft = true): FixStatus {
  requireFixPrivilege();
  pruneStateFiles();
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
  requireFixPrivilege();
  pruneStateFiles();
  if (method === 'be-liberal') {
    const cur = readConntrackSysctls(t).nf_conntrack_tcp_be_liberal;
    if (cur === null) throw new SystemError('net.netfilter.nf_conntrack_tcp_be_liberal does not exist here (is nf_conntrack loaded?)');
    const cmd = `sysctl -w net.netfilter.nf_conntrack_tcp_be_liberal=1`;
    if (cur === 1) return { changed: false, message: 'be_liberal is already 1', commands: [] };
    if (o.dryRun) return { changed: false, message: 'would set be_liberal=1', commands: [cmd] };
    mkdirSync(STATE_DIR, { recursive: true });
    writeFileSync(stateFile(t), JSON.stringify({ previous: cur }) + '\n');
    writeSysctls(t, { nf_conntrack_tcp_be_liberal: 1 });
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
  if (!now.length) {
    mkdirSync(STATE_DIR, { recursive: true });
    writeFileSync(dropStateFile(t), JSON.stringify({ filterTableExisted: /^\*filter$/m.test(iptSave(t)) }) + '\n');
  }
  runInTarget(t, 'iptables-restore', ['--noflush'], { input: text });
  return { changed: true, message: `added chain ${CTPROBE_CHAIN} (ctstate INVALID → DROP) at position 1 of ${o.chain}`, commands: [text] };
}

/** If apply created iptables' filter table (iptables-nft), delete it again so remove is byte-identical. */
function restoreFilterTable(t: Target): void {
  let before: { filterTableExisted: boolean } | null = null;
  try {
    before = JSON.parse(readFileSync(dropStateFile(t), 'utf8')) as { filterTableExisted: boolean };
  } catch {
    /* applied by an older ctprobe, or by hand: leave the table */
  }
  rmSync(dropStateFile(t), { force: true });
  if (!before || before.filterTableExisted) return;
  const backendNft = /nf_tables/.test(runInTarget(t, 'iptables', ['-V'], { allowFail: true }).stdout);
  if (backendNft && filterTableIsPristine(iptSave(t))) runInTarget(t, 'nft', ['delete', 'table', 'ip', 'filter'], { allowFail: true });
}

export function removeFix(t: Target, method: FixMethod, o: { dryRun: boolean }): FixResult {
  requireFixPrivilege();
  pruneStateFiles();
  if (method === 'be-liberal') {
    let previous: number;
    try {
      previous = (JSON.parse(readFileSync(stateFile(t), 'utf8')) as { previous: number }).previous;
    } catch {
      return { changed: false, message: 'be_liberal was not set by ctprobe here; nothing to restore', commands: [] };
    }
    const cmd = `sysctl -w net.netfilter.nf_conntrack_tcp_be_liberal=${previous}`;
    if (o.dryRun) return { changed: false, message: 'would restore be_liberal', commands: [cmd] };
    writeSysctls(t, { nf_conntrack_tcp_be_liberal: previous });
    rmSync(stateFile(t), { force: true });
    return { changed: true, message: `restored nf_conntrack_tcp_be_liberal=${previous}`, commands: [cmd] };
  }
  const res: FixResult = { changed: false, message: '', commands: [] };
  const ipt = iptStatus(t);
  const hasChain = parseIptablesSave(iptSave(t)).get('filter')?.chains.has(CTPROBE_CHAIN) ?? false;
  if (hasChain) {
    const text = iptablesRemoveText(ipt);
    res.commands.push(text);
    if (!o.dryRun) {
      runInTarget(t, 'iptables-restore', ['--noflush'], { input: text });
      restoreFilterTable(t);
    }
    res.changed = !o.dryRun;
  }
  // The table, not its hooks: a user may have deleted ctprobe's chain and left the table.
  if (nftTable(t) !== null) {
    const text = 'delete table inet ctprobe\n';
    res.commands.push(text);
    if (!o.dryRun) runInTarget(t, 'nft', ['-f', '-'], { input: text });
    res.changed = !o.dryRun;
  }
  res.message = res.commands.length ? (o.dryRun ? 'would remove ctprobe’s INVALID drop' : 'removed ctprobe’s INVALID drop (nothing else touched)') : 'nothing of ctprobe’s to remove';
  return res;
}
