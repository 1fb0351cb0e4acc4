/**
 * src/rawsock across a veth pair: a batch laid out once and sent with sendmmsg (whole, in slices,
 * across the 1,024-message limit of one call) arrives complete and in order at a reader that reads
 * with recvmmsg in batches, trimmed to its snaplen; IPv6 readers get each segment's sender from
 * recvmmsg; the wake-up coalescing reader loses nothing; whole IPv4 packets from a LinkSender
 * (AF_PACKET) arrive the same way; bad slices and a batch on the wrong kind of socket are usage
 * errors.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { collect, isRoot, NetnsPair, ROOT, sh } from './netns.js';

const DIST = `${ROOT}dist/`;

/**
 * A reader in `ns` of segments to `port`: prints {ready} once its socket is open, starts reading on
 * SIGUSR1 (so the whole batch is queued: the reads are full batches), prints its result once `want`
 * came or `ms` passed.
 */
function reader(pair: NetnsPair, ns: string, opts: { family: 4 | 6; port: number; snaplen: number; batch: number; coalesceMs?: number }, want: number, ms: number) {
  const script = `
    const { RawTcpSocket } = await import('${DIST}rawsock/index.js');
    const { ipv6ToString } = await import('${DIST}packet/address.js');
    const s = RawTcpSocket.open(${JSON.stringify(opts)});
    const seqs = [], lens = [], froms = new Set();
    const done = () => {
      s.close();
      console.log(JSON.stringify({ received: s.received, reads: s.reads, seqs, lens: [...new Set(lens)], froms: [...froms] }));
      process.exit(0);
    };
    process.on('SIGUSR1', () => s.onPacket((p) => {
      const t = p.family === 4 ? (p.data[0] & 15) * 4 : 0;
      seqs.push(new DataView(p.data.buffer, p.data.byteOffset, p.data.length).getUint32(t + 4));
      lens.push(p.data.length);
      if (p.from) froms.add(ipv6ToString(p.from));
      if (seqs.length === ${want}) done();
    }));
    setTimeout(done, ${ms});
    console.log(JSON.stringify({ ready: true }));
  `;
  const p = pair.spawnIn(ns, process.execPath, ['--input-type=module', '-e', script]);
  const ready = new Promise<void>((resolve) => {
    let out = '';
    p.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('"ready"')) resolve();
    });
  });
  return { ready, start: () => p.kill('SIGUSR1'), result: collect(p) };
}

/**
 * A sender in `ns`: prepares `n` segments (seq 0…n-1, `payload` bytes each) and sends them in
 * `slices`, from a raw IP socket, or as whole IPv4 packets from a LinkSender on `link` (to `mac`).
 */
function sender(pair: NetnsPair, ns: string, family: 4 | 6, src: string, dst: string, port: number, n: number, payload: number, slices: Array<[number, number]>, link: { ifname: string; mac: string } | null) {
  const script = `
    const { LinkSender, RawTcpSocket } = await import('${DIST}rawsock/index.js');
    const { parseIP } = await import('${DIST}packet/address.js');
    const { encodeIPv4 } = await import('${DIST}packet/ip.js');
    const { encodeTcp, TCP_ACK } = await import('${DIST}packet/tcp.js');
    const src = parseIP('${src}'), dst = parseIP('${dst}');
    const segs = Array.from({ length: ${n} }, (_, i) => encodeTcp({ srcPort: 40000, dstPort: ${port}, seq: i, ack: 1, flags: TCP_ACK, window: 100, payload: new Uint8Array(${payload}) }, src, dst));
    const link = ${JSON.stringify(link)};
    const s = link ? LinkSender.open(link.ifname) : RawTcpSocket.open({ family: ${family}, port: 1 });
    const batch = link
      ? s.prepare(segs.map((seg) => encodeIPv4({ src, dst, protocol: 6 }, seg)), Uint8Array.from(link.mac.split(':').map((h) => parseInt(h, 16))))
      : s.prepare(segs, dst);
    const sent = ${JSON.stringify(slices)}.map(([a, k]) => s.sendBatch(batch, a, k));
    const errors = [];
    for (const bad of [() => s.sendBatch(batch, ${n} - 1, 2), () => s.sendBatch(batch, -1, 1), () => s.sendBatch(batch, 0.5, 1)]) {
      try { bad(); errors.push('none'); } catch (e) { errors.push(e.constructor.name); }
    }
    const other = RawTcpSocket.open({ family: ${family === 4 ? 6 : 4}, port: 1 });
    try { other.sendBatch(batch); errors.push('none'); } catch (e) { errors.push(e.constructor.name); }
    other.close();
    s.close();
    console.log(JSON.stringify({ length: batch.length, sent, errors }));
  `;
  return collect(pair.spawnIn(ns, process.execPath, ['--input-type=module', '-e', script]));
}

