import { join, resolve } from 'node:path';
import { UsageError } from '../../errors.js';
import { DOCKER_MITIGATION_HELP } from '../../lab/mitigations.js';
import { SCENARIOS, scenarioByName } from '../../lab/scenarios.js';
import { defineCommand, EXIT } from '../command.js';

const dockerHelp = `oow-rst --engine docker mitigations (applied as a Docker user does, after dockerd wrote its rules):\n${Object.entries(DOCKER_MITIGATION_HELP).map(([m, what]) => `  ${m.padEnd(16)}${what}`).join('\n')}`;

const mitigationWidth = Math.max(16, ...SCENARIOS.flatMap((s) => Object.keys(s.mitigations).map((m) => m.length + 2)));
const mitigationHelp = SCENARIOS.filter((s) => Object.keys(s.mitigations).length)
  .map((s) => `${s.name} mitigations (applied inside the lab's namespaces only):\n${Object.entries(s.mitigations).map(([m, what]) => `  ${m.padEnd(mitigationWidth)}${what}`).join('\n')}`)
  .join('\n\n');

export const labCommand = defineCommand({
  name: 'lab',
  usage: [
    `lab [${SCENARIOS.map((s) => s.name).join('|')}] [--offset N]... [--mitigation L] [--family 4|6|both] [--capture DIR] [-o text|json]`,
    'lab [SCENARIO] --kernel 5.10|6.1|6.12|VERSION   the lab in a qemu guest on that Debian kernel',
    'lab [SCENARIO] --kernel-image VMLINUZ [--kernel-modules DIR]',
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
k8s-service: two 'nodes' with a pod bridge each, routed to each other, both running the rules
kube-proxy writes (per column: which version and mode) for a Service whose endpoint is a server
pod on node B; a client pod on node A connects through the ClusterIP and through node A's
NodePort. Who sent the RST (the client pod or its node) is read from a capture on node A.
For each cell: the verdict, what this kernel's profile expects, the kernel's own invalid-packet log
lines, the conntrack invalid count and the time taken. A cell that differs from the expectation is
reported loudly: it is a finding.

${mitigationHelp}

${dockerHelp}

Everything is created in namespaces named ctp-lab-<run>-…, removed on success, failure, Ctrl-C
and SIGTERM. The root namespace's firewall is never touched; its nf_log_all_netns sysctl is set
to 1 while the lab runs (so the kernel logs why packets are INVALID) and restored afterwards.
Needs root, iproute2, iptables and conntrack; --engine docker also docker.io and busybox-static.
With --engine docker each cell's dockerd (data root, exec root, socket, pidfile under
/run/ctprobe/docker/<run>-<cell>, cgroup parent /ctp-lab-<run>-<cell>) and everything it made —
containers, the imported client image, containerd, mounts, cgroups — is removed on every path
too, and by 'lab clean' after a SIGKILL. The JSON names the engine and its version.

--kernel REL runs the same lab on another kernel: the Debian package (5.10 from bullseye, 6.1 and
6.12 from bookworm, or an exact ABI name / package version) is fetched with apt into
$XDG_CACHE_HOME/ctprobe/kernels (~/.cache/ctprobe/kernels) and booted in qemu with this host's /
shared read-only (a tmpfs on top), so the guest runs this ctprobe. KVM is used when it can boot a
stock kernel, else software emulation (slow: 10–30 s per cell); cells run one at a time.
Progress (kernel, boot, cells) goes to stderr; the result names the kernel and how it ran. Needs
qemu-system-x86, busybox-static, kmod and apt. Ctrl-C stops the guest; nothing is left behind.`,
  flags: {
    offset: { type: 'int', multiple: true, min: -(2 ** 31), max: 2 ** 31 - 1, defaultText: '+100000 and -100000', help: 'oow-rst: sequence offset of the forged segment; repeatable' },
    mitigation: { type: 'string', arg: 'L', defaultText: 'all of the scenario', help: 'comma-separated mitigations (see above)' },
    'no-control': { type: 'boolean', help: 'oow-rst: skip the non-NATed control cells' },
    engine: { type: 'choice', arg: 'E', choices: ['netns', 'docker'], default: 'netns', help: "oow-rst: what the client host is: 'netns' (ctprobe's own bridge and MASQUERADE) or 'docker' (a real dockerd per cell, Debian's docker.io, the client a container on docker0, Docker's own rules; plus a single-node swarm task)" },
    'no-swarm': { type: 'boolean', help: '--engine docker: skip the swarm task cells' },
    family: { type: 'string', arg: '4|6|both', default: '4', help: `IP family of the cells (${SCENARIOS.filter((s) => s.families).map((s) => s.name).join(', ')}); IPv6 uses 2001:db8::/32` },
    concurrency: { type: 'int', min: 1, max: 32, defaultText: '10; 4 with --engine docker', help: 'cells run at the same time' },
    keep: { type: 'boolean', help: 'leave the topology up and print commands to explore it' },
    kernel: { type: 'string', arg: 'REL', help: 'run in a qemu guest on this Debian kernel: 5.10, 6.1, 6.12, an ABI name (6.1.0-56) or a version (6.1.158-1)' },
    'kernel-image': { type: 'string', arg: 'PATH', help: 'run in a qemu guest on this vmlinuz (its modules: --kernel-modules, or /lib/modules/RELEASE)' },
    'kernel-modules': { type: 'string', arg: 'DIR', help: 'with --kernel-image: the lib/modules/RELEASE directory of that kernel' },
    capture: { type: 'string', arg: 'DIR', help: "write each cell's capture of the NAT/app host (tcpdump -i any), its kernel log lines and DIR/index.json; replay them with 'ctprobe explain'" },
    report: { type: 'string', arg: 'DIR', help: "write DIR/index.html: the verdict matrix, each cell linking to its sequence diagrams, kernel log lines and capture (captures in DIR/cells unless --capture)" },
  },
  exits: '0 every cell matches its expectation, 1 some cell does not (a finding)',
  interruptible: true,
  async run({ flags: f, args, out }) {
    if (args.length > 1) throw new UsageError(`lab takes one scenario or subcommand (got ${args.join(' ')})`);
    const sub = args[0] ?? 'oow-rst';
    const [{ preflight, runLab }, { cleanLeftovers, labNamespaces, liveRuns, runOfNamespace }, { labClean, labList, labProgressLine, labRun }] = await Promise.all([
      import('../../lab/runner.js'),
      import('../../lab/state.js'),
      import('../../report/matrix.js'),
    ]);
    if (sub === 'clean') {
      preflight();
      out.result(labClean, await cleanLeftovers());
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
    const engine = entry.engines[f.engine];
    if (!engine) throw new UsageError(`--engine ${f.engine} does not run ${sub} (it runs: oow-rst)`);
    if (f.noSwarm && f.engine !== 'docker') throw new UsageError('--no-swarm applies to --engine docker only');
    const families = ({ '4': [4], '6': [6], both: [4, 6] } as const)[f.family as '4' | '6' | 'both'];
    if (!families) throw new UsageError(`--family: '${f.family}' is not 4, 6 or both`);
    if (!entry.families && f.family !== '4') throw new UsageError(`--family does not apply to ${sub} (IPv4 only)`);
    if (f.engine !== 'netns' && f.family !== '4') throw new UsageError(`--family ${f.family} does not apply to --engine ${f.engine} (IPv4 only)`);
    const mitigations = f.mitigation?.split(',').map((m) => m.trim()).filter(Boolean) ?? null;
    for (const m of mitigations ?? [])
      if (!(m in engine.mitigations)) throw new UsageError(`--mitigation: '${m}' is not one of ${Object.keys(engine.mitigations).join(', ') || `(${sub} has none)`}${f.engine === 'netns' ? '' : ` (engine ${f.engine})`}`);
    const offsets = f.offset.length ? f.offset : [100000, -100000];
    if (f.kernel && f.kernelImage) throw new UsageError('--kernel and --kernel-image: give one');
    if (f.kernelModules && !f.kernelImage) throw new UsageError('--kernel-modules goes with --kernel-image');
    if (f.report) (await import('../../report/files.js')).makeDir(f.report);
    const captureDir = f.capture ?? (f.report ? join(f.report, 'cells') : null);
    let report;
    if (f.kernel || f.kernelImage) {
      if (f.keep) throw new UsageError('--keep does not apply to a guest run (the guest is thrown away)');
      if (f.engine !== 'netns') throw new UsageError(`--engine ${f.engine} does not run in a kernel guest (namespaces only)`);
      const { runLabInGuest } = await import('../../lab/engines/guest.js');
      report = await runLabInGuest({
        spec: { scenario: sub, offsets, mitigations, control: !f.noControl, families: [...families], captureDir: captureDir ? resolve(captureDir) : null },
        kernel: f.kernel ? { release: f.kernel } : { image: resolve(f.kernelImage!), modules: f.kernelModules ? resolve(f.kernelModules) : null },
        onProgress: (ev) => out.progress(labProgressLine(ev)),
      });
    } else {
      preflight();
      const scenario = await entry.build({ offsets, mitigations, control: !f.noControl, engine: f.engine, swarm: !f.noSwarm, families: [...families] });
      report = await runLab({ scenario, keep: f.keep, captureDir, concurrency: f.concurrency ?? engine.concurrency, onProgress: (ev) => out.progress(labProgressLine(ev)) });
    }
    out.result(labRun, report);
    if (f.report) await (await import('../lab-report.js')).writeLabReport(f.report, report, out);
    return report.cells.every((c) => c.match) ? EXIT.ok : EXIT.finding;
  },
});
