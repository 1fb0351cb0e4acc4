/**
 * Kernel log lines about logged packets → events: conntrack's own ("nf_ct_proto_6: <reason> IN=…",
 * and the 4.x–5.10 "nf_ct_tcp: <reason> …" texts) and iptables/nft LOG-target lines with a prefix
 * ("ISTIO_OUTBOUND_INVALID: IN= OUT=eth0 …"), in the forms users bring:
 *   dmesg            "[ 1234.567890] nf_ct_proto_6: …"      dmesg -T "[Sat Feb  4 16:10:09 2023] …"
 *   /dev/kmsg        "4,5871,2345678901,-;nf_ct_proto_6: …"  dmesg -x "kern  :warn  : [ 12.3] …"
 *   journalctl       "Feb 04 16:10:09 node1 kernel: …" (short, short-iso, short-precise, short-unix)
 *   syslog           "Feb  4 16:10:09 node1 kernel: [12345.678901] …", RFC 3339 "2023-02-04T16:10:09.123+00:00 node1 kernel: …"
 * The syslog/journal prefix is not part of the source: `source` is conntrack's "nf_ct_…" or the
 * LOG prefix. A conntrack line is parsed even without its packet dump (IN= …), which some log
 * pipelines cut. Every step is one anchored match or a left-to-right scan: linear on any line.
 */
import { canonicalIp } from '../packet/address.js';

export interface InvalidLogEvent {
  /** "nf_ct_proto_6" (or "nf_ct_tcp" before 5.x) for conntrack's lines, else the LOG prefix (without the colon). */
  source: string;
  /** conntrack's reason ("ACK is over upper bound …"); null for LOG-target lines. */
  reason: string | null;
  /** The host named by a syslog/journal line, null for dmesg and /dev/kmsg. */
  host: string | null;
  in: string | null;
  out: string | null;
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

const KMSG = /^\d+,\d+,(\d+),[^;]*;/;
/** dmesg -x: "kern  :warn  : " */
const FACILITY = /^[a-z]+ *:[a-z]+ *: /;
const BRACKET_TIME = /^\[([^\]]{1,40})\]\s*/;
/** syslog / journalctl short and short-precise: "Feb  4 16:10:09[.123456] host" */
const BSD_TIME = /^([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d(?:\.\d+)?) +(\S+) +/;
/** RFC 3339 (rsyslog, journalctl -o short-iso, dmesg --time-format iso) and short-unix */
const ISO_TIME = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?|\d{9,11}\.\d+) +/;
/** the program tag after the host: "kernel:", "kernel[0]:" */
const TAG = /^kernel(?:\[\d+\])?: */;

/** Parse one line; null when it is not about a logged packet. */
export function parseKernelLogLine(line: string): InvalidLogEvent | null {
  let s = line.trim();
  let time: string | null = null;
  let host: string | null = null;
  let m = KMSG.exec(s);
  if (m) {
    time = `${(Number(m[1]) / 1e6).toFixed(6)}`;
    s = s.slice(m[0].length);
  }
  m = FACILITY.exec(s);
  if (m) s = s.slice(m[0].length);
  m = BSD_TIME.exec(s);
  if (m) {
    time = m[1]!;
    host = m[2]!;
    s = s.slice(m[0].length);
  } else {
    m = ISO_TIME.exec(s);
    if (m) {
      time = m[1]!;
      s = s.slice(m[0].length);
      // dmesg --time-format iso has no host; syslog has "host kernel:"
      const sp = s.indexOf(' ');
      if (sp > 0 && TAG.test(s.slice(sp + 1, sp + 20))) {
        host = s.slice(0, sp);
        s = s.slice(sp + 1);
      }
    }
  }
  m = TAG.exec(s);
  if (m) s = s.slice(m[0].length);
  m = BRACKET_TIME.exec(s);
  if (m) {
    // the kernel's own time; a syslog wall-clock time is kept when there is one
    time ??= m[1]!.trim();
    s = s.slice(m[0].length);
    // journalctl -o short-monotonic: "[ 12.3] host kernel: …"
    const sp = s.indexOf(' ');
    if (sp > 0 && TAG.test(s.slice(sp + 1, sp + 20))) {
      host = s.slice(0, sp);
      s = s.slice(sp + 1).replace(TAG, '');
    }
  }
  // The packet dump starts at IN= (a LOG prefix may be glued to it: "--log-prefix DROPIN=eth0"),
  // or, when a pipeline cut that, at MAC= / SRC=.
  let at = s.indexOf('IN=');
  if (at < 0) at = s.indexOf('MAC=');
  if (at < 0) at = s.indexOf('SRC=');
  const head = (at < 0 ? s : s.slice(0, at)).trim();
  const body = at < 0 ? '' : s.slice(at);
  let source: string;
  let reason: string | null = null;
  const colon = head.indexOf(':');
  const ctName = colon > 0 ? head.slice(0, colon) : '';
  if (/^nf_ct_\w+$/.test(ctName)) {
    source = ctName;
    reason = head.slice(colon + 1).trim() || null;
  } else {
    if (!/(^|\s)SRC=/.test(body)) return null;
    source = head.replace(/:\s*$/, '') || 'LOG';
  }
  const kv = new Map<string, string>();
  const flags: string[] = [];
  const tok = body.split(/\s+/);
  for (let i = 0; i < tok.length; i++) {
    const t = tok[i]!;
    if (t === 'OPT' && tok[i + 1]?.startsWith('(')) {
      // TCP/IP options as hex: skip to the closing parenthesis
      while (i < tok.length && !tok[i]!.endsWith(')')) i++;
      continue;
    }
    const eq = t.indexOf('=');
    if (eq > 0) kv.set(t.slice(0, eq), t.slice(eq + 1));
    else if (TCP_FLAGS.has(t)) flags.push(t);
  }
  const num = (k: string) => (kv.has(k) && /^\d+$/.test(kv.get(k)!) ? Number(kv.get(k)) : null);
  const str = (k: string) => (kv.get(k) ? kv.get(k)! : null);
  // nf_log prints IPv6 fully expanded; ss and conntrack -L print it compressed
  const addr = (k: string) => (kv.get(k) ? canonicalIp(kv.get(k)!) : null);
  return { source, reason, host, in: str('IN'), out: str('OUT'), src: addr('SRC'), dst: addr('DST'), proto: str('PROTO'), sport: num('SPT'), dport: num('DPT'), seq: num('SEQ'), ack: num('ACK'), window: num('WINDOW'), len: num('LEN'), ttl: num('TTL'), id: num('ID'), flags, time };
}
