/**
 * Making the kernel say why packets are INVALID, reversibly:
 * - sysctl method: net.netfilter.nf_conntrack_log_invalid=6 (TCP) in the target namespace; lines
 *   from a non-root namespace are printed only with the root namespace's nf_log_all_netns=1, which
 *   ctprobe sets only when asked (--all-netns) and restores on `off`;
 * - log-rule method: mangle LOG rules with a prefix for ctstate INVALID TCP packets, as the seed
 *   did, in a chain of ctprobe's own jumped to from PREROUTING and OUTPUT.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { InputError, PrivilegeError, UsageError } from '../errors.js';
import { fileLineBatches } from '../inspect/lines.js';
import { Bundle } from './bundle.js';
import { parseKernelLogLine, type InvalidLogEvent } from '../inspect/kernlog.js';
import { KernelLog } from './kmsg.js';
import { parseIptablesSave } from './firewall.js';
import { enableLogAllNetns, readConntrackSysctls, readLogAllNetns, restoreLogAllNetnsNow, writeSysctls } from './sysctl.js';
import { runInTarget, targetNetnsId, type Target } from './target.js';
import { netnsStateFile, STATE_DIR } from './statedir.js';

export const LOG_CHAIN = 'CTPROBE-LOG';

const stateFile = (t: Target) => netnsStateFile('invalid-log', targetNetnsId(t));

export interface InvalidLogStatus {
  logInvalid: number | null;
  logAllNetns: number | null;
  logRule: string | null;
  setByCtprobe: boolean;
  /** Whether lines from this target will actually be printed. */
  effective: boolean;
}

function logRulePrefix(t: Target): string | null {
  const r = runInTarget(t, 'iptables-save', ['-t', 'mangle'], { allowFail: true });
  if (r.status !== 0) return null;
  const chain = parseIptablesSave(r.stdout).get('mangle')?.chains.get(LOG_CHAIN);
  const rule = chain?.rules.find((x) => x.target === 'LOG');
  return rule ? (/--log-prefix "([^"]*)"/.exec(rule.text)?.[1] ?? '') : null;
}

export function invalidLogStatus(t: Target): InvalidLogStatus {
  const v = readConntrackSysctls(t).nf_conntrack_log_invalid ?? null;
  const all = readLogAllNetns();
  let setBy = false;
  try {
    readFileSync(stateFile(t));
    setBy = true;
  } catch {
    /* not ours */
  }
  const rule = logRulePrefix(t);
  const inRoot = t.kind === 'host';
  return { logInvalid: v, logAllNetns: all, logRule: rule, setByCtprobe: setBy, effective: (v === 6 || v === 255 || rule !== null) && (inRoot || all === 1) };
}

export function invalidLogOn(t: Target, o: { method: 'sysctl' | 'log-rule'; prefix: string; allNetns: boolean }): string[] {
  const said: string[] = [];
  const cur = readConntrackSysctls(t).nf_conntrack_log_invalid ?? null;
  mkdirSync(STATE_DIR, { recursive: true });
  let state: { previous: number | null; logRule: boolean; allNetns: boolean; createdMangle?: boolean } = { previous: null, logRule: false, allNetns: false };
  try {
    state = JSON.parse(readFileSync(stateFile(t), 'utf8')) as typeof state;
  } catch {
    state.previous = cur;
  }
  if (o.method === 'sysctl') {
    if (cur === null) throw new UsageError('net.netfilter.nf_conntrack_log_invalid does not exist here (is nf_conntrack loaded?)');
    if (cur !== 6) writeSysctls(t, { nf_conntrack_log_invalid: 6 });
    said.push(cur === 6 ? 'nf_conntrack_log_invalid is already 6' : `set nf_conntrack_log_invalid=6 (was ${cur})`);
  } else if (logRulePrefix(t) === null) {
    if (!/^[\w .:-]{1,28}$/.test(o.prefix)) throw new UsageError('--prefix: up to 28 letters, digits, spaces, . : _ -');
    const rules = ['*mangle', `:${LOG_CHAIN} - [0:0]`, `-A ${LOG_CHAIN} -p tcp -m conntrack --ctstate INVALID -m comment --comment ctprobe -j LOG --log-level debug --log-prefix "${o.prefix}: "`, `-I PREROUTING 1 -m comment --comment ctprobe -j ${LOG_CHAIN}`, `-I OUTPUT 1 -m comment --comment ctprobe -j ${LOG_CHAIN}`, 'COMMIT', ''].join('\n');
    const hadMangle = /^\*mangle$/m.test(runInTarget(t, 'iptables-save', []).stdout);
    runInTarget(t, 'iptables-restore', ['--noflush'], { input: rules });
    state.logRule = true;
    state.createdMangle = !hadMangle;
    said.push(`added mangle LOG rules with prefix "${o.prefix}: " for INVALID TCP packets`);
  } else said.push('LOG rules already present');
  if (t.kind !== 'host' && readLogAllNetns() !== 1) {
    if (o.allNetns) {
      enableLogAllNetns();
      state.allNetns = true;
      said.push('set the root namespace’s net.netfilter.nf_log_all_netns=1 (restored by off)');
    } else said.push('note: the root namespace’s nf_log_all_netns is 0, so the kernel prints nothing from this namespace; add --all-netns');
  }
  writeFileSync(stateFile(t), JSON.stringify(state) + '\n');
  return said;
}

