import { UsageError } from '../../errors.js';
import { SOURCES } from '../../host/source-table.js';
import { defineCommand, EXIT, TARGET_FLAG_TABLE } from '../command.js';

export const collectCommand = defineCommand({
  name: 'collect',
  usage: ['collect [--netns NAME | --pid PID | --pod NAME] -o bundle.tar.gz [--capture DUR]'],
  about: `SREs rarely debug on the node: collect what ctprobe reads, analyse it anywhere. The bundle holds
(each with the command that made it, or why it could not be read):
${Object.values(SOURCES).map((s) => `  ${s.file.padEnd(26)}${[s.tool, ...s.args].join(' ')}`).join('\n')}
  manifest.json             the target, kernel release, conntrack sysctls, what failed
  capture.pcap              with --capture: tcpdump -i any of TCP for that long
Then: ctprobe audit --from B, ctprobe leaks --from B, ctprobe invalid-log show --from B,
ctprobe explain --from B — the same analyses, on the same data, with the same result as live.`,
  flags: {
    output: { type: 'string', short: 'o', arg: 'FILE', help: 'where to write: a .tar.gz (or .tgz) file, or a directory' },
    ...TARGET_FLAG_TABLE,
    capture: { type: 'duration', help: 'also capture TCP on every interface for this long (e.g. 10s)' },
    json: { type: 'boolean', help: 'print the result as one JSON document' },
  },
  output: false,
  exits: '0 written (what could not be read is listed, not fatal)',
  async run({ flags: f, args, out }) {
    if (args.length) throw new UsageError(`collect takes no arguments (got '${args[0]}')`);
    if (!f.output) throw new UsageError('collect needs -o FILE.tar.gz (or a directory)');
    if (f.capture !== undefined && (f.capture < 1000 || f.capture > 600_000)) throw new UsageError('--capture: between 1s and 10m');
    const [{ collectBundle }, { targetFromFlags }, { collectProgressLine, collectResult }] = await Promise.all([import('../../host/bundle.js'), import('../../host/target.js'), import('../../report/bundle.js')]);
    const r = await collectBundle(targetFromFlags(f), { out: f.output, captureMs: f.capture ?? null, onProgress: (p) => out.progress(collectProgressLine(p)) });
    out.line(f.json ? JSON.stringify(collectResult.json(r), null, 2) : collectResult.text(r));
    return EXIT.ok;
  },
});
