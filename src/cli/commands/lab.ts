import { UsageError } from '../../errors.js';
import { runLab, preflight, type LabProgress } from '../../lab/runner.js';
import { cleanLeftovers, labNamespaces, liveRuns, runOfNamespace } from '../../lab/state.js';
import { MITIGATIONS, type Mitigation } from '../../lab/topology.js';
import { oowScenario } from '../../lab/oow.js';
import { HALF_CLOSE_MITIGATIONS, halfCloseScenario, portReuseScenario, type HalfCloseMitigation } from '../../lab/halfclose.js';
import { labJson, labText } from '../../report/matrix.js';
import { formatMs, parseIntFlag } from '../../util/duration.js';
import { OUTPUT_FLAG, outputFormat, parseFlags, type Command } from '../command.js';

const help = `Usage: ctprobe lab [oow-rst] [--offset N]... [--mitigation none,drop-input,drop-forward,be-liberal]
       ctprobe lab half-close-leak [--mitigation none,close-wait-long,idle-timeout,drop-invalid,be-liberal]
       ctprobe lab port-reuse
                   [--no-control] [--concurrency 10] [--keep] [--capture DIR] [-o text|json]
       ctprobe lab clean      remove what a killed run left (namespaces ctp-lab-*, state, the root sysctl)
       ctprobe lab list       scenarios, and lab namespaces present now

Reproduces Docker libnetwork #1090 / Kubernetes #74839 on this machine, with no Docker or
Kubernetes: per cell, a 'container' namespace behind a 'client host' namespace (bridge,
MASQUERADE, conntrack) talks to a 'server' namespace that forges one segment far outside the
client's window. Cells: each --offset × each --mitigation, plus a control where the client runs on
the client host itself (no NAT). For each cell: the verdict (reset / clean / timeout), what this
kernel's profile expects, the kernel's own invalid-packet log lines, the conntrack invalid count
and the time taken. A cell that differs from the expectation is reported loudly: it is a finding.

half-close-leak: an app behind an Envoy-like sidecar proxy (ctprobe proxy on 15001, nat OUTPUT
REDIRECT excluding uid 1337) talks to an upstream that closes first; close_wait is 2 s in the app
namespace and the app closes 3 s after EOF, so its FIN is INVALID and never reaches the proxy: the
proxy's FIN-WAIT-2 + CLOSE-WAIT pair leaks (verdict leak / clean / reclaimed). port-reuse: the app
then reconnects from the same source port (verdict reuse-connected / reuse-timeout).

oow-rst mitigations (applied inside the client host namespace only):
  none          nothing
  drop-input    INVALID DROP in a chain jumped to from INPUT (libnetwork PR 2275 style)
  drop-forward  INVALID DROP in FORWARD (kube-proxy style) — too late for packets to the host itself
  be-liberal    net.netfilter.nf_conntrack_tcp_be_liberal=1

Flags:
  --offset N        sequence offset of the forged segment; repeatable (default +100000 and -100000)
  --mitigation L    comma-separated list (default all four)
  --no-control      skip the non-NATed control cells
  --concurrency N   cells run at the same time (default 10)
  --keep            leave the topology up and print commands to explore it
  --capture DIR     write each cell's capture of the NAT/app host (tcpdump -i any), its kernel log
                    lines, and DIR/index.json; replay them with 'ctprobe explain'
  -o text|json      a matrix for people (default) or one JSON document

Everything is created in namespaces named ctp-lab-<run>-…, removed on success, failure, Ctrl-C
and SIGTERM. The root namespace's firewall is never touched; its nf_log_all_netns sysctl is set
to 1 while the lab runs (so the kernel logs why packets are INVALID) and restored afterwards.

half-close-leak mitigations: close-wait-long (close_wait 60 s), idle-timeout (proxy idle 5 s),
drop-invalid (INVALID DROP in OUTPUT/INPUT), be-liberal.

Exit codes: 0 every cell matches its expectation, 1 some cell does not, 2 the lab cannot run.
Needs root, iproute2, iptables and conntrack (apt-get install -y iproute2 iptables conntrack).
`;

function parseOffsets(v: string[] | undefined): number[] {
  if (!v?.length) return [100000, -100000];
  return v.flatMap((s) => s.split(',')).map((s) => parseIntFlag(s, '--offset', -(2 ** 31), 2 ** 31 - 1));
}

function parseMitigations<T extends string>(v: string | undefined, all: readonly T[]): T[] {
  if (!v) return [...all];
  const list = v.split(',').map((s) => s.trim()).filter(Boolean);
  for (const m of list) if (!all.includes(m as T)) throw new UsageError(`--mitigation: '${m}' is not one of ${all.join(', ')}`);
  return list as T[];
}

