/**
 * Reading a firewall: `iptables-save` (legacy and nf_tables backends print the same format) and
 * `nft -j list ruleset`. Finds ctstate INVALID DROP rules, where they sit (table, chain, position,
 * reached from which built-in chain), and recognises kube-proxy, Docker and Istio rule shapes.
 */
import { InputError } from '../errors.js';

export interface IptRule {
  table: string;
  chain: string;
  /** 1-based position in its chain. */
  position: number;
  text: string;
  target: string | null;
  invalidMatch: boolean;
  comment: string | null;
}

export interface IptTable {
  name: string;
  chains: Map<string, { policy: string; rules: IptRule[] }>;
}

/** Parse iptables-save output. Comment lines and counters are ignored; a stray line is an InputError. */
export function parseIptablesSave(text: string): Map<string, IptTable> {
  const tables = new Map<string, IptTable>();
  let cur: IptTable | null = null;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    if (line.startsWith('*')) {
      cur = { name: line.slice(1), chains: new Map() };
      tables.set(cur.name, cur);
      return;
    }
    if (line === 'COMMIT') {
      cur = null;
      return;
    }
    if (!cur) throw new InputError(`rule outside a table: '${line.slice(0, 60)}'`, `line ${i + 1}`);
    const t: IptTable = cur;
    if (line.startsWith(':')) {
      const [name, policy] = line.slice(1).split(/\s+/);
      t.chains.set(name!, { policy: policy ?? '-', rules: [] });
      return;
    }
    const m = /^-A (\S+)\s*(.*)$/.exec(line);
    if (!m) throw new InputError(`not an iptables-save line: '${line.slice(0, 60)}'`, `line ${i + 1}`);
    const chain = t.chains.get(m[1]!) ?? { policy: '-', rules: [] };
    t.chains.set(m[1]!, chain);
    const rest = m[2]!;
    chain.rules.push({
      table: t.name,
      chain: m[1]!,
      position: chain.rules.length + 1,
      text: line,
      target: /(?:^|\s)-[jg] (\S+)/.exec(rest)?.[1] ?? null,
      invalidMatch: /--ctstate (\S*,)?INVALID\b/.test(rest) || /--state (\S*,)?INVALID\b/.test(rest),
      comment: /--comment (?:"([^"]*)"|(\S+))/.exec(rest)?.slice(1).find((x) => x !== undefined) ?? null,
    });
  });
  return tables;
}

export interface InvalidDrop {
  backend: 'iptables' | 'ip6tables' | 'nft';
  table: string;
  chain: string;
  position: number;
  /** Built-in chains (hooks) from which the rule is reached through jumps, e.g. "INPUT". */
  reachedFrom: string[];
  rule: string;
  ownedByCtprobe: boolean;
}

const BUILTIN = ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'];

/** INVALID DROP rules and the built-in chains they are reached from. */
export function iptablesInvalidDrops(tables: Map<string, IptTable>, backend: 'iptables' | 'ip6tables' = 'iptables'): InvalidDrop[] {
  const out: InvalidDrop[] = [];
  for (const t of tables.values()) {
    // Which built-in chains reach each chain (through -j/-g jumps).
    const reach = new Map<string, Set<string>>();
    for (const b of BUILTIN) if (t.chains.has(b)) reach.set(b, new Set([b]));
    for (let changed = true; changed; ) {
      changed = false;
      for (const [name, c] of t.chains) {
        const from = reach.get(name);
        if (!from) continue;
        for (const r of c.rules) {
          if (!r.target || !t.chains.has(r.target)) continue;
          const set = reach.get(r.target) ?? new Set<string>();
          const before = set.size;
          from.forEach((f) => set.add(f));
          reach.set(r.target, set);
          if (set.size !== before) changed = true;
        }
      }
    }
    for (const [name, c] of t.chains)
      for (const r of c.rules)
        if (r.invalidMatch && r.target === 'DROP')
          out.push({ backend, table: t.name, chain: name, position: r.position, reachedFrom: [...(reach.get(name) ?? [])].sort(), rule: r.text, ownedByCtprobe: r.comment === 'ctprobe' });
  }
  return out;
}

