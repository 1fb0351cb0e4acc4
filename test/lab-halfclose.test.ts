/**
 * The half-closed leak through a real transparent proxy in real namespaces: the proxy's
 * FIN-WAIT-2 + CLOSE-WAIT pair is left behind when conntrack's CLOSE_WAIT entry expired first,
 * and not when close_wait outlives the app's delay; port reuse on this kernel.
 */
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { CLI, collect, hasTool, isRoot, sh } from './netns.js';

const ready = isRoot && hasTool('iptables-restore') && hasTool('conntrack') && hasTool('setpriv');

describe.skipIf(!ready)('ctprobe lab half-close-leak / port-reuse', () => {
  it('leaks the proxy pair without mitigation, not with a long close_wait', async () => {
    const r = await collect(spawn('node', [CLI, 'lab', 'half-close-leak', '--mitigation', 'none,close-wait-long', '-o', 'json']));
    const rep = JSON.parse(r.out) as { run: string; cells: Array<Record<string, any>> };
    const none = rep.cells.find((c) => c.id === 'half-close/none')!;
    const long = rep.cells.find((c) => c.id === 'half-close/close-wait-long')!;
    expect(none.verdict).toBe('leak');
    expect(none.leak.finWait2).toMatch(new RegExp(`^FIN-WAIT-2 .*127\\.0\\.0\\.1:15001 203\\.0\\.113\\.1:${none.sourcePort}\\b`));
    expect(none.leak.closeWait).toMatch(/^CLOSE-WAIT .*203\.0\.113\.2:7777/);
    expect(none.invalidCount).toBeGreaterThan(0);
    expect((none.invalidLog as string[]).join('\n')).toMatch(/invalid new/);
    expect(long.verdict).toBe('clean');
    expect(long.leak).toBeNull();
    expect(r.code).toBe(0);
    expect(sh('ip netns list')).not.toContain(`ctp-lab-${rep.run}-`);
  });

  it('reports what a reused source port does on this kernel', async () => {
    const r = await collect(spawn('node', [CLI, 'lab', 'port-reuse', '-o', 'json']));
    const rep = JSON.parse(r.out) as { kernel: string; cells: Array<Record<string, any>> };
    const c = rep.cells[0]!;
    expect(['reuse-connected', 'reuse-timeout']).toContain(c.verdict);
    expect(c.match).toBe(true);
    if (/^6\.(1\d|[2-9])\./.test(rep.kernel)) {
      expect(c.reuse.result).toBe('connected');
      expect((c.invalidLog as string[]).join('\n')).toMatch(/packet \(index 3\) in dir 1 ignored, state SYN_SENT/);
    }
  });
});
