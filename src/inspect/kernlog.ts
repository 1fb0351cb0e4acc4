/**
 * Kernel log lines about invalid packets → events: conntrack's own ("nf_ct_proto_6: <reason> IN=…")
 * and iptables LOG-target lines with a prefix ("ISTIO_OUTBOUND_INVALID: IN= OUT=eth0 …"), with or
 * without a dmesg timestamp ("[ 123.456]", "[Sat Feb  4 16:10:09 2023]") or a /dev/kmsg prefix.
 */
export interface InvalidLogEvent {
  /** "nf_ct_proto_6" for conntrack's lines, else the LOG prefix (without the colon). */
  source: string;
  /** conntrack's reason ("ACK is over upper bound …"); null for LOG-target lines. */
  reason: string | null;
  in: string | null;
  out: string | null;
  /** Bridge ports (br_netfilter): the veth a bridged packet came in on / goes out of. */
  physIn: string | null;
  physOut: string | null;
  src: string | null;
  dst: string | null;
  proto: string | null;
  sport: number | null;
  dport: number | null;
  seq: number | null;
  ack: number | null;
  window: number | null;
  len: number | null;
  ttl: number | null;
  id: number | null;
  flags: string[];
  time: string | null;
}

const TCP_FLAGS = new Set(['SYN', 'ACK', 'FIN', 'RST', 'PSH', 'URG', 'ECE', 'CWR']);

/** Parse one line; null when it is not about a logged packet. */
export function parseKernelLogLine(line: string): InvalidLogEvent | null {
  let s = line.trim();
  let time: string | null = null;
  const kmsg = /^\d+,\d+,(\d+),[^;]*;/.exec(s);
  if (kmsg) {
    time = `${(Number(kmsg[1]) / 1e6).toFixed(6)}`;
    s = s.slice(kmsg[0].length);
  }
  const dm = /^\[([^\]]+)\]\s*/.exec(s);
  if (dm) {
    time = dm[1]!.trim();
    s = s.slice(dm[0].length);
  }
  const inAt = s.search(/(^|\s)IN=/);
  if (inAt < 0 || !/\bSRC=/.test(s)) return null;
  const head = s.slice(0, inAt).trim();
  const body = s.slice(inAt).trim();
  let source: string;
  let reason: string | null = null;
  const ct = /^(nf_ct_[\w]+):\s*(.*)$/.exec(head);
  if (ct) {
    source = ct[1]!;
    reason = ct[2]!.trim() || null;
  } else source = head.replace(/:\s*$/, '') || 'LOG';
  const kv = new Map<string, string>();
  const flags: string[] = [];
  for (const t of body.replace(/OPT \([^)]*\)/, '').split(/\s+/)) {
    const eq = t.indexOf('=');
    if (eq > 0) kv.set(t.slice(0, eq), t.slice(eq + 1));
    else if (TCP_FLAGS.has(t)) flags.push(t);
  }
  const num = (k: string) => (kv.has(k) && /^\d+$/.test(kv.get(k)!) ? Number(kv.get(k)) : null);
  const str = (k: string) => (kv.get(k) ? kv.get(k)! : null);
  return { source, reason, in: str('IN'), out: str('OUT'), physIn: str('PHYSIN'), physOut: str('PHYSOUT'), src: str('SRC'), dst: str('DST'), proto: str('PROTO'), sport: num('SPT'), dport: num('DPT'), seq: num('SEQ'), ack: num('ACK'), window: num('WINDOW'), len: num('LEN'), ttl: num('TTL'), id: num('ID'), flags, time };
}
