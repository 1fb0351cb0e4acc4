/** Conntrack sysctls of a target namespace (they are per network namespace). */
import { runInTarget, type Target } from './target.js';

/** TCP conntrack sysctls and their defaults (net.netfilter.…). */
export const CONNTRACK_SYSCTLS: Record<string, number> = {
  nf_conntrack_tcp_be_liberal: 0,
  nf_conntrack_tcp_loose: 1,
  nf_conntrack_tcp_ignore_invalid_rst: 0,
  nf_conntrack_log_invalid: 0,
  nf_conntrack_tcp_max_retrans: 3,
  nf_conntrack_tcp_timeout_syn_sent: 120,
  nf_conntrack_tcp_timeout_syn_recv: 60,
  nf_conntrack_tcp_timeout_established: 432000,
  nf_conntrack_tcp_timeout_fin_wait: 120,
  nf_conntrack_tcp_timeout_close_wait: 60,
  nf_conntrack_tcp_timeout_last_ack: 30,
  nf_conntrack_tcp_timeout_time_wait: 120,
  nf_conntrack_tcp_timeout_close: 10,
  nf_conntrack_tcp_timeout_max_retrans: 300,
  nf_conntrack_tcp_timeout_unacknowledged: 300,
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

export function writeSysctl(t: Target, name: string, value: number): void {
  if (!/^[a-z0-9_]+$/.test(name)) throw new Error(`bad sysctl name ${name}`);
  runInTarget(t, 'sh', ['-c', `echo ${Math.trunc(value)} > /proc/sys/net/netfilter/${name}`]);
}
