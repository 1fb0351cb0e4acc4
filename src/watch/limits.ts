/**
 * What `watch` cannot see here, each with the command that fixes it: said once at start (and in
 * the watch-start event), so a blind watcher is never mistaken for a quiet node.
 */
import { accessSync, constants, readFileSync } from 'node:fs';
import { findTool, isRoot, runSync } from '../host/exec.js';
import { readLogAllNetns } from '../host/sysctl.js';

export interface Limit {
  /** Short key, stable for scripts. */
  what: 'not-root' | 'no-kmsg' | 'no-nf-log-backend' | 'nf-log-all-netns-off' | 'log-invalid-off' | 'no-conntrack-stats' | 'no-ss' | 'no-conntrack-tool';
  says: string;
  fix: string;
}

/** The kernel's logger bound for IPv4 in this namespace ("NONE" when no nf_log backend is loaded). */
function nfLogBackend(): string | null {
  try {
    return readFileSync('/proc/sys/net/netfilter/nf_log/2', 'utf8').trim();
  } catch {
    return null;
  }
}

/** The root namespace's nf_log_all_netns, also from inside another namespace (through pid 1's). */
function logAllNetns(): number | null {
  const v = readLogAllNetns();
  if (v !== null || !isRoot()) return v;
  const r = (() => {
    try {
      return runSync('nsenter', ['--net=/proc/1/ns/net', 'cat', '/proc/sys/net/netfilter/nf_log_all_netns'], { allowFail: true, timeoutMs: 5000 });
    } catch {
      return null;
    }
  })();
  return r && r.status === 0 && /^\d+$/.test(r.stdout.trim()) ? Number(r.stdout.trim()) : null;
}

export function hostLimits(o: { otherNetns: boolean; command: string }): Limit[] {
  const out: Limit[] = [];
  if (!isRoot()) out.push({ what: 'not-root', says: "not root: other namespaces, every process's sockets and the kernel log are out of reach", fix: `sudo ${o.command}` });
  try {
    accessSync('/dev/kmsg', constants.R_OK);
  } catch {
    if (isRoot()) out.push({ what: 'no-kmsg', says: 'cannot read /dev/kmsg: no invalid-packet lines (counters and leaks only)', fix: 'run with CAP_SYSLOG and /dev/kmsg mounted (Kubernetes: privileged: true)' });
  }
  const backend = nfLogBackend();
  if (backend === 'NONE') out.push({ what: 'no-nf-log-backend', says: 'no nf_log backend is loaded: the kernel prints no invalid-packet lines', fix: 'modprobe nf_log_syslog   (kernels before 5.12: modprobe nf_log_ipv4 nf_log_ipv6)' });
  if (o.otherNetns) {
    const all = logAllNetns();
    const fix = "sysctl -w net.netfilter.nf_log_all_netns=1   (on the node's own namespace)";
    if (all === 0) out.push({ what: 'nf-log-all-netns-off', says: "nf_log_all_netns is 0: the kernel prints no invalid-packet lines from containers' namespaces", fix });
    if (all === null) out.push({ what: 'nf-log-all-netns-off', says: "nf_log_all_netns cannot be read from this namespace: if it is 0, the kernel prints no invalid-packet lines from containers' namespaces", fix });
  }
  if (!findTool('ss')) out.push({ what: 'no-ss', says: "no 'ss': half-close leaks cannot be judged", fix: 'apt-get install -y iproute2' });
  if (!findTool('conntrack')) out.push({ what: 'no-conntrack-tool', says: "no 'conntrack': half-close leaks cannot be judged", fix: 'apt-get install -y conntrack' });
  return out;
}
