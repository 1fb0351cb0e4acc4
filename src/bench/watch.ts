/**
 * `ctprobe watch --all-netns` on a node with many namespaces: 100 with a process in them (a pod's
 * shape: read through /proc, no spawn) and 20 that only `ip netns` holds (entered by one shell),
 * interval 1 s, for 20 s. Prints the cycle time, the agent's RSS and its CPU share, as scraped
 * from its own /metrics.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { PrivilegeError } from '../errors.js';
import { newRunId, removeRunState, writeRunState } from '../lab/state.js';
import { onInterrupt } from './interrupt.js';

const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url));
const WITH_PROCESS = 100;
const WITHOUT = 20;
const RUN_S = 20;

const metric = (text: string, name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);

export async function benchWatch(): Promise<void> {
  if (process.geteuid?.() !== 0) throw new PrivilegeError('needs root');
  // Lab-named, with a run state: `lab clean` removes what a SIGKILLed bench left.
  const id = newRunId();
  const names = Array.from({ length: WITH_PROCESS + WITHOUT }, (_, i) => `ctp-lab-${id}-bw${i}`);
  const self = `ctp-lab-${id}-bww`;
  const procs: ChildProcess[] = [];
  writeRunState({ run: id, pid: process.pid, startedAt: new Date().toISOString(), scenario: 'bench-watch', keep: false });
  const remove = () => {
    for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
    spawnSync('ip', ['-batch', '-'], { input: [...names, self].map((n) => `netns del ${n}`).join('\n') + '\n' });
    removeRunState(id);
  };
  const disarm = onInterrupt(remove);
  try {
    spawnSync('ip', ['-batch', '-'], { input: [...names, self].map((n) => `netns add ${n}`).join('\n') + '\n' });
    spawnSync('ip', ['-n', self, 'link', 'set', 'lo', 'up']);
    for (const n of names.slice(0, WITH_PROCESS)) procs.push(spawn('ip', ['netns', 'exec', n, 'sleep', String(RUN_S + 30)], { stdio: 'ignore' }));
    await sleep(1000);
    const watch = spawn('ip', ['netns', 'exec', self, process.execPath, CLI, 'watch', '--all-netns', '--interval', '1s', '--listen', '127.0.0.1:9464', '--max-netns', '1000', '-o', 'json'], { stdio: ['ignore', 'ignore', 'ignore'] });
    procs.push(watch);
    const scrape = () => spawnSync('ip', ['netns', 'exec', self, 'curl', '-s', '--max-time', '5', 'http://127.0.0.1:9464/metrics'], { encoding: 'utf8' }).stdout;
    await sleep(5000); // start-up and the first looks at every namespace
    const a = scrape();
    const t0 = performance.now();
    const cycles: number[] = [];
    while (performance.now() - t0 < RUN_S * 1000) {
      await sleep(1000);
      cycles.push(metric(scrape(), 'ctprobe_watch_cycle_seconds'));
    }
    const b = scrape();
    const wall = (performance.now() - t0) / 1000;
    const cpu = (metric(b, 'process_cpu_seconds_total') - metric(a, 'process_cpu_seconds_total')) / wall;
    const sorted = cycles.filter(Number.isFinite).sort((x, y) => x - y);
    console.log(
      `watch --all-netns: ${metric(b, 'ctprobe_watched_namespaces')} namespaces (${WITH_PROCESS} with a process, ${WITHOUT} without), interval 1 s, ${wall.toFixed(0)} s: ` +
        `cycle median ${((sorted[sorted.length >> 1] ?? NaN) * 1000).toFixed(0)} ms (max ${((sorted.at(-1) ?? NaN) * 1000).toFixed(0)} ms), ` +
        `RSS ${(metric(b, 'process_resident_memory_bytes') / 2 ** 20).toFixed(0)} MB, CPU ${(cpu * 100).toFixed(1)}% of one core (the agent alone; spawned tools not counted)`,
    );
    watch.kill('SIGTERM');
    await sleep(500);
  } finally {
    disarm();
    remove();
  }
}
