/**
 * `lab oow-rst --engine docker`: the client host of each cell is a real dockerd in the cell's
 * host namespace; the client is a real container on docker0 behind Docker's own MASQUERADE and
 * filter chains (or a swarm task behind docker_gwbridge); the server is a namespace on the host's
 * uplink. The mitigations are applied the way a Docker user applies them, after dockerd wrote
 * its rules: a rule in DOCKER-USER (Docker's place for user rules, jumped to from FORWARD), the
 * INVALID drop in INPUT, be_liberal. Expectations come from the same model as the namespace lab.
 *
 *   container 192.0.2.2 ─ docker0 192.0.2.1 [dockerd's netns] uplink 198.51.100.1 ─ server 198.51.100.2
 */
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { decodeEvent, type WireEvent } from '../events.js';
import { requireTool, run } from '../host/exec.js';
import { writeSysctlsIn } from '../host/sysctl.js';
import { clientRootfs, clientRunArgs, docker, dockerdPaths, importClientImage, removeDockerd, startDockerd, CLIENT_IMAGE } from './docker.js';
import { jsonLines, liveChildren } from './spawn.js';
import type { CellHost, CellSpec, OowEngine } from './oow.js';
import { ADDR, cellNamespaces, type Mitigation } from './topology.js';

export { DOCKER_MITIGATIONS, DOCKER_MITIGATION_HELP, type DockerMitigation } from './mitigations.js';
import type { DockerMitigation } from './mitigations.js';
/** Which namespace-lab mitigation each is, for the model's expectation. */
const MODEL: Record<DockerMitigation, Mitigation> = { none: 'none', 'drop-input': 'drop-input', 'docker-user': 'drop-forward', 'be-liberal': 'be-liberal' };

/** The rule each mitigation inserts once dockerd has written its chains (a user's `iptables -I`). */
function mitigationRule(m: DockerMitigation): string[] | null {
  const drop = ['-m', 'conntrack', '--ctstate', 'INVALID', '-m', 'comment', '--comment', 'ctprobe-lab', '-j', 'DROP'];
  if (m === 'drop-input') return ['-I', 'INPUT', ...drop];
  if (m === 'docker-user') return ['-I', 'DOCKER-USER', ...drop];
  return null;
}

const sign = (o: number) => (o >= 0 ? `+${o}` : `${o}`);

/**
 * Cells: per offset, each mitigation with the client on docker0, the control (a `--network host`
 * container: the same dockerd, no NAT) and, with `swarm`, a single-node swarm's task.
 */
export function buildDockerCells(offsets: number[], mitigations: DockerMitigation[], control: boolean, swarm: boolean, basePort = 9100): CellSpec[] {
  const cells: CellSpec[] = [];
  const add = (c: Omit<CellSpec, 'index' | 'port' | 'family'>) => cells.push({ ...c, index: cells.length, port: basePort + cells.length, family: 4 });
  for (const offset of offsets) {
    for (const m of mitigations) add({ id: `docker/${m}/${sign(offset)}`, offset, mitigation: m, model: MODEL[m], natted: true });
    if (swarm) add({ id: `swarm/none/${sign(offset)}`, offset, mitigation: 'none', model: 'none', natted: true, via: 'swarm' });
    if (control) add({ id: `control/${sign(offset)}`, offset, mitigation: 'none', model: 'none', natted: false });
  }
  return cells;
}

/** Start `ctprobe client` in a container; its stdout (relayed by the docker client) carries the events. */
function containerClient(p: ReturnType<typeof dockerdPaths>, name: string, network: string[], args: string[], onEvent: (e: WireEvent) => void) {
  const c = spawn(requireTool('docker'), ['-H', `unix://${p.sock}`, ...clientRunArgs(name, network, args)], { stdio: ['ignore', 'pipe', 'pipe'] });
  liveChildren.add(c);
  c.on('close', () => liveChildren.delete(c));
  return { done: jsonLines(c, onEvent), kill: () => void docker(p, ['kill', name]).catch(() => null) };
}

/**
 * The swarm cell's client: a replicated-job service on an overlay network; the task reaches the
 * server through docker_gwbridge (Docker's MASQUERADE for it). Its events are read from the
 * service's logs once the task has finished.
 */
