import { UsageError } from '../../errors.js';
import { TransparentProxy, type ProxyEvent } from '../../proxy/proxy.js';
import { parseDuration, parseIntFlag } from '../../util/duration.js';
import { OUTPUT_FLAG, outputFormat, parseFlags, type Command } from '../command.js';

const help = `Usage: ctprobe proxy [--port 15001] [--bind ADDR] [--idle-timeout 1h] [-o text|json]

A transparent TCP proxy that behaves like Envoy's TCPProxy in a service-mesh sidecar: it accepts
connections an iptables REDIRECT sent to --port, finds their original destination
(SO_ORIGINAL_DST), connects there and pipes both ways. A FIN from one side becomes a half-close
(shutdown(SHUT_WR)) on the other; the pair closes when both sides ended, or after --idle-timeout
with no data (Envoy's idle_timeout, 1h by default). Used by 'ctprobe lab half-close-leak' to
reproduce the half-closed connection leak; run it yourself to experiment.

Send the traffic to it from the same network namespace, excluding the proxy's own uid, e.g.:
  iptables -t nat -A OUTPUT -p tcp -d 203.0.113.2 -m owner ! --uid-owner 1337 -j REDIRECT --to-ports 15001
  setpriv --reuid=1337 --regid=1337 --clear-groups ctprobe proxy --idle-timeout 30s

Flags:
  --port N            listen port (default 15001)
  --bind ADDR         listen address (default 0.0.0.0)
  --idle-timeout DUR  close a pair after this long without data (default 1h)
  -o text|json        event lines for people (default) or JSON lines

Exit codes: 0 stopped by SIGINT/SIGTERM, 2 cannot run.
`;

function text(e: ProxyEvent): string {
  const t = new Date(e.ts).toISOString().slice(11, 23);
  switch (e.event) {
    case 'listening':
      return `${t} proxy listening on :${e.port}, idle timeout ${e.idleTimeoutMs} ms`;
    case 'accepted':
      return `${t} #${e.id} ${e.app} → ${e.upstream}`;
    case 'half-close':
      return `${t} #${e.id} FIN from ${e.from}, half-closing the other side`;
    case 'idle-timeout':
      return `${t} #${e.id} idle for ${e.idleMs} ms: closing`;
    case 'closed':
      return `${t} #${e.id} closed (${e.reason}) after ${e.ms} ms`;
    case 'error':
      return `${t} #${e.id} ${e.side} error: ${e.message}`;
  }
}

export const proxyCommand: Command = {
  name: 'proxy',
  summary: 'an Envoy-TCPProxy-like transparent proxy (half-close propagation, idle timeout)',
  help,
  async run(argv) {
    const { values, positionals } = parseFlags(argv, { port: { type: 'string' }, bind: { type: 'string' }, 'idle-timeout': { type: 'string' }, ...OUTPUT_FLAG });
    if (positionals.length) throw new UsageError(`proxy takes no arguments (got '${positionals[0]}')`);
    const fmt = outputFormat(values.output);
    const proxy = new TransparentProxy({
      port: values.port ? parseIntFlag(values.port, '--port', 1, 65535) : 15001,
      bind: values.bind ?? '0.0.0.0',
      idleTimeoutMs: values['idle-timeout'] ? parseDuration(values['idle-timeout'], '--idle-timeout') : 3_600_000,
    });
    proxy.on('event', (e: ProxyEvent) => process.stdout.write((fmt === 'json' ? JSON.stringify(e) : text(e)) + '\n'));
    await proxy.start();
    return new Promise<number>((resolve) => {
      const stop = () => {
        proxy.stop();
        resolve(0);
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
  },
};
