import { UsageError } from '../../errors.js';
import { parseIntFlag } from '../../util/duration.js';
import { defineCommand, EXIT } from '../command.js';

function parseTarget(text: string): { host: string; port: number } {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(text);
  if (!m) throw new UsageError(`'${text}' is not HOST:PORT (IPv6 as [ADDR]:PORT)`);
  return { host: m[1]!, port: parseIntFlag(m[2]!, 'port', 1, 65535) };
}

export const clientCommand = defineCommand({
  name: 'client',
  usage: ['client HOST:PORT [--interval DUR] [--timeout DUR] [--count N] [--source-port N] [-o text|json]'],
  about: `The client side of the reproducer: the seed's 'while true; do nc -w 3 HOST PORT; sleep 1; done',
built in and bounded. Each attempt connects, reads until the connection has been idle for
--timeout, closes, and reports:
  ok       closed normally (by us after idle, or by the server)
  reset    the connection was reset (ECONNRESET)
  timeout  the connection could not be established within --timeout
  refused  nothing listens there
  error    anything else (unreachable, …)
with timings. Run it inside the NATed namespace/container whose host you suspect.`,
  flags: {
    interval: { type: 'duration', default: 1000, help: 'pause between attempts' },
    timeout: { type: 'duration', default: 3000, help: 'connect timeout and idle timeout, like nc -w' },
    'connect-timeout': { type: 'duration', defaultText: '--timeout', help: 'connect timeout when it should differ from --timeout' },
    count: { type: 'int', default: 10, min: 1, max: 100_000, help: 'number of attempts' },
    'source-port': { type: 'int', min: 1, max: 65535, help: 'pin the source port (like nc -p)' },
  },
  more: 'Example: ctprobe client 198.51.100.2:9000 --count 5 --timeout 2s',
  exits: '0 every attempt ok, 1 some attempt was not ok',
  interruptible: true,
  async run({ flags: f, args, out, signal }) {
    if (args.length !== 1) throw new UsageError('client needs exactly one HOST:PORT (see --help)');
    const [{ runClient, summarize }, { clientEvents }] = await Promise.all([import('../../probe/client.js'), import('../../report/events.js')]);
    const line = out.lines(clientEvents);
    const o = { ...parseTarget(args[0]!), intervalMs: f.interval, timeoutMs: f.timeout, count: f.count, connectTimeoutMs: f.connectTimeout, localPort: f.sourcePort };
    const results = await runClient(o, (r) => line({ type: 'attempt', ts: Date.now(), ...r }), signal);
    const s = summarize(results);
    line({ type: 'client-summary', ts: Date.now(), ...s });
    return s.ok === s.attempts ? EXIT.ok : EXIT.finding;
  },
});
