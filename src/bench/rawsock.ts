/**
 * Raw socket receive throughput: a sender namespace pushes a bounded burst of TCP segments at a
 * receiver namespace whose RawTcpSocket (BPF on the port, 8 MB buffer) counts them.
 */
import { PrivilegeError, SystemError } from '../errors.js';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { runSync } from '../host/exec.js';
import { newRunId } from '../lab/state.js';

const PEER = fileURLToPath(new URL('./rawsock-peer.js', import.meta.url));

function peer(ns: string, args: string[]): Promise<Record<string, number>> {
  return new Promise((resolve, reject) => {
    const p = spawn('ip', ['netns', 'exec', ns, process.execPath, PEER, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    p.on('close', () => {
      const last = out.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(last) as Record<string, number>);
      } catch {
        reject(new SystemError(`raw socket peer failed: ${out.trim()}`));
      }
    });
  });
}

export async function benchRawsock(): Promise<void> {
  if (process.geteuid?.() !== 0) throw new PrivilegeError('the raw socket benchmark needs root');
  const id = newRunId();
  const a = `ctp-bench-${id}-a`;
  const b = `ctp-bench-${id}-b`;
  try {
    runSync('ip', ['netns', 'add', a]);
    runSync('ip', ['netns', 'add', b]);
    runSync('ip', ['link', 'add', `ctr${id}a`, 'netns', a, 'type', 'veth', 'peer', 'name', `ctr${id}b`, 'netns', b]);
    runSync('ip', ['-n', a, 'addr', 'add', '203.0.113.1/24', 'dev', `ctr${id}a`]);
    runSync('ip', ['-n', b, 'addr', 'add', '203.0.113.2/24', 'dev', `ctr${id}b`]);
    for (const [ns, i] of [[a, `ctr${id}a`], [b, `ctr${id}b`]] as const) runSync('ip', ['-n', ns, 'link', 'set', i, 'up']);
    // The receiving stack answers the unknown flow with RSTs; drop them (raw sockets see packets after INPUT).
    runSync('iptables', ['-A', 'OUTPUT', '-p', 'tcp', '--sport', '9900', '--tcp-flags', 'RST', 'RST', '-j', 'DROP'], { netns: a });
    for (const count of [100_000, 300_000]) {
      const recv = peer(a, ['recv', '9900', '4']);
      await new Promise((r) => setTimeout(r, 600));
      const sent = await peer(b, ['send', '203.0.113.2', '203.0.113.1', '9900', String(count), '3']);
      const got = await recv;
      const loss = sent.sent ? (1 - got.received! / sent.sent) * 100 : 0;
      console.log(`burst ${count}: sent ${sent.sent} at ${sent.rate}/s; received ${got.received} at ${got.rate}/s; loss ${loss.toFixed(2)}%; receiver RSS ${got.rssMB} MB`);
    }
  } finally {
    runSync('ip', ['netns', 'del', a], { allowFail: true });
    runSync('ip', ['netns', 'del', b], { allowFail: true });
  }
}