export interface Platform {
  name: 'kube-proxy' | 'docker' | 'istio';
  evidence: string[];
}

/** Recognise the rule shapes of kube-proxy, Docker and Istio. */
export function recognisePlatforms(tables: Map<string, IptTable>): Platform[] {
  const chains: string[] = [];
  const rules: IptRule[] = [];
  for (const t of tables.values())
    for (const [n, c] of t.chains) {
      chains.push(`${t.name}/${n}`);
      rules.push(...c.rules);
    }
  const found: Platform[] = [];
  const kube = kubeProxyFromIptables(tables);
  if (kube) found.push({ name: 'kube-proxy', evidence: [...kube.evidence, kube.invalidDrop ? 'KUBE-FORWARD drops ctstate INVALID (PR 74840)' : 'KUBE-FORWARD has no INVALID drop', kube.versions] });
  const docker = chains.filter((c) => /\/DOCKER(-USER|-INPUT|-ISOLATION-STAGE-\d|-FORWARD)?$/.test(c));
  if (docker.length) {
    // dockerd's MASQUERADE per bridge network: "-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE".
    const masq = rules.filter((r) => r.table === 'nat' && r.chain === 'POSTROUTING' && r.target === 'MASQUERADE' && /^-A POSTROUTING -s \S+ ! -o \S+ -j MASQUERADE$/.test(r.text));
    const userDrop = rules.some((r) => r.chain === 'DOCKER-USER' && r.invalidMatch && r.target === 'DROP');
    found.push({
      name: 'docker',
      evidence: [
        ...docker,
        ...masq.map((r) => {
          const [, net, bridge] = /-s (\S+) ! -o (\S+)/.exec(r.text)!;
          return `MASQUERADE of ${net} (not out of ${bridge})`;
        }),
        ...(userDrop ? ['DOCKER-USER drops ctstate INVALID (reached from FORWARD only)'] : []),
      ],
    });
  }
  const istio = chains.filter((c) => /\/ISTIO_/.test(c));
  const redirect = rules.filter((r) => r.target === 'REDIRECT' && /--to-ports 15001\b/.test(r.text));
  const dropInvalid = rules.filter((r) => r.chain === 'PREROUTING' && r.invalidMatch && r.target === 'DROP');
  if (istio.length || redirect.length)
    found.push({ name: 'istio', evidence: [...istio, ...redirect.map((r) => `REDIRECT to 15001 in ${r.table}/${r.chain}`), ...(dropInvalid.length ? ['PREROUTING drops INVALID (DROP_INVALID)'] : [])] });
  return found;
}

/** The objects of an `nft -j list ruleset` document; anything else is an InputError, never a crash. */
function nftObjects(json: string): Array<Record<string, any>> {
  let doc: unknown;
  try {
    doc = JSON.parse(json);
  } catch {
    throw new InputError('nft -j output is not JSON');
  }
  const list = (doc as { nftables?: unknown } | null)?.nftables;
  if (typeof doc !== 'object' || doc === null || !Array.isArray(list)) throw new InputError('nft -j output has no "nftables" array (is it `nft -j list ruleset` output?)');
  return list.filter((o): o is Record<string, any> => typeof o === 'object' && o !== null);
}

/** Which base-chain hooks reach each nft chain, following `jump` and `goto` (kube-proxy's drop sits in a regular chain). */
function nftReach(objs: Array<Record<string, any>>): Map<string, Set<string>> {
  const reach = new Map<string, Set<string>>();
  const edges: Array<[string, string]> = [];
  for (const o of objs) {
    if (o.chain?.hook) reach.set(`${o.chain.family}/${o.chain.table}/${o.chain.name}`, new Set([String(o.chain.hook).toUpperCase()]));
    const r = o.rule;
    if (typeof r !== 'object' || r === null) continue;
    for (const m of JSON.stringify(r.expr ?? []).matchAll(/"(?:jump|goto)":\{"target":"([^"]+)"\}/g)) edges.push([`${r.family}/${r.table}/${r.chain}`, `${r.family}/${r.table}/${m[1]}`]);
  }
  for (let changed = true; changed; ) {
    changed = false;
    for (const [from, to] of edges) {
      const f = reach.get(from);
      if (!f) continue;
      const t = reach.get(to) ?? new Set<string>();
      const before = t.size;
      f.forEach((h) => t.add(h));
      reach.set(to, t);
      if (t.size !== before) changed = true;
    }
  }
  return reach;
}

const nftIsInvalidDrop = (expr: string) => /"ct"[^}]*"key":"state"/.test(expr) && /"invalid"/.test(expr) && /"drop":null/.test(expr);

