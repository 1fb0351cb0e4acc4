import { UsageError } from '../../errors.js';
import { OutOfWindowProbe, type ProbeEvent } from '../../probe/server.js';
import { formatProbeEvent } from '../../report/events.js';
import { parseDuration, parseIntFlag } from '../../util/duration.js';
import { OUTPUT_FLAG, outputFormat, parseFlags, type Command } from '../command.js';

const help = `Usage: ctprobe server [--port 9000] [--bind ADDR] [--offset +100000] [--count 1] [--payload 9]
                      [--hold 10s] [--linger 1s] [--connections N] [--table-size N] [--exit-on-reset]
                      [-o text|json]

The out-of-window reproducer (Docker libnetwork #1090, Kubernetes #74839). Listens on --port with
a normal TCP listener and watches the same port with a raw socket. Into every connection it
accepted, right after the handshake, it forges --count PSH|ACK segments of --payload bytes at
seq = server's next seq + --offset (+ i*payload, modulo 2^32). A client behind NAT whose host's
conntrack marks such a segment (or a later one) INVALID gets reset by its own host: this server
then sees an RST the client never sent.

Per connection it reports: established, injected, fin (from the peer), reset, and a verdict:
  reset  an RST came from the peer after the handshake, up to --linger after our close completed
  clean  the connection closed and no RST came
  open   still open when the server stopped
It keeps watching after the peer's FIN: on Linux 6.1+ the NAT host's RST arrives only then.

Flags:
  --port N          TCP port to listen on and watch (default 9000)
  --bind ADDR       listen address (default 0.0.0.0; an IPv6 address selects IPv6)
  --offset N        sequence offset of the forged segments (default +100000; negative allowed)
  --count N         forged segments per connection (default 1)
  --payload N       payload bytes per forged segment (default 9)
  --hold DUR        hold accepted connections this long, then close them (default 10s)
  --linger DUR      after our close, keep listening this long for a late RST (default 1s)
  --connections N   exit after N connections have a verdict
  --exit-on-reset   exit at the first reset (exit code 3)
  --table-size N    connections tracked at once (default 65536); the oldest finished ones are
                    evicted first, and evictions are counted in the summary
  -o text|json      text lines (default) or one JSON object per event

Exit codes: 0 no reset seen, 3 a reset was seen, 2 cannot run (needs root or CAP_NET_RAW).
SIGINT/SIGTERM print the summary and exit.

Example (server host):  ctprobe server --port 9000 --offset +100000
         (client side):  ctprobe client SERVER:9000 --count 10
`;

export const serverCommand: Command = {
  name: 'server',
  summary: 'the reproducer server: forge out-of-window segments, classify resets',
  help,
  async run(argv) {
    const { values, positionals } = parseFlags(argv, {
      port: { type: 'string' },
      bind: { type: 'string' },
      offset: { type: 'string' },
      count: { type: 'string' },
      payload: { type: 'string' },
      hold: { type: 'string' },
      linger: { type: 'string' },
      connections: { type: 'string' },
      'table-size': { type: 'string' },
      'exit-on-reset': { type: 'boolean' },
      ...OUTPUT_FLAG,
    });
    if (positionals.length) throw new UsageError(`server takes no arguments (got '${positionals[0]}'); see --help`);
    const fmt = outputFormat(values.output);
    const probe = new OutOfWindowProbe({
      port: values.port ? parseIntFlag(values.port, '--port', 1, 65535) : 9000,
      bind: values.bind ?? '0.0.0.0',
      offset: values.offset ? parseIntFlag(values.offset, '--offset', -(2 ** 31), 2 ** 31 - 1) : 100000,
      count: values.count ? parseIntFlag(values.count, '--count', 1, 1000) : 1,
      payload: values.payload ? parseIntFlag(values.payload, '--payload', 1, 1400) : 9,
      holdMs: values.hold ? parseDuration(values.hold, '--hold') : 10_000,
      lingerMs: values.linger ? parseDuration(values.linger, '--linger') : 1000,
      maxConnections: values['table-size'] ? parseIntFlag(values['table-size'], '--table-size', 1, 10_000_000) : 65536,
    });
    const limit = values.connections ? parseIntFlag(values.connections, '--connections', 1) : Infinity;
    let sawReset = false;
    probe.on('event', (e: ProbeEvent) => {
      if (e.event === 'reset') sawReset = true;
      process.stdout.write(formatProbeEvent(e, fmt) + '\n');
    });
    await probe.start();
    return new Promise<number>((resolve) => {
      const stop = () => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        probe.stop();
        resolve(sawReset ? 3 : 0);
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
      probe.on('verdict', (_key: string, verdict: string) => {
        if ((verdict === 'reset' && values['exit-on-reset']) || probe.finished >= limit) stop();
      });
    });
  },
};
