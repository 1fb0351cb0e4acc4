/**
 * The table of what ctprobe reads from a host (see sources.ts): plain data, so `collect --help`
 * and the CLI's start-up read it without loading the readers.
 */
export interface Source {
  file: string;
  tool: string;
  args: string[];
  what: string;
}

export const SOURCES = {
  ssAll: { file: 'ss-naoep.txt', tool: 'ss', args: ['-naoep'], what: 'all sockets (ss -naoep)' },
  ssTcp: { file: 'ss-tanoepi.txt', tool: 'ss', args: ['-tanoepi'], what: 'TCP sockets (ss -tanoepi)' },
  conntrackList: { file: 'conntrack-L.txt', tool: 'conntrack', args: ['-L'], what: 'conntrack entries (conntrack -L)' },
  conntrackStats: { file: 'conntrack-S.txt', tool: 'conntrack', args: ['-S'], what: 'conntrack counters (conntrack -S)' },
  iptablesSave: { file: 'iptables-save.txt', tool: 'iptables-save', args: [], what: 'iptables rules (iptables-save)' },
  ip6tablesSave: { file: 'ip6tables-save.txt', tool: 'ip6tables-save', args: [], what: 'ip6tables rules (ip6tables-save)' },
  iptablesVersion: { file: 'iptables-version.txt', tool: 'iptables', args: ['-V'], what: 'iptables backend (iptables -V)' },
  iptablesLegacySave: { file: 'iptables-legacy-save.txt', tool: 'iptables-legacy-save', args: [], what: 'legacy iptables rules' },
  iptablesNftSave: { file: 'iptables-nft-save.txt', tool: 'iptables-nft-save', args: [], what: 'nf_tables iptables rules' },
  nft: { file: 'nft.json', tool: 'nft', args: ['-j', 'list', 'ruleset'], what: 'nft ruleset (nft -j list ruleset)' },
  nstat: { file: 'nstat.txt', tool: 'nstat', args: ['-asz'], what: 'SNMP counters (nstat)' },
  addr: { file: 'ip-addr.txt', tool: 'ip', args: ['-d', 'addr'], what: 'addresses (ip addr)' },
  route: { file: 'ip-route.txt', tool: 'ip', args: ['route', 'show', 'table', 'all'], what: 'routes (ip route)' },
  kernelLog: { file: 'kernel-log.txt', tool: 'dmesg', args: [], what: 'kernel log (dmesg)' },
  uname: { file: 'uname.txt', tool: 'uname', args: ['-a'], what: 'kernel (uname -a)' },
} as const satisfies Record<string, Source>;

export type SourceName = keyof typeof SOURCES;
