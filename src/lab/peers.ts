/**
 * The half-close lab's two peers, run inside the lab's namespaces as
 *   node dist/lab/peers.js upstream PORT CLOSE_AFTER_MS
 *   node dist/lab/peers.js app HOST PORT SOURCE_PORT CLOSE_DELAY_MS REUSE(0|1) CONNECT_TIMEOUT_MS
 * Each prints JSON lines. Not a user command: the lab's own test fixtures, kept real (TCP sockets
 * in namespaces) and small.
 *
 * upstream: answers every connection with one line, then closes first (FIN) after CLOSE_AFTER_MS —
 *           the seed's `nc -l` service that actively closes.
 * app:      connects from SOURCE_PORT, reads until EOF, waits CLOSE_DELAY_MS (longer than the
 *           conntrack CLOSE_WAIT timeout in the lab), closes; with REUSE=1 it then waits for SIGUSR2
 *           (the lab has looked at the leak) and connects again from the same source port, and
 *           reports how long that took, or that it timed out.
 */
import net from 'node:net';
import { encodeEvent, type PeerEvent } from '../events.js';

type Body<E> = E extends PeerEvent ? Omit<E, 'ts'> : never;
const out = (o: Body<PeerEvent>) => process.stdout.write(encodeEvent({ ts: Date.now(), ...o } as PeerEvent) + '\n');

function upstream(port: number, closeAfterMs: number): void {
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    out({ type: 'upstream-accepted', peer: `${s.remoteAddress}:${s.remotePort}` });
    s.on('error', () => undefined);
    s.on('end', () => s.end());
    s.write('hello from upstream\n');
    setTimeout(() => {
      s.end();
      out({ type: 'upstream-fin', peer: `${s.remoteAddress}:${s.remotePort}` });
    }, closeAfterMs);
  });
  server.listen(port, () => out({ type: 'upstream-listening', port }));
  process.on('SIGTERM', () => process.exit(0));
}

function connectOnce(host: string, port: number, localPort: number, timeoutMs: number): Promise<{ s: net.Socket | null; ms: number; error: string | null }> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const s = net.connect({ host, port, localPort, allowHalfOpen: true });
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ s: null, ms: Math.round(performance.now() - t0), error: 'timeout' });
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(timer);
      resolve({ s, ms: Math.round(performance.now() - t0), error: null });
    });
    s.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve({ s: null, ms: Math.round(performance.now() - t0), error: e.code ?? e.message });
    });
  });
}

async function app(host: string, port: number, sourcePort: number, closeDelayMs: number, reuse: boolean, connectTimeoutMs: number): Promise<void> {
  // With reuse, the lab sends SIGUSR2 once it has judged the leak (bounded wait if it never does).
  const go = reuse ? new Promise<void>((resolve) => {
    const t = setTimeout(resolve, 30_000);
    process.once('SIGUSR2', () => {
      clearTimeout(t);
      resolve();
    });
  }) : Promise.resolve();
  const first = await connectOnce(host, port, sourcePort, connectTimeoutMs);
  if (!first.s) {
    out({ type: 'connect-failed', error: first.error, ms: first.ms });
    return;
  }
  const s = first.s;
  out({ type: 'connected', local: `${s.localAddress}:${s.localPort}`, ms: first.ms });
  s.on('error', (e) => out({ type: 'app-error', message: e.message }));
  s.on('data', () => undefined);
  await new Promise<void>((resolve) => s.once('end', () => resolve()));
  out({ type: 'eof' });
  await new Promise((r) => setTimeout(r, closeDelayMs));
  s.end();
  out({ type: 'app-fin' });
  // The app's socket goes when the upstream's RST (or the proxy's ACK) arrives; do not wait long.
  await new Promise((r) => setTimeout(r, 400));
  s.destroy();
  if (!reuse) return;
  await go;
  const again = await connectOnce(host, port, sourcePort, connectTimeoutMs);
  out({ type: 'reuse', result: again.s ? 'connected' : again.error, ms: again.ms });
  again.s?.destroy();
}

const [mode, ...a] = process.argv.slice(2);
if (mode === 'upstream') upstream(Number(a[0]), Number(a[1]));
else if (mode === 'app') void app(a[0]!, Number(a[1]), Number(a[2]), Number(a[3]), a[4] === '1', Number(a[5] ?? 5000));
else {
  process.stderr.write('usage: peers.js upstream PORT CLOSE_AFTER_MS | app HOST PORT SOURCE_PORT CLOSE_DELAY_MS REUSE CONNECT_TIMEOUT_MS\n');
  process.exit(2);
}
