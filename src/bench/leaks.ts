/**
 * `ctprobe leaks` end to end over sockets and conntrack lines read from files: 1M + 1M (target
 * < 2 s for the whole command, Node start included) and a quarter of that (linear: the same time
 * per line).
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { measure, type Measured } from './measure.js';

const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url));

/** N sockets (a proxy's pairs, every 1000th leaked) and ~N conntrack lines. */
function writeFiles(dir: string, n: number): { ss: string; ct: string } {
  const ss: string[] = ['State Recv-Q Send-Q Local Address:Port Peer Address:Port Process'];
  const ct: string[] = [];
  for (let i = 0; i < n / 2; i++) {
    const app = `192.0.${(i >> 8) & 255}.${i & 255}`;
    const port = 32768 + (i % 28000);
    // Every 1000th connection leaked (FIN-WAIT-2 + CLOSE-WAIT, no conntrack entry); the rest established.
    const leaked = i % 1000 === 0;
    ss.push(`${leaked ? 'FIN-WAIT-2' : 'ESTAB'} 0 0 127.0.0.1:15001 ${app}:${port} users:(("envoy",pid=51435,fd=${100 + i})) uid:1337 ino:${2 * i + 1} sk:${i.toString(16)} ${leaked ? '<--' : '<->'}`);
    ss.push(`${leaked ? 'CLOSE-WAIT' : 'ESTAB'} 0 0 ${app}:${20000 + (i % 30000)} 203.0.113.7:7777 users:(("envoy",pid=51435,fd=${100 + n + i})) uid:1337 ino:${2 * i + 2} sk:${(i + n).toString(16)} ${leaked ? '-->' : '<->'}`);
    if (!leaked) {
      ct.push(`tcp      6 431999 ESTABLISHED src=${app} dst=203.0.113.7 sport=${port} dport=7777 src=127.0.0.1 dst=${app} sport=15001 dport=${port} [ASSURED] mark=0 use=1`);
      ct.push(`tcp      6 431999 ESTABLISHED src=${app} dst=203.0.113.7 sport=${20000 + (i % 30000)} dport=7777 src=203.0.113.7 dst=${app} sport=7777 dport=${20000 + (i % 30000)} [ASSURED] mark=0 use=1`);
    }
  }
  const files = { ss: `${dir}/ss-${n}.txt`, ct: `${dir}/ct-${n}.txt` };
  writeFileSync(files.ss, ss.join('\n') + '\n');
  writeFileSync(files.ct, ct.join('\n') + '\n');
  return files;
}

export async function benchLeaks(): Promise<void> {
  const dir = '.bench';
  mkdirSync(dir, { recursive: true });
  for (const n of [250_000, 1_000_000]) {
    const f = writeFiles(dir, n);
    const runs: Measured[] = [];
    for (let k = 0; k < 2; k++) runs.push(await measure([process.execPath, CLI, 'leaks', '--ss-file', f.ss, '--conntrack-file', f.ct, '-o', 'json'], 'null'));
    const b = runs.reduce((a, c) => (c.ms < a.ms ? c : a));
    const lines = 2 * n;
    const target = n === 1_000_000 ? ' (target < 2000 ms, Node start included)' : '';
    console.log(`leaks ${n / 1000}k sockets + ~${n / 1000}k conntrack lines: ${b.ms.toFixed(0)} ms best of 2${target}, CPU ${b.cpuMs.toFixed(0)} ms, ${((b.ms * 1000) / lines).toFixed(2)} µs per line, peak RSS ${b.peakMB.toFixed(0)} MB${b.code === 1 ? '' : ` (exit ${b.code}: expected 1, leaks found)`}`);
    rmSync(f.ss, { force: true });
    rmSync(f.ct, { force: true });
  }
}
