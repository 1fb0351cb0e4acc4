/**
 * Raw-socket benchmark peers, run inside the bench's namespaces:
 *   node rawsock-peer.js recv PORT SECONDS      count segments to PORT (BPF-filtered) for SECONDS
 *   node rawsock-peer.js send SRC DST PORT COUNT SECONDS   send COUNT ACK segments to DST:PORT, bounded by SECONDS
 *   node rawsock-peer.js syn SRC DST PORT COUNT SECONDS LO HI   a SYN flood: COUNT SYNs to DST:PORT from source
 *                                                   ports LO..HI in turn (a new half-open entry each), bounded by SECONDS
 * Both print one JSON line.
 */
import { parseIP } from '../packet/address.js';
import { encodeTcp, TCP_ACK, TCP_SYN } from '../packet/tcp.js';
import { RawTcpSocket } from '../rawsock/index.js';

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
  const s = RawTcpSocket.open({ port: 1 });
  // One SYN per source port, built once: the loop only sends.
  const segs: Uint8Array[] = [];
  for (let p = lo; p <= hi; p++) segs.push(encodeTcp({ srcPort: p, dstPort: port, seq: (p * 7919) >>> 0, ack: 0, flags: TCP_SYN, window: 64240 }, src, dst));
  const t0 = performance.now();
  let sent = 0;
  let errors = 0;
  for (; sent < count && (sent & 1023 || performance.now() < deadline); sent++) {
    try {
      s.send(segs[sent % segs.length]!, dst);
    } catch {
      errors++;
    }
  }
  const secs = (performance.now() - t0) / 1000;
  s.close();
  process.stdout.write(JSON.stringify({ sent, errors, seconds: secs, rate: Math.round(sent / secs) }) + '\n');
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
