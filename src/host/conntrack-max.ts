/**
 * nf_conntrack_max, the conntrack table's limit (global: set in the initial namespace, read in any):
 * its default and this host's value. A module of its own: explain reads it at start.
 */
import { readFileSync } from 'node:fs';

/** nf_conntrack_max by default on a 64-bit host with more than 4 GB of memory: the hash table's size, 262,144 buckets (less memory, fewer). */
export const DEFAULT_CONNTRACK_MAX = 262144;

/** This host's nf_conntrack_max, or null when it cannot be read (nf_conntrack not loaded, no /proc). */
export function hostConntrackMax(): number | null {
  try {
    const v = Number(readFileSync('/proc/sys/net/netfilter/nf_conntrack_max', 'utf8').trim());
    return Number.isInteger(v) && v >= 0 ? v : null;
  } catch {
    return null;
  }
}
