/**
 * Offline validation of the Kubernetes manifests in deploy/kubernetes (no cluster can run here):
 * every YAML document of every file in the folder is checked against the Kubernetes OpenAPI
 * schema of its apiVersion/kind (kubernetes-models' compiled validators; a kind with no schema is
 * an error, never a skip), then against what ctprobe needs of it: the image named `ctprobe` so
 * kustomize's `images:` sets name and tag, and every ctprobe command line parsing with that
 * command's own flag table. kustomization.yaml is checked for its resources and image entry.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { loadCommand } from '../src/cli/registry.js';

export interface ManifestDoc {
  file: string;
  index: number;
  doc: Record<string, any>;
}

/** Every *.yaml / *.yml under `dir`, recursively, sorted. */
export function manifestFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d).sort()) {
      const p = join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else if (/\.ya?ml$/.test(e)) out.push(p);
    }
  };
  walk(dir);
  return out;
}

/** The documents of a YAML file; a YAML syntax error is a problem, not a crash. */
export function readDocs(file: string, text = readFileSync(file, 'utf8')): { docs: ManifestDoc[]; problems: string[] } {
  const docs: ManifestDoc[] = [];
  const problems: string[] = [];
  parseAllDocuments(text).forEach((d, index) => {
    if (d.errors.length) problems.push(`${file}#${index}: YAML: ${d.errors[0]!.message.split('\n')[0]}`);
    const v = d.toJS() as unknown;
    if (v === null || v === undefined) return; // an empty document (a trailing ---)
    if (typeof v !== 'object' || Array.isArray(v)) problems.push(`${file}#${index}: not a mapping`);
    else docs.push({ file, index, doc: v as Record<string, any> });
  });
  return { docs, problems };
}

/** The kubernetes-models class for apiVersion/kind, or null when the package has no schema for it. */
async function modelFor(apiVersion: string, kind: string): Promise<{ validate(): void } & (new (d: unknown) => { validate(): void }) | null> {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : [null, apiVersion];
  if (!/^[\w.-]+$/.test(version ?? '') || !/^[A-Za-z]+$/.test(kind) || (group && !/^[\w.-]+$/.test(group))) return null;
  try {
    const mod = (await import(`kubernetes-models/${group ? `${group}/` : ''}${version}/${kind}`)) as Record<string, any>;
    return mod[kind] ?? null;
  } catch {
    return null;
  }
}

interface ContainerLike {
  name?: string;
  image?: string;
  command?: string[];
  args?: string[];
}

/** Pod templates of a workload (or the pod itself). */
function podSpecs(doc: Record<string, any>): Array<Record<string, any>> {
  if (doc.kind === 'Pod') return doc.spec ? [doc.spec] : [];
  if (doc.kind === 'CronJob') return doc.spec?.jobTemplate?.spec?.template?.spec ? [doc.spec.jobTemplate.spec.template.spec] : [];
  return doc.spec?.template?.spec ? [doc.spec.template.spec] : [];
}

interface ContainerEnv {
  env?: Array<{ name: string; value?: string }>;
  envFrom?: Array<{ configMapRef?: { name: string } }>;
}

/**
 * The ctprobe command lines a container runs: its args, or each `ctprobe …` in a `sh -c` script
 * with $VAR / "$VAR" expanded from the container's env and the ConfigMaps it takes env from.
 */