export function invalidLogOff(t: Target): string[] {
  let state: { previous: number | null; logRule: boolean; allNetns: boolean; createdMangle?: boolean };
  try {
    state = JSON.parse(readFileSync(stateFile(t), 'utf8')) as typeof state;
  } catch {
    return ['nothing of ctprobe’s to turn off here'];
  }
  const said: string[] = [];
  if (state.previous !== null && readConntrackSysctls(t).nf_conntrack_log_invalid !== state.previous) {
    writeSysctls(t, { nf_conntrack_log_invalid: state.previous });
    said.push(`restored nf_conntrack_log_invalid=${state.previous}`);
  }
  if (logRulePrefix(t) !== null) {
    runInTarget(t, 'iptables-restore', ['--noflush'], { input: ['*mangle', `-D PREROUTING -m comment --comment ctprobe -j ${LOG_CHAIN}`, `-D OUTPUT -m comment --comment ctprobe -j ${LOG_CHAIN}`, `-F ${LOG_CHAIN}`, `-X ${LOG_CHAIN}`, 'COMMIT', ''].join('\n') });
    said.push('removed the LOG rules');
    // iptables-nft keeps a table once created: drop the mangle table again if ctprobe created it and it is empty.
    const mangle = parseIptablesSave(runInTarget(t, 'iptables-save', ['-t', 'mangle'], { allowFail: true }).stdout).get('mangle');
    const empty = mangle && [...mangle.chains.values()].every((c) => c.rules.length === 0);
    if (state.createdMangle && empty && /nf_tables/.test(runInTarget(t, 'iptables', ['-V'], { allowFail: true }).stdout))
      runInTarget(t, 'nft', ['delete', 'table', 'ip', 'mangle'], { allowFail: true });
  }
  if (state.allNetns) {
    const v = restoreLogAllNetnsNow();
    if (v !== null) said.push(`restored nf_log_all_netns=${v}`);
  }
  rmSync(stateFile(t), { force: true });
  return said.length ? said : ['already off'];
}

export interface WatchedLine {
  /** Microseconds since boot (live), null from a saved log. */
  usec: number | null;
  event: InvalidLogEvent;
}

/**
 * Follow the kernel log from now on and hand over each invalid-packet line, until `signal` aborts
 * or `untilMs` (epoch ms) passes. Returns how many lines were seen.
 */
export async function watchInvalidLog(o: { untilMs: number; onlyConntrack: boolean; signal: AbortSignal }, onLine: (l: WatchedLine) => void): Promise<number> {
  const klog = KernelLog.open();
  if (!klog) throw new PrivilegeError('cannot read /dev/kmsg: run as root (or with CAP_SYSLOG)');
  let n = 0;
  try {
    while (!o.signal.aborted && Date.now() < o.untilMs) {
      for (const r of klog.drain()) {
        const e = parseKernelLogLine(r.text);
        if (!e || (o.onlyConntrack && e.reason === null)) continue;
        n++;
        onLine({ usec: r.usec, event: e });
      }
      await sleep(200, undefined, { signal: o.signal }).catch(() => undefined);
    }
  } finally {
    klog.close();
  }
  return n;
}

/** Invalid-packet lines of a saved kernel log: dmesg (-T), journalctl, syslog, /dev/kmsg copies. */
export async function invalidLinesFromFile(file: string, onlyConntrack: boolean, onLine: (l: WatchedLine) => void): Promise<number> {
  let n = 0;
  for await (const batch of fileLineBatches(file))
    for (const line of batch) {
      const e = parseKernelLogLine(line);
      if (!e || (onlyConntrack && e.reason === null)) continue;
      n++;
      onLine({ usec: null, event: e });
    }
  return n;
}

/** Invalid-packet lines of a bundle's kernel log. */
export async function invalidLinesFromBundle(path: string, onlyConntrack: boolean, onLine: (l: WatchedLine) => void): Promise<number> {
  const b = await Bundle.open(path);
  try {
    const f = b.file('kernelLog');
    if (f.text === null) throw new InputError(`the bundle has no kernel log (${f.why})`, path);
    return await invalidLinesFromFile(f.text, onlyConntrack, onLine);
  } finally {
    b.close();
  }
}
