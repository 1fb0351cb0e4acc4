/**
 * `npm run bench`: figures, never assertions. Each bench prints its own lines; a bench whose
 * prerequisites are missing (not root, no tool) says so and is skipped.
 */
import { release } from 'node:os';
import { benchK8sLab, benchLab } from './lab.js';
import { benchRawsock } from './rawsock.js';
import { benchExplain } from './explain.js';
import { benchLeaks } from './leaks.js';
import { benchFlood } from './flood.js';
import { benchParsers } from './pathological.js';
import { benchWatch } from './watch.js';
import { benchGuest } from './guest.js';

interface Bench {
  name: string;
  run: () => Promise<void>;
}

const benches: Bench[] = [
  { name: 'lab oow-rst matrix', run: benchLab },
  { name: 'lab k8s-service', run: benchK8sLab },
  { name: 'raw socket receive', run: benchRawsock },
  { name: 'probe server under a SYN flood', run: benchFlood },
  { name: 'explain throughput', run: benchExplain },
  { name: 'leaks over 1M sockets + 1M conntrack lines', run: benchLeaks },
  { name: 'parsers on pathological lines', run: benchParsers },
  { name: 'watch over 120 namespaces', run: benchWatch },
  { name: 'lab in kernel guests (boot, oow-rst wall time per kernel)', run: benchGuest },
];

async function main(): Promise<void> {
  const only = process.argv[2];
  console.log(`ctprobe benchmarks — node ${process.version}, kernel ${release()}`);
  for (const b of benches) {
    if (only && !b.name.includes(only)) continue;
    console.log(`\n## ${b.name}`);
    try {
      await b.run();
    } catch (e) {
      console.log(`skipped: ${(e as Error).message}`);
    }
  }
}

void main();