const SCENARIOS = [
  { name: 'oow-rst', what: 'out-of-window segment → INVALID → RST through a NAT host (Docker 1090 / Kubernetes 74839)' },
  { name: 'half-close-leak', what: 'half-closed connection leak through an Envoy-like TCP proxy (Istio 43297)' },
  { name: 'port-reuse', what: 'the leaked proxy socket meets a reused source port (Istio 43301): connect timeout or not' },
];

function progress(ev: LabProgress): void {
  if (ev.type === 'start') process.stderr.write(`lab run ${ev.run}: ${ev.cells} cells on kernel ${ev.kernel} (profile ${ev.profile})\n`);
  else {
    const c = ev.cell;
    process.stderr.write(`  [${ev.done}/${ev.total}] ${c.id.padEnd(26)} ${c.verdict.padEnd(15)} ${c.match ? 'as expected' : `EXPECTED ${c.expected}`}  ${formatMs(c.ms)}\n`);
  }
}

export const labCommand: Command = {
  name: 'lab',
  summary: 'reproduce the failures and prove the fixes in network namespaces (verdict matrix)',
  help,
  async run(argv) {
    const { values, positionals } = parseFlags(argv, {
      offset: { type: 'string', multiple: true },
      mitigation: { type: 'string' },
      'no-control': { type: 'boolean' },
      concurrency: { type: 'string' },
      keep: { type: 'boolean' },
      capture: { type: 'string' },
      ...OUTPUT_FLAG,
    });
    const fmt = outputFormat(values.output);
    const sub = positionals[0] ?? 'oow-rst';
    if (positionals.length > 1) throw new UsageError(`lab takes one scenario or subcommand (got ${positionals.join(' ')})`);
    if (sub === 'clean') {
      preflight();
      const r = cleanLeftovers();
      if (fmt === 'json') process.stdout.write(JSON.stringify(r) + '\n');
      else {
        process.stdout.write(r.removed.length ? `removed ${r.removed.length}: ${r.removed.join(' ')}\n` : 'nothing to clean\n');
        if (r.skippedLive.length) process.stdout.write(`left ${r.skippedLive.length} namespace(s) of a lab run still in progress\n`);
        if (r.restoredLogAllNetns !== null) process.stdout.write(`restored net.netfilter.nf_log_all_netns=${r.restoredLogAllNetns}\n`);
      }
      return 0;
    }
    if (sub === 'list') {
      const ns = labNamespaces();
      const live = new Set(liveRuns().map((s) => s.run));
      const scenarios = SCENARIOS;
      if (fmt === 'json') process.stdout.write(JSON.stringify({ scenarios, namespaces: ns.map((n) => ({ name: n, live: live.has(runOfNamespace(n) ?? '') })) }) + '\n');
      else {
        process.stdout.write('scenarios:\n' + scenarios.map((s) => `  ${s.name.padEnd(16)} ${s.what}`).join('\n') + '\n');
        process.stdout.write(ns.length ? `lab namespaces now:\n${ns.map((n) => `  ${n}${live.has(runOfNamespace(n) ?? '') ? '' : '  (leftover: ctprobe lab clean)'}`).join('\n')}\n` : 'no lab namespaces now\n');
      }
      return 0;
    }
    if (!SCENARIOS.some((s) => s.name === sub)) throw new UsageError(`unknown lab scenario '${sub}' (try: ${SCENARIOS.map((s) => s.name).join(', ')}, clean, list)`);
    if (sub !== 'oow-rst' && (values.offset || values['no-control'])) throw new UsageError('--offset and --no-control apply to oow-rst only');
    const scenario =
      sub === 'oow-rst'
        ? oowScenario(parseOffsets(values.offset), parseMitigations<Mitigation>(values.mitigation, MITIGATIONS), !values['no-control'])
        : sub === 'half-close-leak'
          ? halfCloseScenario(parseMitigations<HalfCloseMitigation>(values.mitigation, HALF_CLOSE_MITIGATIONS))
          : portReuseScenario();
    const report = await runLab({
      scenario,
      keep: Boolean(values.keep),
      captureDir: values.capture ?? null,
      concurrency: values.concurrency ? parseIntFlag(values.concurrency, '--concurrency', 1, 32) : 10,
      onProgress: fmt === 'text' || process.stderr.isTTY ? progress : undefined,
    });
    process.stdout.write((fmt === 'json' ? JSON.stringify(labJson(report), null, 2) : labText(report)) + '\n');
    return report.cells.every((c) => c.match) ? 0 : 1;
  },
};
