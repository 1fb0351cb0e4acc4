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
  backend: 'iptables' | 'nft';
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
export function iptablesInvalidDrops(tables: Map<string, IptTable>): InvalidDrop[] {
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
          out.push({ backend: 'iptables', table: t.name, chain: name, position: r.position, reachedFrom: [...(reach.get(name) ?? [])].sort(), rule: r.text, ownedByCtprobe: r.comment === 'ctprobe' });
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
  const kube = chains.filter((c) => /\/KUBE-(FORWARD|SERVICES|POSTROUTING)$/.test(c));
  if (kube.length) {
    const drop = rules.find((r) => r.chain === 'KUBE-FORWARD' && r.invalidMatch && r.target === 'DROP');
    found.push({ name: 'kube-proxy', evidence: [...kube, ...(drop ? ['KUBE-FORWARD drops ctstate INVALID (PR 74840)'] : ['KUBE-FORWARD has no INVALID drop (be_liberal mode, or nftables mode)'])] });
  }
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

/** INVALID drops in `nft -j list ruleset` output: rules matching ct state invalid with a drop verdict. */
export function nftInvalidDrops(json: string): InvalidDrop[] {
  const hooks = new Map<string, string>();
  const out: InvalidDrop[] = [];
  const pos = new Map<string, number>();
  for (const o of nftObjects(json)) {
    if (o.chain?.hook) hooks.set(`${o.chain.family}/${o.chain.table}/${o.chain.name}`, String(o.chain.hook).toUpperCase());
    const r = o.rule;
    if (typeof r !== 'object' || r === null) continue;
    const key = `${r.family}/${r.table}/${r.chain}`;
    pos.set(key, (pos.get(key) ?? 0) + 1);
    const expr = JSON.stringify(r.expr ?? []);
    const invalid = /"ct"[^}]*"key":"state"/.test(expr) && /"invalid"/.test(expr);
    if (invalid && /"drop":null/.test(expr))
      out.push({ backend: 'nft', table: `${r.family} ${r.table}`, chain: r.chain, position: pos.get(key)!, reachedFrom: hooks.has(key) ? [hooks.get(key)!] : [], rule: `ct state invalid drop${r.comment ? ` comment "${r.comment}"` : ''}`, ownedByCtprobe: r.table === 'ctprobe' });
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