/** INVALID drops in `nft -j list ruleset` output: rules matching ct state invalid with a drop verdict. */
export function nftInvalidDrops(json: string): InvalidDrop[] {
  const objs = nftObjects(json);
  const reach = nftReach(objs);
  const out: InvalidDrop[] = [];
  const pos = new Map<string, number>();
  for (const o of objs) {
    const r = o.rule;
    if (typeof r !== 'object' || r === null) continue;
    const key = `${r.family}/${r.table}/${r.chain}`;
    pos.set(key, (pos.get(key) ?? 0) + 1);
    if (nftIsInvalidDrop(JSON.stringify(r.expr ?? [])))
      out.push({ backend: 'nft', table: `${r.family} ${r.table}`, chain: r.chain, position: pos.get(key)!, reachedFrom: [...(reach.get(key) ?? [])].sort(), rule: `ct state invalid drop${r.comment ? ` comment "${r.comment}"` : ''}`, ownedByCtprobe: r.table === 'ctprobe' });
  }
  return out;
}

/**
 * kube-proxy's rules as found on a node, and which kube-proxy versions write exactly them
 * (kubernetes/kubernetes pkg/proxy/iptables and pkg/proxy/nftables):
 *   iptables, KUBE-FORWARD INVALID drop: v1.15+ (PR 74840); with `-m nfacct`: v1.30+ (PR 122812).
 *   iptables, no drop, older layout: before v1.15. Newer layout (KUBE-PROXY-FIREWALL, KUBE-EXT-…,
 *     "kubernetes forwarding conntrack rule"), no drop: v1.29+ that found nf_conntrack_tcp_be_liberal=1
 *     when it started and skipped the drop (PR 120412).
 *   nftables mode (table kube-proxy): `ct state invalid drop` in chain forward from v1.30 (PR 122663),
 *     skipped when be_liberal was on at start; v1.29's alpha had none.
 */
export interface KubeProxyRules {
  mode: 'iptables' | 'nftables';
  family: 'ip' | 'ip6';
  /** The INVALID drop kube-proxy wrote, or null when there is none. */
  invalidDrop: { chain: string; rule: string; nfacct: boolean } | null;
  /** iptables: the older (≤ v1.2x) or newer chain layout; nftables: 'nftables'. */
  layout: 'older' | 'newer' | 'nftables';
  /** Which kube-proxy versions (and settings) write exactly these rules. */
  versions: string;
  /** The drop is missing because kube-proxy saw be_liberal=1 when it started (v1.29+). */
  skippedForBeLiberal: boolean;
  evidence: string[];
}

function describeKubeProxy(mode: KubeProxyRules['mode'], layout: KubeProxyRules['layout'], drop: KubeProxyRules['invalidDrop']): Pick<KubeProxyRules, 'versions' | 'skippedForBeLiberal'> {
  if (mode === 'nftables')
    return drop
      ? { versions: 'nftables mode, v1.30+ (PR 122663); the drop is written when be_liberal is 0 at start', skippedForBeLiberal: false }
      : { versions: 'nftables mode without the drop: v1.30+ that found be_liberal=1 at start (or the v1.29 alpha)', skippedForBeLiberal: true };
  if (drop) return { versions: drop.nfacct ? 'iptables mode, v1.30+ (the PR 74840 drop with its nfacct counter)' : layout === 'newer' ? 'iptables mode, v1.2x+ with the PR 74840 drop (on v1.29+ written because be_liberal was 0 at start)' : 'iptables mode, v1.15+ (PR 74840)', skippedForBeLiberal: false };
  return layout === 'newer'
    ? { versions: 'iptables mode, v1.29+ that found be_liberal=1 at start and skipped the drop (PR 120412)', skippedForBeLiberal: true }
    : { versions: 'iptables mode before v1.15: no INVALID drop (Kubernetes 74839 unfixed)', skippedForBeLiberal: false };
}

