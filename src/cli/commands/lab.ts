import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { fileError, UsageError } from '../../errors.js';
import { explainCapture } from '../../conntrack/explain.js';
import { profileForRelease } from '../../conntrack/profile.js';
import { cellParties, cellSysctls } from '../../lab/replay.js';
import type { LabReport } from '../../lab/runner.js';
import { FlowTracker } from '../../report/flows.js';
import { parseParty, type Party } from '../../report/sequence.js';
import { explainHtml, labReportHtml, type LabCellLinks } from '../../report/html.js';
import type { Output } from '../../report/output.js';
import { preflight, runLab } from '../../lab/runner.js';
import { SCENARIOS, scenarioByName } from '../../lab/scenarios.js';
import { cleanLeftovers, labNamespaces, liveRuns, runOfNamespace } from '../../lab/state.js';
import { labClean, labList, labProgressLine, labRun } from '../../report/matrix.js';
import { defineCommand, EXIT } from '../command.js';

const mitigationHelp = SCENARIOS.filter((s) => Object.keys(s.mitigations).length)
  .map((s) => `${s.name} mitigations (applied inside the lab's namespaces only):\n${Object.entries(s.mitigations).map(([m, what]) => `  ${m.padEnd(16)}${what}`).join('\n')}`)
  .join('\n\n');

function makeDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw fileError(dir, e);
  }
}

function writeOut(path: string, content: string): void {
  try {
    writeFileSync(path, content);
  } catch (e) {
    throw fileError(path, e);
  }
}

/** --report: each cell's capture replayed into a page of diagrams, and the index linking them. */
async function writeLabReport(dir: string, r: LabReport, out: Output): Promise<void> {
  const profile = profileForRelease(r.kernel);
  const links: LabCellLinks[] = [];
  for (const cell of r.cells) {
    if (!cell.capture) {
      links.push({ cell, diagram: null, log: null, capture: null });
      continue;
    }
    const tracker = new FlowTracker(600, 20);
    let t0: number | null = null;
    const summary = await explainCapture(cell.capture, {
      profile,
      sysctls: cellSysctls(cell),
      onPacket: (p) => {
        t0 ??= p.tsSec;
        tracker.add(p);
      },
    });
    const page = cell.capture.replace(/\.pcap$/, '.html');
    const flows = tracker.order.slice(0, 20);
    writeOut(page, explainHtml({ file: `${basename(cell.capture)} (lab cell ${cell.id})`, kernel: r.kernel, profile: profile.id, profileLabel: profile.label, summary, flows, time: 'relative', t0: t0 ?? 0, flowsOmitted: tracker.order.length - flows.length, kernelLog: cell.invalidLog, parties: cellParties(cell)?.map(parseParty).filter((p): p is Party => p !== null) }));
    links.push({ cell, diagram: relative(dir, page), log: relative(dir, cell.capture.replace(/\.pcap$/, '.log')), capture: relative(dir, cell.capture) });
  }
  const index = join(dir, 'index.html');
  writeOut(index, labReportHtml(r, links));
  out.progress(`report: ${index} (${links.filter((l) => l.diagram).length} cells with diagrams, kernel log lines and captures)`);
}

