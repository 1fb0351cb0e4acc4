/**
 * A real Prometheus toolchain against `ctprobe watch`: a pod-like namespace (a process with its own
 * UTS hostname) where conntrack counts an INVALID packet, `watch --listen` in it, and a short-lived
 * `prometheus` in the same namespace scraping it every second, queried through its HTTP API — with
 * the README's Grafana query. promtool checks what was served.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { hasTool, isRoot, sh } from './netns.js';
import { sample, WatchProcess } from './watch.js';

const ready = isRoot && hasTool('prometheus') && hasTool('promtool') && hasTool('curl') && hasTool('iptables') && hasTool('conntrack') && hasTool('unshare');
const POD = 'web-0';

/** A TCP connection on lo inside the namespace whose client writes when told: its conntrack entry can be deleted first. */
const PEER = `
const net = require('node:net');
const srv = net.createServer((s) => s.on('data', () => {})).listen(7000, '127.0.0.1', () => {
  const c = net.connect(7000, '127.0.0.1', () => console.log('ready'));
  process.stdin.on('data', () => { c.write('after the entry is gone\\n'); console.log('sent'); });
});`;

async function query(w: WatchProcess, q: string): Promise<{ status: string; data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } }> {
  const r = spawnSync('ip', ['netns', 'exec', w.ns, 'curl', '-s', '--max-time', '5', 'http://127.0.0.1:9090/api/v1/query', '--data-urlencode', `query=${q}`], { encoding: 'utf8' });
  try {
    return JSON.parse(r.stdout) as Awaited<ReturnType<typeof query>>;
  } catch {
    return { status: 'unreachable', data: { result: [] } };
  }
}

describe.skipIf(!ready)('ctprobe watch scraped by a real prometheus', () => {
  let w: WatchProcess;
  let dir: string;
  const procs: ChildProcess[] = [];

  beforeAll(() => {
    dir = mkdtempSync(`${tmpdir()}/ctp-prom-`);
  });
  afterAll(() => {
    for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
    w?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves metrics promtool accepts; prometheus scrapes them and answers queries with the pod and its INVALID count', async () => {
    w = new WatchProcess(['--interval', '500ms'], 9464, true);
    // a pod: a process in the namespace with its own UTS hostname
    const pod = spawn('ip', ['netns', 'exec', w.ns, 'unshare', '--uts', 'sh', '-c', `hostname ${POD} && exec sleep 120`], { stdio: 'ignore' });
    procs.push(pod);
    // conntrack on in the namespace (a rule that uses it), no mid-stream pickup: a packet of a connection whose entry is gone is INVALID
    sh(`ip netns exec ${w.ns} iptables -A INPUT -m conntrack --ctstate INVALID -m comment --comment ctprobe-test -j ACCEPT`);
    sh(`ip netns exec ${w.ns} sh -c 'echo 0 > /proc/sys/net/netfilter/nf_conntrack_tcp_loose'`);
    await sleep(300); // the pod's hostname is set before watch looks
    w.start();
    expect(await w.waitFor((e) => e.type === 'watch-start', 30_000), w.stderr).toBeDefined();
    expect(w.events[0]!.watching).toEqual([{ netns: w.ns, pod: POD, invalidLog: false }]);

    const peer = spawn('ip', ['netns', 'exec', w.ns, process.execPath, '-e', PEER], { stdio: ['pipe', 'pipe', 'inherit'] });
    procs.push(peer);
    let peerOut = '';
    peer.stdout!.setEncoding('utf8').on('data', (d: string) => (peerOut += d));
    for (let i = 0; i < 200 && !peerOut.includes('ready'); i++) await sleep(50);
    expect(peerOut).toContain('ready');
    spawnSync('ip', ['netns', 'exec', w.ns, 'conntrack', '-D', '-p', 'tcp']);
    peer.stdin!.write('go\n');
    const counter = await w.waitFor((e) => e.type === 'counter' && e.counter === 'invalid', 30_000);
    expect(counter).toMatchObject({ netns: w.ns, pod: POD });
    expect(counter!.delta).toBeGreaterThanOrEqual(1);

    const m = w.get('/metrics');
    expect(m.status).toBe(200);
    expect(sample(m.body, 'ctprobe_conntrack_invalid_total', { netns: w.ns, pod: POD })).toBeGreaterThanOrEqual(1);
    const check = spawnSync('promtool', ['check', 'metrics'], { input: m.body, encoding: 'utf8' });
    expect(check.status, check.stdout + check.stderr).toBe(0);
    expect(w.get('/healthz').status).toBe(200);
    expect(w.get('/nope').status).toBe(404);

    writeFileSync(`${dir}/prometheus.yml`, ['global:', '  scrape_interval: 1s', '  evaluation_interval: 1s', 'scrape_configs:', '  - job_name: ctprobe', '    static_configs:', `      - targets: ['127.0.0.1:${w.port}']`, ''].join('\n'));
    const prom = spawn('ip', ['netns', 'exec', w.ns, 'prometheus', `--config.file=${dir}/prometheus.yml`, `--storage.tsdb.path=${dir}/data`, '--web.listen-address=127.0.0.1:9090'], { stdio: ['ignore', 'ignore', 'pipe'] });
    procs.push(prom);
    let promErr = '';
    prom.stderr!.setEncoding('utf8').on('data', (d: string) => (promErr = (promErr + d).slice(-4000)));

    let invalid: Awaited<ReturnType<typeof query>> | null = null;
    for (let i = 0; i < 120; i++) {
      await sleep(500);
      const r = await query(w, `ctprobe_conntrack_invalid_total{pod="${POD}"}`);
      if (r.status === 'success' && r.data.result.length && Number(r.data.result[0]!.value[1]) >= 1) {
        invalid = r;
        break;
      }
    }
    expect(invalid, `prometheus never returned the INVALID count: ${promErr.slice(-500)}`).not.toBeNull();
    expect(invalid!.data.result[0]!.metric).toMatchObject({ job: 'ctprobe', netns: w.ns, pod: POD, instance: `127.0.0.1:${w.port}` });
    const up = await query(w, 'up{job="ctprobe"}');
    expect(up.data.result[0]!.value[1]).toBe('1');
    expect((await query(w, 'ctprobe_up')).data.result[0]!.value[1]).toBe('1');
    // Every query of the README's promql block is one Prometheus accepts
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const block = /```promql\n([\s\S]*?)```/.exec(readme)?.[1] ?? '';
    const queries = block.split('\n').map((l) => l.replace(/\s+#.*$/, '').trim()).filter(Boolean);
    expect(queries.length).toBeGreaterThanOrEqual(3);
    for (const q of queries) expect((await query(w, q)).status, q).toBe('success');
    // The README's Grafana query (a rate needs two samples: wait for them)
    let rate: Awaited<ReturnType<typeof query>> | null = null;
    for (let i = 0; i < 20 && !rate?.data.result.length; i++) {
      rate = await query(w, 'sum by (netns, pod) (rate(ctprobe_conntrack_invalid_total[1m]))');
      if (!rate.data.result.length) await sleep(500);
    }
    expect(rate!.status).toBe('success');
    expect(rate!.data.result[0]!.metric).toEqual({ netns: w.ns, pod: POD });

    prom.kill('SIGTERM');
    expect(await w.stop()).toBe(143);
  }, 120_000);
});