/** kube-proxy's iptables-mode rules in an iptables-save document, or null when there are none. */
export function kubeProxyFromIptables(tables: Map<string, IptTable>, family: 'ip' | 'ip6' = 'ip'): KubeProxyRules | null {
  const filter = tables.get('filter');
  const nat = tables.get('nat');
  const chains = [...(filter?.chains.keys() ?? [])].map((c) => `filter/${c}`).concat([...(nat?.chains.keys() ?? [])].map((c) => `nat/${c}`));
  const kube = chains.filter((c) => /\/KUBE-(FORWARD|SERVICES|POSTROUTING)$/.test(c));
  if (!kube.length) return null;
  const rules = [...(filter?.chains.values() ?? []), ...(nat?.chains.values() ?? [])].flatMap((c) => c.rules);
  const newer = chains.filter((c) => /\/KUBE-(PROXY-FIREWALL|PROXY-CANARY|EXT-\w+)$/.test(c));
  const conntrackRule = rules.some((r) => r.comment === 'kubernetes forwarding conntrack rule');
  const layout = newer.length || conntrackRule ? 'newer' : 'older';
  const d = filter?.chains.get('KUBE-FORWARD')?.rules.find((r) => r.invalidMatch && r.target === 'DROP');
  const drop = d ? { chain: 'KUBE-FORWARD', rule: d.text, nfacct: /-m nfacct\b/.test(d.text) } : null;
  return { mode: 'iptables', family, invalidDrop: drop, layout, ...describeKubeProxy('iptables', layout, drop), evidence: [...kube, ...newer.slice(0, 3)] };
}

/** kube-proxy's nftables-mode tables (`table ip|ip6 kube-proxy`) in `nft -j list ruleset` output. */
export function kubeProxyFromNft(json: string): KubeProxyRules[] {
  const objs = nftObjects(json);
  const out: KubeProxyRules[] = [];
  for (const fam of ['ip', 'ip6'] as const) {
    if (!objs.some((o) => o.table?.family === fam && o.table?.name === 'kube-proxy')) continue;
    const r = objs.find((o) => o.rule?.family === fam && o.rule?.table === 'kube-proxy' && o.rule?.chain === 'forward' && nftIsInvalidDrop(JSON.stringify(o.rule.expr ?? [])));
    const drop = r ? { chain: 'forward', rule: 'ct state invalid drop', nfacct: false } : null;
    out.push({ mode: 'nftables', family: fam, invalidDrop: drop, layout: 'nftables', ...describeKubeProxy('nftables', 'nftables', drop), evidence: [`table ${fam} kube-proxy`] });
  }
  return out;
}

export type NatKind = 'masquerade' | 'snat' | 'dnat' | 'redirect';

const NAT_TARGETS: Record<string, NatKind> = { MASQUERADE: 'masquerade', SNAT: 'snat', DNAT: 'dnat', REDIRECT: 'redirect' };

/** The kinds of NAT an iptables ruleset does (targets in its nat table). */
export function iptablesNat(tables: Map<string, IptTable>): NatKind[] {
  const out = new Set<NatKind>();
  for (const c of tables.get('nat')?.chains.values() ?? []) for (const r of c.rules) if (r.target && NAT_TARGETS[r.target]) out.add(NAT_TARGETS[r.target]!);
  return [...out];
}

/** The kinds of NAT an nft ruleset does (masquerade/snat/dnat/redirect statements). */
export function nftNat(json: string): NatKind[] {
  const out = new Set<NatKind>();
  for (const o of nftObjects(json)) {
    if (typeof o.rule !== 'object' || o.rule === null) continue;
    const expr = JSON.stringify(o.rule.expr ?? []);
    for (const k of ['masquerade', 'snat', 'dnat', 'redirect'] as const) if (expr.includes(`"${k}":`)) out.add(k);
  }
  return [...out];
}
