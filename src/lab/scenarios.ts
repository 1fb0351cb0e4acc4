/**
 * Every lab scenario, once: its name, what it shows, its mitigations (with what each does) and how
 * to build it. `lab --help`, `lab list` and the CLI's validation all read this table; it loads
 * only the mitigations' data (mitigations.ts), and a builder loads its scenario when it runs.
 */
import type { Family } from './k8s.js';
import {
  DOCKER_MITIGATION_HELP, DOCKER_MITIGATIONS, HALF_CLOSE_MITIGATIONS, HC_MITIGATION_HELP, K8S_MITIGATION_HELP, K8S_MITIGATION_NAMES, MITIGATION_HELP, MITIGATIONS,
  type DockerMitigation, type HalfCloseMitigation, type K8sMitigation, type Mitigation,
} from './mitigations.js';
import type { Scenario } from './scenario.js';

export type EngineName = 'netns' | 'docker';

export interface ScenarioOptions {
  offsets: number[];
  mitigations: string[] | null;
  control: boolean;
  engine: EngineName;
  /** docker: add the single-node swarm task's cell. */
  swarm: boolean;
  /** --family: IP families to run cells over. */
  families: Family[];
}

export interface EngineEntry {
  /** Mitigation name → what it does on this engine. */
  mitigations: Readonly<Record<string, string>>;
  /** Cells run at the same time by default. */
  concurrency: number;
}

export interface ScenarioEntry {
  name: string;
  what: string;
  /** Mitigation name → what it does (empty: the scenario has no --mitigation). */
  mitigations: Readonly<Record<string, string>>;
  /** Engines besides the namespace lab ('netns', always) that can run it, with their mitigations. */
  engines: Partial<Record<EngineName, EngineEntry>>;
  /** Takes --offset / --no-control. */
  offsets: boolean;
  /** Takes --family (runs over IPv6 too). */
  families: boolean;
  build(o: ScenarioOptions): Promise<Scenario>;
}

export const SCENARIOS: readonly ScenarioEntry[] = [
  {
    name: 'oow-rst',
    what: 'out-of-window segment → INVALID → RST through a NAT host (Docker 1090 / Kubernetes 74839)',
    mitigations: MITIGATION_HELP,
    // Measured here (2 cores): 12 docker cells take about the same wall time 4 or 12 at a time.
    engines: { netns: { mitigations: MITIGATION_HELP, concurrency: 10 }, docker: { mitigations: DOCKER_MITIGATION_HELP, concurrency: 4 } },
    offsets: true,
    families: true,
    build: async (o) => {
      const { oowScenario, oowScenarioOn } = await import('./oow.js');
      if (o.engine === 'netns') return oowScenario(o.offsets, (o.mitigations ?? MITIGATIONS) as Mitigation[], o.control, {}, o.families);
      const [{ dockerPreflight, dockerVersion }, { buildDockerCells, dockerEngine }] = await Promise.all([import('./docker.js'), import('./oow-docker.js')]);
      dockerPreflight();
      const cells = buildDockerCells(o.offsets, (o.mitigations ?? DOCKER_MITIGATIONS) as DockerMitigation[], o.control, o.swarm);
      return { ...oowScenarioOn(dockerEngine(), cells), engine: { name: 'docker', version: dockerVersion() } };
    },
  },
  {
    name: 'half-close-leak',
    what: 'half-closed connection leak through an Envoy-like TCP proxy (Istio 43297)',
    mitigations: HC_MITIGATION_HELP,
    engines: { netns: { mitigations: HC_MITIGATION_HELP, concurrency: 10 } },
    offsets: false,
    families: false,
    build: async (o) => (await import('./halfclose.js')).halfCloseScenario((o.mitigations ?? HALF_CLOSE_MITIGATIONS) as HalfCloseMitigation[]),
  },
  {
    name: 'port-reuse',
    what: 'the leaked proxy socket meets a reused source port (Istio 43301): connect timeout or not',
    mitigations: {},
    engines: { netns: { mitigations: {}, concurrency: 10 } },
    offsets: false,
    families: false,
    build: async () => (await import('./halfclose.js')).portReuseScenario(),
  },
  {
    name: 'k8s-service',
    what: 'Kubernetes 74839: ClusterIP / NodePort with kube-proxy’s rules on two nodes; who resets, which kube-proxy protects',
    mitigations: K8S_MITIGATION_HELP,
    engines: { netns: { mitigations: K8S_MITIGATION_HELP, concurrency: 10 } },
    offsets: false,
    families: true,
    build: async (o) => (await import('./k8s.js')).k8sScenario(o.families, (o.mitigations ?? K8S_MITIGATION_NAMES) as K8sMitigation[]),
  },
];

export function scenarioByName(name: string): ScenarioEntry | undefined {
  return SCENARIOS.find((s) => s.name === name);
}
