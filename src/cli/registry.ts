import type { Command } from './command.js';

/**
 * A command as `ctprobe --help` lists it. Its module (flag table, help, run) is imported only when
 * the command is named, and its implementation only when it runs (see README.md): `ctprobe server`
 * loads the server and nothing of the other commands.
 */
export interface CommandEntry {
  name: string;
  summary: string;
  load(): Promise<Command>;
}

/** Every subcommand, in the order `ctprobe --help` lists them: a new command is one file and one entry here. */
export const commands: readonly CommandEntry[] = [
  { name: 'lab', summary: 'reproduce the failures and prove the fixes in network namespaces (verdict matrix)', load: async () => (await import('./commands/lab.js')).labCommand },
  { name: 'explain', summary: 'replay a capture: per packet ACCEPT / IGNORE / INVALID with the kernel’s reason', load: async () => (await import('./commands/explain.js')).explainCommand },
  { name: 'audit', summary: 'read a host or pod: kernel behaviour, conntrack sysctls, INVALID handling, findings', load: async () => (await import('./commands/audit.js')).auditCommand },
  { name: 'fix', summary: 'apply / remove / show a workaround (INVALID drop chain, be_liberal), reversibly', load: async () => (await import('./commands/fix.js')).fixCommand },
  { name: 'leaks', summary: 'find half-closed sidecar-proxy socket leaks (FIN-WAIT-2 + CLOSE-WAIT, no conntrack entry)', load: async () => (await import('./commands/leaks.js')).leaksCommand },
  { name: 'invalid-log', summary: 'turn conntrack’s invalid-packet logging on/off, and watch it as structured events', load: async () => (await import('./commands/invalid-log.js')).invalidLogCommand },
  { name: 'watch', summary: 'watch a node continuously: INVALID packets and half-close leaks per namespace/pod, Prometheus metrics', load: async () => (await import('./commands/watch.js')).watchCommand },
  { name: 'collect', summary: 'a support bundle of a host or pod, to analyse elsewhere with --from', load: async () => (await import('./commands/collect.js')).collectCommand },
  { name: 'server', summary: 'the reproducer server: forge out-of-window segments, classify resets', load: async () => (await import('./commands/server.js')).serverCommand },
  { name: 'client', summary: 'the reproducer client loop (nc -w style), reports ok/reset/timeout/refused', load: async () => (await import('./commands/client.js')).clientCommand },
  { name: 'proxy', summary: 'an Envoy-TCPProxy-like transparent proxy (half-close propagation, idle timeout)', load: async () => (await import('./commands/proxy.js')).proxyCommand },
];

/** The command named `name`, loaded; null when there is none. */
export async function loadCommand(name: string): Promise<Command | null> {
  const entry = commands.find((c) => c.name === name);
  return entry ? entry.load() : null;
}
