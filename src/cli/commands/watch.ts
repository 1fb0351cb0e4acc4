import { UsageError } from '../../errors.js';
import type { WatchAgent } from '../../watch/agent.js';
import { defineCommand, EXIT, TARGET_FLAG_TABLE } from '../command.js';

export const watchCommand = defineCommand({
  name: 'watch',
  usage: ['watch [--listen ADDR:PORT] [--interval DUR] [--netns NAME | --pid PID | --pod NAME | --all-netns] [-o text|json]'],
  about: `A long-running agent (a DaemonSet on each node). Each --interval, per network namespace it
watches: conntrack's statistics (invalid, insert_failed, drop, early_drop, summed over CPUs, from
/proc/net/stat/nf_conntrack) and the half-close leak detector (FIN-WAIT-2 on --proxy-port with no
conntrack entry; see ctprobe leaks). All the time: the kernel's invalid-packet log lines
(/dev/kmsg), each attributed to the namespace that logged it and its pod (interface name and
addresses; a host-side veth names the pod at its other end; sockets when still ambiguous). A pod
is a namespace whose processes have their own UTS hostname, as --pod finds it.

Events (one line each; -o json: JSON lines with a "type"): watch-start (what it watches and what
it cannot, with the fix), invalid (the kernel's reason), counter, leak-appeared, leak-gone,
netns-appeared, netns-gone, lines-suppressed, watch-error, watch-stop.
--listen serves /metrics (Prometheus) and /healthz. Without --all-netns/--netns/--pid/--pod it
watches its own network namespace. It changes nothing on the host: to make the kernel explain
INVALID packets, see ctprobe invalid-log on.`,
  flags: {
    ...TARGET_FLAG_TABLE,
    'all-netns': { type: 'boolean', help: 'watch every network namespace on the node (needs root and the host PID namespace)' },
    listen: { type: 'string', arg: 'ADDR:PORT', help: 'serve Prometheus metrics on http://ADDR:PORT/metrics and /healthz' },
    interval: { type: 'duration', default: 10_000, help: 'how often to read statistics and look for leaks' },
    'proxy-port': { type: 'int', default: 15001, min: 1, max: 65535, help: "the sidecar proxy's inbound port, for the leak detector" },
    'max-events': { type: 'int', default: 100, min: 1, max: 100_000, help: 'invalid-packet events per second at most (the rest are counted in the metrics)' },
    'max-netns': { type: 'int', default: 512, min: 1, max: 100_000, help: 'namespaces watched at most (bounds memory and label cardinality)' },
    duration: { type: 'duration', defaultText: 'until SIGINT/SIGTERM', help: 'stop after this long' },
  },
  more: `Examples:
  ctprobe watch --all-netns --listen :9464 -o json      # the DaemonSet (deploy/kubernetes/watch-daemonset.yaml)
  ctprobe watch --pod my-pod-0 --interval 5s            # one pod, for people
  curl -s localhost:9464/metrics | grep ^ctprobe_`,
  exits: '0 stopped (--duration); 130/143 stopped by SIGINT/SIGTERM (after closing the listener)',
  interruptible: true,
  async run({ flags: f, args, out, signal }) {
    if (args.length) throw new UsageError(`watch takes no arguments (got '${args[0]}')`);
    if (f.allNetns && (f.netns || f.pid || f.pod)) throw new UsageError('--all-netns watches every namespace: it does not combine with --netns/--pid/--pod');
    if (f.interval < 100) throw new UsageError('--interval: at least 100ms');
    const [{ targetFromFlags }, { watchEvents }, { WatchAgent }, { closeServer, parseListen, serveMetrics }, { WatchMetrics }] = await Promise.all([
      import('../../host/target.js'),
      import('../../report/watch.js'),
      import('../../watch/agent.js'),
      import('../../watch/http.js'),
      import('../../watch/metrics.js'),
    ]);
    if (f.listen) parseListen(f.listen);
    const scope = f.allNetns ? ({ kind: 'all' } as const) : ({ kind: 'target', target: targetFromFlags(f) } as const);
    const metrics = new WatchMetrics();
    const untilMs = f.duration === undefined ? Infinity : Date.now() + f.duration;
    let agent: WatchAgent | null = null;
    const server = f.listen ? await serveMetrics(f.listen, metrics, () => agent?.healthy() ?? false) : null;
    const emit = out.lines(watchEvents);
    agent = new WatchAgent(
      { scope, intervalMs: f.interval, proxyPort: f.proxyPort, maxEventsPerS: f.maxEvents, maxNetns: f.maxNetns, untilMs, signal, command: `ctprobe ${process.argv.slice(2).join(' ')}`.trim(), listen: f.listen ?? null },
      metrics,
      emit,
    );
    try {
      await agent.run();
    } finally {
      if (server) await closeServer(server);
    }
    return EXIT.ok;
  },
});
