import { UsageError } from '../../errors.js';
import type { ServerEvent } from '../../events.js';
import { DEFAULT_SERVER_OPTIONS as D } from '../../probe/defaults.js';
import { defineCommand, EXIT } from '../command.js';

export const serverCommand = defineCommand({
  name: 'server',
  usage: ['server [--port N] [--bind ADDR] [--offset N] [--count N] [--hold DUR] [--connections N] [-o text|json]'],
  about: `The out-of-window reproducer (Docker libnetwork #1090, Kubernetes #74839). Listens on --port with
a normal TCP listener and watches the same port with a raw socket. Into every connection it
accepted, right after the handshake, it forges --count PSH|ACK segments of --payload bytes at
seq = server's next seq + --offset (+ i*payload, modulo 2^32). A client behind NAT whose host's
conntrack marks such a segment (or a later one) INVALID gets reset by its own host: this server
then sees an RST the client never sent.

Per connection it reports: established, injected, fin (from the peer), reset, and a verdict:
  reset  an RST came from the peer after the handshake, up to --linger after our close completed
  clean  the connection closed and no RST came
  open   still open when the server stopped
It keeps watching after the peer's FIN: on Linux 6.1+ the NAT host's RST arrives only then.`,
  flags: {
    port: { type: 'int', default: D.port, min: 1, max: 65535, help: 'TCP port to listen on and watch' },
    bind: { type: 'string', arg: 'ADDR', default: D.bind, help: 'listen address; an IPv6 address selects IPv6' },
    offset: { type: 'int', default: D.offset, defaultText: `+${D.offset}`, min: -(2 ** 31), max: 2 ** 31 - 1, help: 'sequence offset of the forged segments (negative allowed)' },
    count: { type: 'int', default: D.count, min: 1, max: 1000, help: 'forged segments per connection' },
    payload: { type: 'int', default: D.payload, min: 1, max: 1400, help: 'payload bytes per forged segment' },
    hold: { type: 'duration', default: D.holdMs, help: 'hold accepted connections this long, then close them' },
    linger: { type: 'duration', default: D.lingerMs, help: 'after our close, keep listening this long for a late RST' },
    connections: { type: 'int', min: 1, help: 'exit after N connections have a verdict' },
    'exit-on-reset': { type: 'boolean', help: 'exit at the first reset (exit code 3)' },
    'table-size': { type: 'int', default: D.maxConnections, min: 1, max: 10_000_000, help: 'connections tracked at once; finished ones are evicted first, evictions are counted' },
  },
  more: `SIGINT/SIGTERM print the summary and exit.
Example (server host):  ctprobe server --port 9000 --offset +100000
         (client side):  ctprobe client SERVER:9000 --count 10`,
  exits: '0 no reset seen, 3 a reset was seen',
  interruptible: true,
  async run({ flags: f, args, out, signal }) {
    if (args.length) throw new UsageError(`server takes no arguments (got '${args[0]}'); see --help`);
    const [{ OutOfWindowProbe }, { serverEvents }] = await Promise.all([import('../../probe/server.js'), import('../../report/events.js')]);
    const probe = new OutOfWindowProbe({ port: f.port, bind: f.bind, offset: f.offset, count: f.count, payload: f.payload, holdMs: f.hold, lingerMs: f.linger, maxConnections: f.tableSize });
    const line = out.lines(serverEvents);
    let sawReset = false;
    probe.on('event', (e: ServerEvent) => {
      if (e.type === 'reset') sawReset = true;
      line(e);
    });
    await probe.start();
    await new Promise<void>((resolve) => {
      const stop = () => resolve();
      signal.addEventListener('abort', stop, { once: true });
      probe.on('verdict', (_key: string, verdict: string) => {
        if ((verdict === 'reset' && f.exitOnReset) || probe.finished >= (f.connections ?? Infinity)) stop();
      });
    });
    probe.stop();
    return sawReset ? EXIT.resetSeen : EXIT.ok;
  },
});