export const labCommand = defineCommand({
  name: 'lab',
  summary: 'reproduce the failures and prove the fixes in network namespaces (verdict matrix)',
  usage: [
    `lab [${SCENARIOS.map((s) => s.name).join('|')}] [--offset N]... [--mitigation L] [--capture DIR] [-o text|json]`,
    'lab clean      remove what a killed run left (namespaces ctp-lab-*, state, the root sysctl)',
    'lab list       scenarios, and lab namespaces present now',
  ],
  about: `Reproduces the failures on this machine, with no Docker or Kubernetes, in network namespaces.
${SCENARIOS.map((s) => `  ${s.name.padEnd(16)} ${s.what}`).join('\n')}
oow-rst: per cell, a 'container' namespace behind a 'client host' namespace (bridge, MASQUERADE,
conntrack) talks to a 'server' namespace that forges one segment far outside the client's window;
cells are each --offset × each --mitigation, plus a control without NAT. half-close-leak: an app
behind an Envoy-like sidecar (ctprobe proxy on 15001, REDIRECT excluding uid 1337) talks to an
upstream that closes first; the app's late FIN is INVALID and never reaches the proxy.
For each cell: the verdict, what this kernel's profile expects, the kernel's own invalid-packet log
lines, the conntrack invalid count and the time taken. A cell that differs from the expectation is
reported loudly: it is a finding.

${mitigationHelp}

Everything is created in namespaces named ctp-lab-<run>-…, removed on success, failure, Ctrl-C
and SIGTERM. The root namespace's firewall is never touched; its nf_log_all_netns sysctl is set
to 1 while the lab runs (so the kernel logs why packets are INVALID) and restored afterwards.
Needs root, iproute2, iptables and conntrack.`,
  flags: {
    offset: { type: 'int', multiple: true, min: -(2 ** 31), max: 2 ** 31 - 1, defaultText: '+100000 and -100000', help: 'oow-rst: sequence offset of the forged segment; repeatable' },
    mitigation: { type: 'string', arg: 'L', defaultText: 'all of the scenario', help: 'comma-separated mitigations (see above)' },
    'no-control': { type: 'boolean', help: 'oow-rst: skip the non-NATed control cells' },
    concurrency: { type: 'int', default: 10, min: 1, max: 32, help: 'cells run at the same time' },
    keep: { type: 'boolean', help: 'leave the topology up and print commands to explore it' },
    capture: { type: 'string', arg: 'DIR', help: "write each cell's capture of the NAT/app host (tcpdump -i any), its kernel log lines and DIR/index.json; replay them with 'ctprobe explain'" },
    report: { type: 'string', arg: 'DIR', help: "write DIR/index.html: the verdict matrix, each cell linking to its sequence diagrams, kernel log lines and capture (captures in DIR/cells unless --capture)" },
  },
  exits: '0 every cell matches its expectation, 1 some cell does not (a finding)',
  interruptible: true,
  async run({ flags: f, args, out }) {
    if (args.length > 1) throw new UsageError(`lab takes one scenario or subcommand (got ${args.join(' ')})`);
    const sub = args[0] ?? 'oow-rst';
    if (sub === 'clean') {
      preflight();
      out.result(labClean, cleanLeftovers());
      return EXIT.ok;
    }
    if (sub === 'list') {
      const live = new Set(liveRuns().map((s) => s.run));
      const scenarios = SCENARIOS.map((s) => ({ name: s.name, what: s.what, mitigations: Object.keys(s.mitigations) }));
      out.result(labList, { scenarios, namespaces: labNamespaces().map((n) => ({ name: n, live: live.has(runOfNamespace(n) ?? '') })) });
      return EXIT.ok;
    }
    const entry = scenarioByName(sub);
    if (!entry) throw new UsageError(`unknown lab scenario '${sub}' (try: ${SCENARIOS.map((s) => s.name).join(', ')}, clean, list)`);
    if (!entry.offsets && (f.offset.length || f.noControl)) throw new UsageError(`--offset and --no-control do not apply to ${sub}`);
    const mitigations = f.mitigation?.split(',').map((m) => m.trim()).filter(Boolean) ?? null;
    for (const m of mitigations ?? [])
      if (!(m in entry.mitigations)) throw new UsageError(`--mitigation: '${m}' is not one of ${Object.keys(entry.mitigations).join(', ') || `(${sub} has none)`}`);
    const scenario = entry.build({ offsets: f.offset.length ? f.offset : [100000, -100000], mitigations, control: !f.noControl });
    if (f.report) makeDir(f.report);
    const captureDir = f.capture ?? (f.report ? join(f.report, 'cells') : null);
    const report = await runLab({ scenario, keep: f.keep, captureDir, concurrency: f.concurrency, onProgress: (ev) => out.progress(labProgressLine(ev)) });
    out.result(labRun, report);
    if (f.report) await writeLabReport(f.report, report, out);
    return report.cells.every((c) => c.match) ? EXIT.ok : EXIT.finding;
  },
});