async function swarmClient(p: ReturnType<typeof dockerdPaths>, name: string, args: string[], onEvent: (e: WireEvent) => void) {
  const mounts = clientRunArgs(name, [], args);
  const image = mounts.indexOf(CLIENT_IMAGE);
  const mountFlags = mounts.slice(0, image).filter((a, i, all) => all[i - 1] === '--mount').flatMap((m) => ['--mount', m]);
  await docker(p, ['service', 'create', '--detach', '--name', name, '--mode', 'replicated-job', '--network', 'ctp-overlay', '--restart-condition', 'none', '--no-resolve-image', ...mountFlags, ...mounts.slice(image)]);
  let stopped = false;
  const done = (async () => {
    for (let i = 0; i < 600 && !stopped; i++) {
      const st = await docker(p, ['service', 'ps', '--format', '{{.CurrentState}}', name], 15_000).catch(() => null);
      if (st && /^(Complete|Failed|Rejected|Shutdown)/m.test(st.stdout)) break;
      await sleep(200);
    }
    const logs = await docker(p, ['service', 'logs', '--raw', name], 15_000).catch(() => null);
    for (const l of logs?.stdout.split('\n') ?? []) {
      const e = decodeEvent(l);
      if (e) onEvent(e);
    }
  })();
  return { done, kill: () => (stopped = true) };
}

export function dockerEngine(): OowEngine {
  let rootfs: Promise<string> | null = null;
  return {
    // dockerd and a container start take seconds on a loaded 2-core machine.
    timing: { cellTimeoutMs: 90_000 },
    host(cell, ctx): CellHost {
      const ns = cellNamespaces(ctx.runId, cell.index);
      const p = dockerdPaths(ctx.runId, cell.index);
      const name = `${ns.host.replace(/-h$/, '')}-client`;
      return {
        namespaces: [ns.host, ns.server],
        hostNs: ns.host,
        serverNs: ns.server,
        // docker0 and vethXXX carry Docker's names; the uplink's is the run's and the cell's.
        ifaces: [ns.uplink],
        addresses: [ADDR.hostUplink, ADDR.server],
        async setUp() {
          ctx.trackDaemon(p);
          await run('ip', ['-batch', '-'], { input: `netns add ${ns.host}\nnetns add ${ns.server}\n` });
          await run('ip', ['link', 'add', 'eth0', 'netns', ns.server, 'type', 'veth', 'peer', 'name', ns.uplink, 'netns', ns.host]);
          await Promise.all([
            run('ip', ['-n', ns.server, '-batch', '-'], { input: ['link set lo up', 'link set eth0 up', `addr add ${ADDR.server}/24 dev eth0`].join('\n') + '\n' }),
            run('ip', ['-n', ns.host, '-batch', '-'], { input: ['link set lo up', `link set ${ns.uplink} up`, `addr add ${ADDR.hostUplink}/24 dev ${ns.uplink}`].join('\n') + '\n' }),
          ]);
          await writeSysctlsIn(ns.host, { nf_conntrack_log_invalid: 6, nf_conntrack_tcp_be_liberal: cell.mitigation === 'be-liberal' ? 1 : 0 });
          rootfs ??= clientRootfs(ctx.runId);
          const tarball = await rootfs;
          // The swarm cell keeps 192.0.2.128/25 for docker_gwbridge; overlays come from 203.0.113.0/24.
          await startDockerd(ns.host, p, ['--bip', cell.via === 'swarm' ? `${ADDR.bridge}/25` : `${ADDR.bridge}/24`]);
          await importClientImage(p, tarball);
          const rule = mitigationRule(cell.mitigation as DockerMitigation);
          if (rule) await run('iptables', rule, { netns: ns.host });
          if (cell.via === 'swarm') {
            // docker_gwbridge made first, so it takes addresses from the documentation range.
            await docker(p, ['network', 'create', '--subnet', '192.0.2.128/25', '--gateway', '192.0.2.129',
              '-o', 'com.docker.network.bridge.name=docker_gwbridge', '-o', 'com.docker.network.bridge.enable_icc=false',
              '-o', 'com.docker.network.bridge.enable_ip_masquerade=true', 'docker_gwbridge']);
            await docker(p, ['swarm', 'init', '--advertise-addr', ADDR.hostUplink, '--listen-addr', `${ADDR.hostUplink}:2377`,
              '--default-addr-pool', '203.0.113.0/24', '--default-addr-pool-mask-length', '26']);
            await docker(p, ['network', 'create', '-d', 'overlay', 'ctp-overlay']);
          }
        },
        client(args, onEvent) {
          if (cell.via === 'swarm') return swarmClient(p, name, args, onEvent);
          return Promise.resolve(containerClient(p, name, cell.natted ? [] : ['--network', 'host'], args, onEvent));
        },
        tearDown: () => removeDockerd(p),
        details: () => ({ container: name }),
      };
    },
  };
}
