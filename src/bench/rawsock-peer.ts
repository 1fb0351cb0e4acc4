/**
 * Raw-socket benchmark peers, run inside the bench's namespaces:
 *   node rawsock-peer.js recv PORT SECONDS      count segments to PORT (BPF-filtered) for SECONDS
 *   node rawsock-peer.js send SRC DST PORT COUNT SECONDS   send COUNT ACK segments to DST:PORT, bounded by SECONDS
 *   node rawsock-peer.js syn SRC DST PORT COUNT SECONDS LO HI [IFNAME MAC]   a SYN flood: COUNT SYNs to DST:PORT
 *                                                   from source ports LO..HI in turn (a new half-open entry each), bounded
 *                                                   by SECONDS, sent with sendmmsg (from a raw IP socket, or with IFNAME
 *                                                   and MAC whole IPv4 packets from a packet socket); SIGTERM ends it early
 * Each prints one JSON result line (syn first prints {"sending":true}).
 */
import { parseIP } from '../packet/address.js';
import { encodeTcp, TCP_ACK, TCP_SYN } from '../packet/tcp.js';
import { encodeIPv4, IPPROTO_TCP } from '../packet/ip.js';
import { LinkSender, RawTcpSocket } from '../rawsock/index.js';

const [mode, ...a] = process.argv.slice(2);
if (mode === 'recv') {
  const port = Number(a[0]);
  const seconds = Number(a[1]);
  const s = RawTcpSocket.open({ port, rcvbuf: 8 * 1024 * 1024 });
  let first = 0;
  let last = 0;
  let n = 0;
  s.onPacket(() => {
    n++;
    last = performance.now();
    if (n === 1) first = last;
  });
  process.stdout.write(JSON.stringify({ ready: true }) + '\n');
  setTimeout(() => {
    s.close();
    const secs = (last - first) / 1000;
    process.stdout.write(JSON.stringify({ received: n, seconds: secs, rate: secs > 0 ? Math.round(n / secs) : 0, rssMB: Math.round(process.memoryUsage().rss / 1e6) }) + '\n');
  }, seconds * 1000);
} else if (mode === 'syn') {
  const src = parseIP(a[0]!);
  const dst = parseIP(a[1]!);
  const port = Number(a[2]);
  const count = Number(a[3]);
  const deadline = performance.now() + Number(a[4]) * 1000;
  const lo = Number(a[5]);
  const hi = Number(a[6]);
  // optional: IFNAME MAC — whole IPv4 packets through a packet socket on IFNAME to MAC
  const link = a[7] && a[8] ? { ifname: a[7], mac: Uint8Array.from(a[8].split(':').map((h) => parseInt(h, 16))) } : null;
  void synFlood(src, dst, port, count, deadline, lo, hi, link);
} else if (mode === 'send') {
  const src = parseIP(a[0]!);
  const dst = parseIP(a[1]!);
  const port = Number(a[2]);
  const count = Number(a[3]);
  const deadline = performance.now() + Number(a[4]) * 1000;
  const s = RawTcpSocket.open({ port: 1 });
  const seg = encodeTcp({ srcPort: 40000, dstPort: port, seq: 1, ack: 1, flags: TCP_ACK, window: 100 }, src, dst);
  const t0 = performance.now();
  let sent = 0;
  let errors = 0;
  for (; sent < count && (sent & 1023 || performance.now() < deadline); sent++) {
    try {
      s.send(seg, dst);
    } catch {
      errors++;
    }
  }
  const secs = (performance.now() - t0) / 1000;
  s.close();
  process.stdout.write(JSON.stringify({ sent, errors, seconds: secs, rate: Math.round(sent / secs) }) + '\n');
}

/**
 * COUNT SYNs from ports LO..HI in turn, bounded by the deadline too; SIGTERM/SIGINT end it early
 * (the parent stops the flood once its legitimate clients are done). Prints {"sending":true} when
 * the first SYN is about to go, then the result line.
 */
async function synFlood(src: Uint8Array, dst: Uint8Array, port: number, count: number, deadline: number, lo: number, hi: number, link: { ifname: string; mac: Uint8Array } | null): Promise<void> {
  let stop = false;
  const onSignal = () => (stop = true);
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // One SYN per source port, laid out once for sendmmsg: the loop only hands slices to the kernel.
  const segs: Uint8Array[] = [];
  for (let p = lo; p <= hi; p++) segs.push(encodeTcp({ srcPort: p, dstPort: port, seq: (p * 7919) >>> 0, ack: 0, flags: TCP_SYN, window: 64240 }, src, dst));
  const s = link ? LinkSender.open(link.ifname) : RawTcpSocket.open({ port: 1 });
  const batch = link ? (s as LinkSender).prepare(segs.map((seg) => encodeIPv4({ src, dst, protocol: IPPROTO_TCP }, seg)), link.mac) : (s as RawTcpSocket).prepare(segs, dst);
  // (the start is taken before the parent hears of it: what it starts then is after the start)
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  process.stdout.write(JSON.stringify({ sending: true }) + '\n');
  let sent = 0;
  let short = 0;
  // Bounded by the count and by the deadline (checked every call, ≤ 256 SYNs); every 16 calls the
  // loop yields to the event loop, where a signal can stop it.
  for (let calls = 1; sent < count && !stop && performance.now() < deadline; calls++) {
    const at = sent % batch.length;
    const k = Math.min(256, count - sent, batch.length - at);
    const n = s.sendBatch(batch, at, k);
    if (n < k) short++;
    sent += n;
    if (calls % 16 === 0) await new Promise<void>((r) => setImmediate(r));
  }
  const t1 = performance.now();
  const cpu = process.cpuUsage(cpu0);
  s.close();
  const secs = (t1 - t0) / 1000;
  // start/end on the wall clock (the parent compares them with the server's event times); the CPU
  // per SYN includes the receiving namespace's kernel work (veth delivers in the sender's softirq)
  const wall = (t: number) => Math.round(performance.timeOrigin + t);
  const cpuUs = (cpu.user + cpu.system) / Math.max(1, sent);
  process.stdout.write(JSON.stringify({ sent, short, stopped: stop, seconds: secs, rate: Math.round(sent / secs), start: wall(t0), end: wall(t1), cpuUsPerSyn: Math.round(cpuUs * 100) / 100 }) + '\n');
}
