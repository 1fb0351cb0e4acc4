/**
 * `ctprobe watch` on one pod-like namespace (its own UTS hostname), fed kernel log lines written to
 * /dev/kmsg (a few dozen, a unique interface name, TEST-NET addresses: no sysctl or firewall is
 * touched, no one else's lines are imitated): each is attributed to the pod by its interface and
 * address, events are rate-limited to --max-events and every line is still counted.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { hasTool, isRoot, sh, uniqueName } from './netns.js';
import { sample, WatchProcess } from './watch.js';

const ready = isRoot && hasTool('curl') && hasTool('unshare');
const POD = 'api-7';
const LINES = 40;

describe.skipIf(!ready)('ctprobe watch on one pod', () => {
  let w: WatchProcess;
  const procs: ChildProcess[] = [];
  afterAll(() => {
    for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
    w?.cleanup();
  });

  it('attributes kernel lines to the pod, rate-limits events to --max-events and counts every line', async () => {
    w = new WatchProcess(['--interval', '300ms', '--max-events', '5'], 9464, true);
    const ifname = uniqueName('ctpwv');
    sh(`ip -n ${w.ns} link add ${ifname} type veth peer name ${ifname}p && ip -n ${w.ns} addr add 192.0.2.77/24 dev ${ifname} && ip -n ${w.ns} link set ${ifname} up`);
    procs.push(spawn('ip', ['netns', 'exec', w.ns, 'unshare', '--uts', 'sh', '-c', `hostname ${POD} && exec sleep 120`], { stdio: 'ignore' }));
    await sleep(300);
    w.start();
    const start = await w.waitFor((e) => e.type === 'watch-start', 30_000);
    expect(start, w.stderr).toMatchObject({ scope: 'target', watching: [{ netns: w.ns, pod: POD }] });
    // Lines of this namespace, and one of another namespace's lo (must not be taken for this pod's).
    for (let i = 0; i < LINES; i++)
      writeFileSync('/dev/kmsg', `nf_ct_proto_6: invalid new IN=${ifname} OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:08:00 SRC=203.0.113.9 DST=192.0.2.77 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=0 DF PROTO=TCP SPT=${40000 + i} DPT=5555 SEQ=1 ACK=0 WINDOW=0 RES=0x00 RST URGP=0\n`);
    writeFileSync('/dev/kmsg', 'nf_ct_proto_6: invalid new IN=lo OUT= SRC=127.0.0.1 DST=127.0.0.1 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=0 DF PROTO=TCP SPT=1 DPT=2 SEQ=1 ACK=0 WINDOW=0 RES=0x00 RST URGP=0\n');
    const counted = async () => {
      for (let i = 0; i < 100; i++) {
        const m = w.get('/metrics');
        const n = sample(m.body, 'ctprobe_invalid_packets_total', { netns: w.ns, pod: POD, reason: 'invalid new' });
        if (n === LINES) return m.body;
        await sleep(100);
      }
      return w.get('/metrics').body;
    };
    const metrics = await counted();
    expect(sample(metrics, 'ctprobe_invalid_packets_total', { netns: w.ns, pod: POD, source: 'nf_ct_proto_6', reason: 'invalid new' })).toBe(LINES);
    await sleep(1000); // a cycle reports what was suppressed
    const shown = w.events.filter((e) => e.type === 'invalid');
    expect(shown.every((e) => e.netns === w.ns && e.pod === POD && e.attributedBy === 'address' && e.in === ifname)).toBe(true);
    expect(shown.length).toBeGreaterThanOrEqual(5);
    expect(shown.length).toBeLessThan(LINES); // --max-events 5 per second, the lines came in well under a second
    const suppressed = w.events.filter((e) => e.type === 'lines-suppressed').reduce((n, e) => n + (e.count as number), 0);
    expect(suppressed + shown.length).toBe(LINES);
    expect(Number(/^ctprobe_invalid_events_suppressed_total (\d+)$/m.exec(w.get('/metrics').body)?.[1])).toBe(suppressed);
    expect(await w.stop()).toBe(143);
    expect(w.events.at(-1)).toMatchObject({ type: 'watch-stop', lines: LINES, suppressed });
  }, 60_000);
});
