/**
 * Conntrack sysctls of a target namespace (they are per network namespace): the one place that
 * reads and writes them, and the one list of their defaults (timeouts come from the model).
 */
import { DEFAULT_TIMEOUTS } from '../conntrack/states.js';
import { DEFAULT_CONNTRACK_MAX } from './conntrack-max.js';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { InternalError } from '../errors.js';
import { STATE_DIR } from './statedir.js';
import { run, type RunOptions } from './exec.js';
import { runInTarget, type Target } from './target.js';

/** TCP conntrack sysctls and their defaults (net.netfilter.…). */
export const CONNTRACK_SYSCTLS: Readonly<Record<string, number>> = {
  nf_conntrack_tcp_be_liberal: 0,
  nf_conntrack_tcp_loose: 1,
  nf_conntrack_tcp_ignore_invalid_rst: 0,
  nf_conntrack_log_invalid: 0,
  nf_conntrack_tcp_max_retrans: 3,
  // (the table's limit: the kernel's default on a 64-bit host with more than 4 GB; less with less)
  nf_conntrack_max: DEFAULT_CONNTRACK_MAX,
  ...Object.fromEntries(Object.entries(DEFAULT_TIMEOUTS).map(([k, v]) => [`nf_conntrack_tcp_timeout_${k}`, v])),
};

/** Read every known conntrack sysctl in one go; absent ones (older kernels) are null. */
export function readConntrackSysctls(t: Target): Record<string, number | null> {
  const names = Object.keys(CONNTRACK_SYSCTLS);
  const script = names.map((n) => `printf '%s ' ${n}; cat /proc/sys/net/netfilter/${n} 2>/dev/null || echo -`).join('; ');
  const r = runInTarget(t, 'sh', ['-c', script], { allowFail: true });
  const out: Record<string, number | null> = {};
  for (const n of names) out[n] = null;
  for (const line of r.stdout.split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && k in out) out[k] = v === undefined || v === '-' ? null : Number(v);
  }
  return out;
}

/**
 * A shell script writing sysctls, given as dotted names (`net.ipv4.ip_forward`) or bare
 * netfilter names (`nf_conntrack_log_invalid`); stops at the first failure.
 */
export function sysctlScript(values: Record<string, number>): string {
  return Object.entries(values)
    .map(([name, v]) => {
      if (!/^[a-z0-9_.]+$/.test(name)) throw new InternalError(`bad sysctl name ${name}`);
      const path = name.includes('.') ? name.replace(/\./g, '/') : `net/netfilter/${name}`;
      return `echo ${Math.trunc(v)} > /proc/sys/${path}`;
    })
    .join(' && ');
}

/** Write sysctls in a target namespace (one process for all of them). */
export function writeSysctls(t: Target, values: Record<string, number>): void {
  runInTarget(t, 'sh', ['-c', sysctlScript(values)]);
}

/** The same inside a named namespace, asynchronously (the lab's cells run in parallel). */
export async function writeSysctlsIn(netns: string, values: Record<string, number>, opts: RunOptions = {}): Promise<void> {
  await run('sh', ['-c', sysctlScript(values)], { ...opts, netns });
}

// nf_log_all_netns: the one root-namespace sysctl ctprobe may touch (kernel log lines from other
// namespaces are printed only when it is 1). The original value is kept on disk so that a
// killed run's leftovers can still restore it.
const LOG_ALL = '/proc/sys/net/netfilter/nf_log_all_netns';
const LOG_ALL_ORIG = `${STATE_DIR}/nf_log_all_netns.orig`;

/** Read nf_log_all_netns; null when the kernel has none. */
export function readLogAllNetns(): number | null {
  try {
    return Number(readFileSync(LOG_ALL, 'utf8').trim());
  } catch {
    return null;
  }
}

/** Make sure kernel log lines from other namespaces are emitted; remember the original value. */
export function enableLogAllNetns(): { changed: boolean; value: number | null } {
  const v = readLogAllNetns();
  if (v === null || v === 1) return { changed: false, value: v };
  mkdirSync(STATE_DIR, { recursive: true });
  if (!existsSync(LOG_ALL_ORIG)) writeFileSync(LOG_ALL_ORIG, `${v}\n`);
  try {
    writeFileSync(LOG_ALL, '1\n');
  } catch {
    return { changed: false, value: v };
  }
  return { changed: true, value: 1 };
}

/** Restore nf_log_all_netns to the value remembered by enableLogAllNetns (callers decide when). */
export function restoreLogAllNetnsNow(): number | null {
  if (!existsSync(LOG_ALL_ORIG)) return null;
  const orig = Number(readFileSync(LOG_ALL_ORIG, 'utf8').trim());
  try {
    writeFileSync(LOG_ALL, `${orig}\n`);
  } catch {
    return null;
  }
  rmSync(LOG_ALL_ORIG, { force: true });
  return orig;
}


// The nf_log backend: with none bound, nf_conntrack_log_invalid prints nothing. A freshly booted
// distribution kernel has none loaded; 6.x ships nf_log_syslog, 5.x nf_log_ipv4 + nf_log_ipv6.
const NF_LOG_IPV4 = '/proc/sys/net/netfilter/nf_log/2';

/** The logger bound for IPv4 ("nf_log_ipv4", …), null when none ("NONE"), undefined when unreadable. */
export function readNfLogBackend(): string | null | undefined {
  try {
    const v = readFileSync(NF_LOG_IPV4, 'utf8').trim();
    return v === 'NONE' || v === '' ? null : v;
  } catch {
    return undefined;
  }
}

export interface NfLogBackend {
  /** The logger bound for IPv4 now; null when none could be bound. */
  backend: string | null;
  /** Modules this call loaded. */
  loaded: string[];
  /** Why there is none (modprobe's words), when there is none. */
  why: string | null;
}

/** Bind an nf_log backend if none is: modprobe nf_log_syslog (6.x), else nf_log_ipv4 + nf_log_ipv6 (5.x). */
export async function ensureNfLogBackend(): Promise<NfLogBackend> {
  const now = readNfLogBackend();
  if (now) return { backend: now, loaded: [], why: null };
  if (now === undefined) return { backend: null, loaded: [], why: `${NF_LOG_IPV4} is unreadable (no netfilter logging in this kernel)` };
  const errors: string[] = [];
  for (const mods of [['nf_log_syslog'], ['nf_log_ipv4', 'nf_log_ipv6']]) {
    let r: { status: number; stderr: string };
    try {
      r = await run('modprobe', ['-a', ...mods], { allowFail: true });
    } catch (e) {
      r = { status: -1, stderr: (e as Error).message }; // no modprobe (kmod): said, not fatal
    }
    if (r.status === 0 && readNfLogBackend()) return { backend: readNfLogBackend()!, loaded: mods, why: null };
    if (r.status !== 0) errors.push(r.stderr.trim().split('\n')[0] ?? `modprobe ${mods.join(' ')} failed`);
  }
  return { backend: null, loaded: [], why: errors.join('; ') || 'no nf_log backend could be bound' };
}
