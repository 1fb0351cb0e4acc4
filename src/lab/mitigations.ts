/**
 * Every lab scenario's mitigations, by name, with what each does: plain data with no dependencies
 * but types, so the CLI's help and its validation read them without loading the lab itself (a
 * `ctprobe server` or `ctprobe client` the lab spawns per cell loads none of this). The modules
 * that apply them re-export them.
 */
import type { K8sRules } from './expect.js';
import type { KubeProxyVersion } from './kubeproxy.js';
import { TIME_SCALE } from './timing.js';

/** oow-rst, namespace engine: the NAT host's rule or sysctl under test. */
export type Mitigation = 'none' | 'drop-input' | 'drop-forward' | 'be-liberal';
export const MITIGATIONS: Mitigation[] = ['none', 'drop-input', 'drop-forward', 'be-liberal'];
export const MITIGATION_HELP: Readonly<Record<Mitigation, string>> = {
  none: 'nothing',
  'drop-input': 'INVALID DROP in a chain jumped to from INPUT (libnetwork PR 2275 style)',
  'drop-forward': 'INVALID DROP in FORWARD (kube-proxy style): too late for packets to the host itself',
  'be-liberal': 'net.netfilter.nf_conntrack_tcp_be_liberal=1',
};

/** oow-rst --engine docker: applied the way a Docker user does, after dockerd wrote its rules. */
export type DockerMitigation = 'none' | 'drop-input' | 'docker-user' | 'be-liberal';
export const DOCKER_MITIGATIONS: DockerMitigation[] = ['none', 'drop-input', 'docker-user', 'be-liberal'];
export const DOCKER_MITIGATION_HELP: Readonly<Record<DockerMitigation, string>> = {
  none: "Docker's own rules only",
  'drop-input': 'iptables -I INPUT -m conntrack --ctstate INVALID -j DROP (libnetwork PR 2275)',
  // DOCKER-USER is where Docker says user rules go; it hangs off FORWARD, and the INVALID reply is addressed to the host itself (INPUT).
  'docker-user': "the same DROP in DOCKER-USER (Docker's user chain): FORWARD only, no help",
  'be-liberal': 'net.netfilter.nf_conntrack_tcp_be_liberal=1 in the host namespace',
};

/** half-close-leak. */
export type HalfCloseMitigation = 'none' | 'close-wait-long' | 'idle-timeout' | 'drop-invalid' | 'be-liberal';
export const HALF_CLOSE_MITIGATIONS: HalfCloseMitigation[] = ['none', 'close-wait-long', 'idle-timeout', 'drop-invalid', 'be-liberal'];

/**
 * The proxy's short idle timeout: it must outlive the app's close delay plus the time the lab takes
 * to see the leak (seconds in an emulated guest), or the leak is reclaimed before it is seen.
 */
export const SHORT_IDLE_MS = 4500 * TIME_SCALE;

export const HC_MITIGATION_HELP: Readonly<Record<HalfCloseMitigation, string>> = {
  none: 'nothing',
  'close-wait-long': 'nf_conntrack_tcp_timeout_close_wait=60 (outlives the app’s close delay)',
  'idle-timeout': `the proxy's idle timeout is ${SHORT_IDLE_MS / 1000}s (Envoy's default is 1h)`,
  'drop-invalid': 'INVALID DROP in OUTPUT and INPUT',
  'be-liberal': 'net.netfilter.nf_conntrack_tcp_be_liberal=1',
};

/** k8s-service: the cells' columns. */
interface K8sMitigationSpec {
  help: string;
  /** The kube-proxy this cell models. */
  models: string;
  mode: 'iptables' | 'nftables';
  version: KubeProxyVersion | null;
  rules: K8sRules;
}

/** The cells' columns: which kube-proxy (version, mode) and which node settings each models. */
export const K8S_MITIGATIONS = {
  none: {
    help: 'kube-proxy iptables mode before PR 74840: KUBE-FORWARD has no INVALID drop',
    models: 'kube-proxy v1.13 (iptables)',
    mode: 'iptables', version: 'v1.13', rules: { beLiberal: false, forwardDrop: false, inputDrop: false },
  },
  'kube-forward': {
    help: "PR 74840's '-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP' (v1.15–v1.28)",
    models: 'kube-proxy v1.15 (iptables, PR 74840)',
    mode: 'iptables', version: 'v1.15', rules: { beLiberal: false, forwardDrop: true, inputDrop: false },
  },
  'kube-forward-1.29': {
    help: 'v1.29+ rules (KUBE-EXT-…); the INVALID drop written because be_liberal is 0 (PR 120412)',
    models: 'kube-proxy v1.29+ (iptables, be_liberal off at start)',
    mode: 'iptables', version: 'v1.29', rules: { beLiberal: false, forwardDrop: true, inputDrop: false },
  },
  'liberal-skip': {
    help: 'v1.29+ rules with nf_conntrack_tcp_be_liberal=1: kube-proxy skips the INVALID drop',
    models: 'kube-proxy v1.29+ (iptables, be_liberal on at start)',
    mode: 'iptables', version: 'v1.29', rules: { beLiberal: true, forwardDrop: false, inputDrop: false },
  },
  nftables: {
    help: "kube-proxy nftables mode (v1.30+): 'ct state invalid drop' in chain forward (PR 122663)",
    models: 'kube-proxy v1.30+ (nftables)',
    mode: 'nftables', version: null, rules: { beLiberal: false, forwardDrop: true, inputDrop: false },
  },
  'be-liberal': {
    help: 'v1.13 rules (no drop) + net.netfilter.nf_conntrack_tcp_be_liberal=1 on the nodes',
    models: 'kube-proxy v1.13 (iptables) + be_liberal',
    mode: 'iptables', version: 'v1.13', rules: { beLiberal: true, forwardDrop: false, inputDrop: false },
  },
  'drop-input': {
    help: 'v1.13 rules + an INVALID drop reached from INPUT only (the Docker 1090 fix)',
    models: 'kube-proxy v1.13 (iptables) + INPUT drop',
    mode: 'iptables', version: 'v1.13', rules: { beLiberal: false, forwardDrop: false, inputDrop: true },
  },
} as const satisfies Record<string, K8sMitigationSpec>;

export type K8sMitigation = keyof typeof K8S_MITIGATIONS;
export const K8S_MITIGATION_NAMES = Object.keys(K8S_MITIGATIONS) as K8sMitigation[];
export const K8S_MITIGATION_HELP: Readonly<Record<string, string>> = Object.fromEntries(K8S_MITIGATION_NAMES.map((m) => [m, K8S_MITIGATIONS[m].help]));
