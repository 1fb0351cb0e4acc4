import { UsageError } from '../../errors.js';
import { DEFAULT_PROXY_OPTIONS as D } from '../../proxy/proxy.js';
import { defineCommand, EXIT } from '../command.js';

export const proxyCommand = defineCommand({
  name: 'proxy',
  usage: ['proxy [--port N] [--bind ADDR] [--idle-timeout DUR] [-o text|json]'],
  about: `A transparent TCP proxy that behaves like Envoy's TCPProxy in a service-mesh sidecar: it accepts
connections an iptables REDIRECT sent to --port, finds their original destination
(SO_ORIGINAL_DST), connects there and pipes both ways. A FIN from one side becomes a half-close
(shutdown(SHUT_WR)) on the other; the pair closes when both sides ended, or after --idle-timeout
with no data (Envoy's idle_timeout, 1h by default). Used by 'ctprobe lab half-close-leak' to
reproduce the half-closed connection leak; run it yourself to experiment.`,
  flags: {
    port: { type: 'int', default: D.port, min: 1, max: 65535, help: 'listen port' },
    bind: { type: 'string', arg: 'ADDR', default: D.bind, help: 'listen address' },
    'idle-timeout': { type: 'duration', default: D.idleTimeoutMs, help: 'close a pair after this long without data' },
  },
  more: `Send the traffic to it from the same network namespace, excluding the proxy's own uid, e.g.:
  iptables -t nat -A OUTPUT -p tcp -d 203.0.113.2 -m owner ! --uid-owner 1337 -j REDIRECT --to-ports 15001
  setpriv --reuid=1337 --regid=1337 --clear-groups ctprobe proxy --idle-timeout 30s`,
  exits: '0 stopped by SIGINT/SIGTERM',
  interruptible: true,
  async run({ flags: f, args, out, signal }) {
    if (args.length) throw new UsageError(`proxy takes no arguments (got '${args[0]}')`);
    const [{ TransparentProxy }, { proxyEvents }] = await Promise.all([import('../../proxy/proxy.js'), import('../../report/events.js')]);
    const proxy = new TransparentProxy({ port: f.port, bind: f.bind, idleTimeoutMs: f.idleTimeout });
    proxy.on('event', out.lines(proxyEvents));
    await proxy.start();
    await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
    proxy.stop();
    return EXIT.ok;
  },
});