export function ctprobeCommandLines(c: ContainerLike & ContainerEnv, configMaps: Map<string, Record<string, string>>): Array<{ argv: string[]; unresolved: string[] }> {
  const cmd = c.command ?? [];
  if (cmd.length === 0 || /(^|\/)ctprobe$/.test(cmd[0]!)) return [{ argv: [...cmd.slice(1), ...(c.args ?? [])], unresolved: [] }];
  const env: Record<string, string> = {};
  for (const f of c.envFrom ?? []) Object.assign(env, configMaps.get(f.configMapRef?.name ?? '') ?? {});
  for (const e of c.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
  const script = [...cmd, ...(c.args ?? [])].join(' ');
  return [...script.matchAll(/(?:^|[\s;&|(])ctprobe\s+([^;&|)\n]*)/g)].map((m) => {
    const unresolved: string[] = [];
    const argv = m[1]!.trim().split(/\s+/).flatMap((tok) => {
      const v = /^"?\$\{?(\w+)\}?"?$/.exec(tok);
      if (!v) return [tok.replace(/^"(.*)"$/, '$1')];
      if (!(v[1]! in env)) unresolved.push(v[1]!);
      return (env[v[1]!] ?? '').split(/\s+/).filter(Boolean);
    });
    return { argv, unresolved };
  });
}

/** Check a ctprobe command line against that command's own flag table. */
async function checkCtprobeArgv(argv: string[]): Promise<string | null> {
  const [name, ...rest] = argv;
  const command = name === undefined ? null : await loadCommand(name);
  if (!command) return `'ctprobe ${argv.join(' ')}': no command '${name ?? ''}'`;
  try {
    command.checkFlags(rest);
    return null;
  } catch (e) {
    return `'ctprobe ${argv.join(' ')}': ${(e as Error).message}`;
  }
}

/** Problems with one document: schema first, then what ctprobe needs. */
export async function validateDoc({ file, index, doc }: ManifestDoc, configMaps = new Map<string, Record<string, string>>()): Promise<string[]> {
  const at = `${file}#${index} (${doc.kind ?? '?'} ${doc.metadata?.name ?? '?'})`;
  if (typeof doc.apiVersion !== 'string' || typeof doc.kind !== 'string') return [`${at}: no apiVersion/kind`];
  if (doc.kind === 'Kustomization') return validateKustomization(file, doc);
  const Model = await modelFor(doc.apiVersion, doc.kind);
  if (!Model) return [`${at}: no Kubernetes schema for ${doc.apiVersion} ${doc.kind}`];
  const problems: string[] = [];
  try {
    new Model(doc).validate();
  } catch (e) {
    problems.push(`${at}: ${(e as Error).message.split('\n').slice(0, 3).join('; ')}`);
  }
  if (!doc.metadata?.name) problems.push(`${at}: metadata.name missing`);
  for (const spec of podSpecs(doc))
    for (const c of [...(spec.initContainers ?? []), ...(spec.containers ?? [])] as Array<ContainerLike & ContainerEnv>) {
      if (!/^ctprobe(:[\w.-]+)?$/.test(c.image ?? '')) problems.push(`${at}: container ${c.name}: image '${c.image}' is not 'ctprobe' (kustomization.yaml's images: entry sets name and tag)`);
      const lines = ctprobeCommandLines(c, configMaps);
      if (!lines.length) problems.push(`${at}: container ${c.name}: runs no ctprobe command`);
      for (const l of lines) {
        if (l.unresolved.length) problems.push(`${at}: container ${c.name}: $${l.unresolved.join(', $')} not set by env or envFrom`);
        const p = await checkCtprobeArgv(l.argv);
        if (p) problems.push(`${at}: container ${c.name}: ${p}`);
      }
    }
  return problems;
}

function validateKustomization(file: string, k: Record<string, any>): string[] {
  const problems: string[] = [];
  if (k.apiVersion !== 'kustomize.config.k8s.io/v1beta1') problems.push(`${file}: apiVersion ${k.apiVersion} (want kustomize.config.k8s.io/v1beta1)`);
  const dir = file.replace(/\/[^/]+$/, '');
  for (const r of (k.resources ?? []) as unknown[])
    if (typeof r !== 'string' || !existsSync(join(dir, r))) problems.push(`${file}: resource ${String(r)} does not exist`);
  const img = ((k.images ?? []) as Array<Record<string, unknown>>).find((i) => i.name === 'ctprobe');
  if (!img || typeof img.newName !== 'string' || typeof img.newTag !== 'string') problems.push(`${file}: no images entry for 'ctprobe' with newName and newTag`);
  return problems;
}

/** Validate the whole folder: every file, every document. */
export async function validateFolder(dir: string): Promise<{ files: string[]; docs: ManifestDoc[]; problems: string[] }> {
  const files = manifestFiles(dir);
  const docs: ManifestDoc[] = [];
  const problems: string[] = [];
  for (const f of files) {
    const r = readDocs(f);
    const rel = relative(dir, f);
    docs.push(...r.docs.map((d) => ({ ...d, file: rel })));
    problems.push(...r.problems);
  }
  const configMaps = new Map(docs.filter((d) => d.doc.kind === 'ConfigMap').map((d) => [String(d.doc.metadata?.name), (d.doc.data ?? {}) as Record<string, string>]));
  for (const d of docs) problems.push(...(await validateDoc({ ...d, file: join(dir, d.file) }, configMaps)).map((p) => p.replace(`${dir}/`, '')));
  return { files: files.map((f) => relative(dir, f)), docs, problems };
}
