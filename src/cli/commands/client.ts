import { UsageError } from '../../errors.js';
import { runClient, summarize } from '../../probe/client.js';
import { formatAttempt, formatClientSummary } from '../../report/events.js';
import { parseDuration, parseIntFlag } from '../../util/duration.js';
import { OUTPUT_FLAG, outputFormat, parseFlags, type Command } from '../command.js';

const help = `Usage: ctprobe client HOST:PORT [--interval 1s] [--timeout 3s] [--connect-timeout DUR] [--count 10] [--source-port N] [-o text|json]

The client side of the reproducer: the seed's 'while true; do nc -w 3 HOST PORT; sleep 1; done',
built in and bounded. Each attempt connects, reads until the connection has been idle for
--timeout, closes, and reports:
  ok       closed normally (by us after idle, or by the server)
  reset    the connection was reset (ECONNRESET)
  timeout  the connection could not be established within --timeout
  refused  nothing listens there
  error    anything else (unreachable, …)
with timings. Run it inside the NATed namespace/container whose host you suspect.

Flags:
  --interval DUR    pause between attempts (default 1s)
  --timeout DUR     connect timeout and idle timeout, like nc -w (default 3s)
  --connect-timeout DUR  connect timeout when it should differ from --timeout
  --count N         number of attempts (default 10; at most 100000)
  --source-port N   pin the source port (like nc -p)
  -o text|json      text lines (default) or one JSON object per attempt

Exit codes: 0 every attempt ok, 1 some attempt was not ok, 2 usage error.
Example: ctprobe client 198.51.100.2:9000 --count 5 --timeout 2s
`;

function parseTarget(text: string): { host: string; port: number } {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(text);
  if (!m) throw new UsageError(`'${text}' is not HOST:PORT (IPv6 as [ADDR]:PORT)`);
  return { host: m[1]!, port: parseIntFlag(m[2]!, 'port', 1, 65535) };
}

export const clientCommand: Command = {
  name: 'client',
  summary: 'the reproducer client loop (nc -w style), reports ok/reset/timeout/refused',
  help,
  async run(argv) {
    const { values, positionals } = parseFlags(argv, {
      interval: { type: 'string' },
      timeout: { type: 'string' },
      'connect-timeout': { type: 'string' },
      count: { type: 'string' },
      'source-port': { type: 'string' },
      ...OUTPUT_FLAG,
    });
    if (positionals.length !== 1) throw new UsageError('client needs exactly one HOST:PORT (see --help)');
    const fmt = outputFormat(values.output);
    const target = parseTarget(positionals[0]!);
    const ac = new AbortController();
    const onSig = () => ac.abort();
    process.once('SIGINT', onSig);
    process.once('SIGTERM', onSig);
    const results = await runClient(
      {
        ...target,
        intervalMs: values.interval ? parseDuration(values.interval, '--interval') : 1000,
        timeoutMs: values.timeout ? parseDuration(values.timeout, '--timeout') : 3000,
        ...(values['connect-timeout'] ? { connectTimeoutMs: parseDuration(values['connect-timeout'], '--connect-timeout') } : {}),
        count: values.count ? parseIntFlag(values.count, '--count', 1, 100_000) : 10,
        ...(values['source-port'] ? { localPort: parseIntFlag(values['source-port'], '--source-port', 1, 65535) } : {}),
      },
      (r) => process.stdout.write(formatAttempt(r, fmt) + '\n'),
      ac.signal,
    );
    process.off('SIGINT', onSig);
    process.off('SIGTERM', onSig);
    const s = summarize(results);
    process.stdout.write(formatClientSummary(s, fmt) + '\n');
    return s.ok === s.attempts ? 0 : 1;
  },
};
