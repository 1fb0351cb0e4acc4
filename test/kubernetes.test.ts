/**
 * The Kubernetes manifests, validated offline (no cluster runs here): every document of every
 * file in deploy/kubernetes against the Kubernetes schema of its kind, plus what each part must
 * be — the 74839 pods on different nodes, the audit DaemonSet on the host network with only the
 * capabilities it needs, the fix Job one pod per node — and that the validator does reject.
 */
import { describe, expect, it } from 'vitest';
import { ROOT } from './netns.js';
import { readDocs, validateDoc, validateFolder, type ManifestDoc } from './manifests.js';

const DIR = `${ROOT}deploy/kubernetes`;
const folder = await validateFolder(DIR);
const find = (kind: string, name: string) => folder.docs.find((d) => d.doc.kind === kind && d.doc.metadata?.name === name)?.doc as Record<string, any>;
const podSpec = (d: Record<string, any>) => d.spec.template.spec as Record<string, any>;

describe('deploy/kubernetes (validated offline against the Kubernetes schemas, not run)', () => {
  it('every document of every manifest in the folder is valid', () => {
    expect(folder.files).toEqual(expect.arrayContaining(['kustomization.yaml', 'namespace.yaml', 'repro-74839.yaml', 'audit-daemonset.yaml', 'fix-job.yaml']));
    expect(folder.docs.length).toBeGreaterThanOrEqual(folder.files.length);
    expect(folder.problems).toEqual([]);
  });

  it('74839: server and client on different nodes, the client through the Service; verdicts in log and exit status', () => {
    const server = find('Job', 'ctprobe-server');
    const client = find('Job', 'ctprobe-client');
    const svc = find('Service', 'ctprobe-server');
    const anti = (d: Record<string, any>) => podSpec(d).affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0];
    expect(anti(server)).toMatchObject({ topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: { 'app.kubernetes.io/name': 'ctprobe-client' } } });
    expect(anti(client)).toMatchObject({ topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: { 'app.kubernetes.io/name': 'ctprobe-server' } } });
    expect(svc.spec.selector).toEqual({ 'app.kubernetes.io/name': 'ctprobe-server' });
    const sArgs = podSpec(server).containers[0].args as string[];
    const cArgs = podSpec(client).containers[0].args as string[];
    // A bounded server exits 3 on a reset (the Job fails): the exit status carries the verdict.
    expect(sArgs.slice(0, 1).concat(sArgs.filter((a) => /^--(connections|offset)/.test(a)))).toEqual(['server', '--offset=100000', '--connections']);
    expect(sArgs).toContain('json');
    expect(cArgs[1]).toBe(`${svc.metadata.name}:${svc.spec.ports[0].port}`);
    expect(server.spec.backoffLimit).toBe(0);
    expect(podSpec(server).containers[0].securityContext.capabilities).toEqual({ drop: ['ALL'], add: ['NET_RAW'] });
  });

  it('the audit DaemonSet: every node, host network, NET_ADMIN + NET_RAW and nothing more', () => {
    const ds = find('DaemonSet', 'ctprobe-audit');
    const spec = podSpec(ds);
    expect(spec.hostNetwork).toBe(true);
    expect(spec.tolerations).toEqual([{ operator: 'Exists' }]);
    const sc = spec.containers[0].securityContext;
    expect(sc.capabilities).toEqual({ drop: ['ALL'], add: ['NET_ADMIN', 'NET_RAW'] });
    expect(sc.privileged ?? false).toBe(false);
    expect(sc.allowPrivilegeEscalation).toBe(false);
    expect(spec.containers[0].args.join(' ')).toMatch(/ctprobe audit -o json/);
  });

  it('the fix Job: one pod per node on the host network, the fix chosen in a ConfigMap, state kept on the node', () => {
    const job = find('Job', 'ctprobe-fix');
    const spec = podSpec(job);
    expect(spec.hostNetwork).toBe(true);
    expect(spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0]).toMatchObject({ topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: { 'app.kubernetes.io/name': 'ctprobe-fix' } } });
    expect(job.spec.completions).toBe(job.spec.parallelism);
    expect(find('ConfigMap', 'ctprobe-fix').data).toMatchObject({ FIX_ACTION: 'apply', FIX_METHOD: 'drop-invalid', FIX_CHAIN: 'INPUT' });
    expect(spec.volumes.find((v: Record<string, any>) => v.name === 'state').hostPath.path).toBe('/run/ctprobe');
  });

  it('image name and tag come from kustomization.yaml', () => {
    const k = folder.docs.find((d) => d.doc.kind === 'Kustomization')!.doc;
    expect(k.images).toEqual([expect.objectContaining({ name: 'ctprobe', newName: expect.any(String), newTag: expect.any(String) })]);
  });

  it('the validator rejects what a cluster would: schema errors, unknown kinds, fixed images, bad ctprobe flags', async () => {
    const job = folder.docs.find((d) => d.doc.kind === 'Job' && d.doc.metadata.name === 'ctprobe-client')!;
    const edit = (f: (d: Record<string, any>) => void): ManifestDoc => {
      const doc = structuredClone(job.doc);
      f(doc);
      return { file: 'x.yaml', index: 0, doc };
    };
    expect((await validateDoc(edit((d) => (d.spec.backoffLimit = 'none'))))[0]).toMatch(/backoffLimit must be integer/);
    expect((await validateDoc(edit((d) => delete d.spec.template.spec.containers)))[0]).toMatch(/must have required property containers/);
    expect((await validateDoc(edit((d) => (d.spec.template.spec.containers[0].imagePullPolicy = 'Sometimes'))))[0]).toMatch(/imagePullPolicy/);
    expect(await validateDoc(edit((d) => (d.kind = 'Jobb')))).toEqual([expect.stringMatching(/no Kubernetes schema for batch\/v1 Jobb/)]);
    expect(await validateDoc(edit((d) => (d.spec.template.spec.containers[0].image = 'example.org/ctprobe-fork:1')))).toEqual([expect.stringMatching(/image .* is not 'ctprobe'/)]);
    expect(await validateDoc(edit((d) => d.spec.template.spec.containers[0].args.push('--cuont', '3')))).toEqual([expect.stringMatching(/--cuont/)]);
    expect(await validateDoc(edit((d) => (d.spec.template.spec.containers[0].args[0] = 'klient')))).toEqual([expect.stringMatching(/no command 'klient'/)]);
    expect(readDocs('bad.yaml', 'kind: Job\n  bad: [').problems[0]).toMatch(/^bad\.yaml#0: YAML/);
  });
});
