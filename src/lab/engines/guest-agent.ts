/**
 * Runs inside a lab guest (started by the guest's PID 1 script): reads the run's spec from the run
 * share, runs the lab with this host's ctprobe on the guest's kernel, appends each progress event
 * as a JSON line to events.jsonl and writes the typed report to report.json. Exit 0 when the lab
 * ran (whatever its verdicts), the error's exit code otherwise (also written as an event).
 */
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { release } from 'node:os';
import { CtprobeError, errorText, EXIT } from '../../errors.js';
import { runLab } from '../runner.js';
import { scenarioByName } from '../scenarios.js';
import type { GuestSpec } from './guest.js';
import { GUEST_RUN_DIR } from './initramfs.js';

function event(e: Record<string, unknown>): void {
  appendFileSync(`${GUEST_RUN_DIR}/events.jsonl`, JSON.stringify(e) + '\n');
}

async function main(): Promise<number> {
  const spec = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as GuestSpec;
  event({ type: 'guest-up', kernel: release(), uptimeS: Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]) });
  const entry = scenarioByName(spec.scenario);
  if (!entry) {
    event({ type: 'guest-error', code: 'EUSAGE', exit: EXIT.cannotRun, message: `unknown scenario ${spec.scenario}` });
    return EXIT.cannotRun;
  }
  const scenario = await entry.build({ offsets: spec.offsets, mitigations: spec.mitigations, control: spec.control, engine: 'netns', swarm: false, families: spec.families ?? [4] });
  try {
    const report = await runLab({ scenario, keep: false, concurrency: spec.concurrency, captureDir: spec.captureDir, onProgress: (ev) => event({ ...ev }) });
    writeFileSync(`${GUEST_RUN_DIR}/report.json`, JSON.stringify(report) + '\n');
    return EXIT.ok;
  } catch (e) {
    const ce = e instanceof CtprobeError ? e : null;
    event({ type: 'guest-error', code: ce?.code ?? 'EBUG', exit: ce?.exitCode ?? EXIT.internal, message: errorText(e) });
    if (!ce) process.stderr.write(`${(e as Error)?.stack ?? String(e)}\n`);
    return ce?.exitCode ?? EXIT.internal;
  }
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`${(e as Error)?.stack ?? String(e)}\n`);
    process.exit(EXIT.internal);
  },
);