/** b knows a's link address for good: no segment waits on (or is dropped by) ARP/ND. Returns it. */
function resolveNeighbor(pair: NetnsPair): string {
  const links = JSON.parse(sh(`ip -n ${pair.a} -j link show`)) as Array<{ link_type: string; address: string }>;
  const mac = links.find((l) => l.link_type === 'ether')!.address;
  sh(`ip -n ${pair.b} neigh replace ${pair.addrA} lladdr ${mac} dev ${pair.vethB} nud permanent`);
  return mac;
}

const last = (out: string) => JSON.parse(out.trim().split('\n').pop()!) as Record<string, unknown>;

describe.skipIf(!isRoot)('raw sockets: sendmmsg batches, recvmmsg reads', () => {
  const pairs: NetnsPair[] = [];
  afterAll(() => pairs.forEach((p) => p.cleanup()));

  it.each([
    { family: 4 as const, a: '198.51.100.1', b: '198.51.100.2', coalesceMs: 0, link: false },
    { family: 4 as const, a: '198.51.100.1', b: '198.51.100.2', coalesceMs: 1, link: false },
    { family: 6 as const, a: '2001:db8:7::1', b: '2001:db8:7::2', coalesceMs: 0, link: false },
    { family: 4 as const, a: '198.51.100.1', b: '198.51.100.2', coalesceMs: 0, link: true },
  ])('IPv$family, coalesce $coalesceMs ms, link sender $link: every segment of the batch, in order, trimmed to snaplen', async ({ family, a, b, coalesceMs, link }) => {
    const pair = new NetnsPair('ctp-rawsock', a, b);
    pairs.push(pair);
    const mac = resolveNeighbor(pair);
    const n = 3000;
    const payload = 40; // IPv4: 20 + 20 + 40 = 80 bytes, kept: 64; IPv6 (TCP only): 60, kept: 48
    const snaplen = family === 4 ? 64 : 48;
    const r = reader(pair, pair.a, { family, port: 9911, snaplen, batch: 32, coalesceMs }, n, 15_000);
    await r.ready;
    // whole-batch and sliced sends; one slice of 2,000 crosses sendmmsg's 1,024-message limit
    const s = await sender(pair, pair.b, family, b, a, 9911, n, payload, [
      [0, 1],
      [1, 999],
      [1000, 2000],
    ], link ? { ifname: pair.vethB, mac } : null);
    expect(s.code, s.err).toBe(0);
    expect(last(s.out)).toEqual({ length: n, sent: [1, 999, 2000], errors: ['UsageError', 'UsageError', 'UsageError', 'UsageError'] });
    r.start();
    const got = await r.result;
    expect(got.code, got.err).toBe(0);
    const res = last(got.out) as { received: number; reads: number; seqs: number[]; lens: number[]; froms: string[] };
    expect(res.received).toBe(n);
    expect(res.seqs).toEqual(Array.from({ length: n }, (_, i) => i));
    expect(res.lens).toEqual([snaplen]);
    // all queued before the first read: full batches of 32 (the last one short), whether one
    // wake-up reads them all or stops at its bound (64 batches) and the next reads the rest
    expect(res.reads).toBe(Math.ceil(n / 32));
    expect(res.froms).toEqual(family === 6 ? [b] : []);
  }, 60_000);
});
