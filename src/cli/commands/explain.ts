import { release } from 'node:os';
import { UsageError } from '../../errors.js';
import { explainCapture, type ExplainedPacket } from '../../conntrack/explain.js';
import { profileForRelease, profileFromFlag, type KernelProfile } from '../../conntrack/profile.js';
import { OUTPUT_FLAG, outputFormat, parseFlags, type Command } from '../command.js';

const help = `Usage: ctprobe explain FILE [--kernel 6.18] [--be-liberal] [--no-loose] [--ignore-invalid-rst]
                       [--flow FILTER] [--only invalid|ignored] [--dedupe|--no-dedupe] [-o text|json]

Replays a packet capture (pcap or pcapng: Ethernet, Linux cooked SLL/SLL2 from 'tcpdump -i any',
raw IP; IPv4 and IPv6) through ctprobe's model of the kernel's TCP conntrack, and says for every
TCP packet: the flow and direction, the conntrack state before → after, the verdict
  ACCEPT   tracked (NAT applies)
  IGNORE   passes, but conntrack state is not updated
  INVALID  untracked: not de-NATed, so a NAT host answers it with RST (unless INVALID is dropped)
and the reason in the kernel's own words (what nf_conntrack_log_invalid would print on that
kernel), then a summary per flow.

Capture on the NAT host (the client's host) to see what its conntrack sees:
  tcpdump -i any -w /tmp/ct.pcap 'tcp port 9000'
A packet seen on several interfaces of that host is counted once (--dedupe, the default for
'-i any' captures), and replies addressed to a masquerade address are matched to their flow.

Flags:
  --kernel V         kernel to model: a release (6.18, 5.10.0-25) or a profile id (old,
                     overshoot-invalid, modern, modern-challenge); default: this host's (uname -r)
  --be-liberal       as with net.netfilter.nf_conntrack_tcp_be_liberal=1
  --no-loose         as with nf_conntrack_tcp_loose=0 (no mid-stream pickup)
  --ignore-invalid-rst  as with nf_conntrack_tcp_ignore_invalid_rst=1 (5.14+)
  --flow FILTER      report only flows with an endpoint matching ADDR, PORT, :PORT or ADDR:PORT
  --only KIND        report only 'invalid' packets, or 'ignored' (IGNORE and INVALID) ones
  -o text|json       text (default) or JSON lines: {"type":"packet",…} … {"type":"summary",…}

Exit codes: 0 nothing INVALID, 1 some packet is INVALID, 2 cannot read the file or bad flags.
Example: ctprobe explain ct.pcap --kernel 5.10 --flow 9000 --only ignored
`;

function line(p: ExplainedPacket): string {
  const d = p.decision;
  const head = `#${p.index} ${p.tsSec.toFixed(6)} ${p.src}:${p.srcPort} > ${p.dst}:${p.dstPort} [${p.flags}] seq ${p.seq} ack ${p.ack} len ${p.len}`;
  const nat = p.natMatchedTo ? ` (NAT: flow of ${p.natMatchedTo})` : '';
  const reason = d.reason ? ` "${d.reason}"${d.logged ? '' : ' (not logged on this kernel)'}` : '';
  const extra = d.secondaryReason ? `; also "${d.secondaryReason}"` : d.note ? `; ${d.note}` : '';
  return `${head}${nat}\n    ${d.dir} ${d.stateBefore} → ${d.stateAfter}  ${d.verdict}${reason}${extra}\n    ${p.consequence}`;
}

export const explainCommand: Command = {
  name: 'explain',
  summary: 'replay a capture: per packet ACCEPT / IGNORE / INVALID with the kernel’s reason',
  help,
  async run(argv) {
    const { values, positionals } = parseFlags(argv, {
      kernel: { type: 'string' },
      'be-liberal': { type: 'boolean' },
      'no-loose': { type: 'boolean' },
      'ignore-invalid-rst': { type: 'boolean' },
      flow: { type: 'string' },
      only: { type: 'string' },
      dedupe: { type: 'boolean' },
      'no-dedupe': { type: 'boolean' },
      ...OUTPUT_FLAG,
    });
    if (positionals.length !== 1) throw new UsageError('explain needs exactly one capture FILE (see --help)');
    const fmt = outputFormat(values.output);
    let profile: KernelProfile;
    try {
      profile = values.kernel ? profileFromFlag(values.kernel) : profileForRelease(release());
    } catch (e) {
      throw new UsageError(`--kernel: ${(e as Error).message}`);
    }
    const only = values.only;
    if (only !== undefined && only !== 'invalid' && only !== 'ignored') throw new UsageError(`--only: '${only}' is not 'invalid' or 'ignored'`);
    const w = (s: string) => process.stdout.write(s + '\n');
    if (fmt === 'text') w(`explain ${positionals[0]} — modelling kernel ${values.kernel ?? release()} (profile ${profile.id}: ${profile.label})${profile.caveat ? `\n  note: ${profile.caveat}` : ''}`);
    const summary = await explainCapture(positionals[0]!, {
      profile,
      sysctls: { beLiberal: Boolean(values['be-liberal']), loose: !values['no-loose'], ignoreInvalidRst: Boolean(values['ignore-invalid-rst']) },
      flow: values.flow ?? null,
      dedupe: values['no-dedupe'] ? false : values.dedupe ? true : 'auto',
      onPacket: (p) => {
        if (only === 'invalid' && p.decision.verdict !== 'INVALID') return;
        if (only === 'ignored' && p.decision.verdict === 'ACCEPT') return;
        if (fmt === 'json') {
          const d = p.decision;
          w(JSON.stringify({ type: 'packet', index: p.index, ts: p.tsSec, src: `${p.src}:${p.srcPort}`, dst: `${p.dst}:${p.dstPort}`, flags: p.flags, seq: p.seq, ack: p.ack, len: p.len, dir: d.dir, stateBefore: d.stateBefore, stateAfter: d.stateAfter, verdict: d.verdict, reason: d.reason, logged: d.logged, check: d.check, secondaryReason: d.secondaryReason, note: d.note, natMatchedTo: p.natMatchedTo, consequence: p.consequence }));
        } else w(line(p));
      },
    });
    if (fmt === 'json') {
      for (const f of summary.flows) w(JSON.stringify({ type: 'flow', ...f }));
      const { flows: _f, ...rest } = summary;
      w(JSON.stringify({ type: 'summary', kernel: values.kernel ?? release(), profile: profile.id, ...rest }));
    } else {
      w('');
      w(`flows (${summary.flows.length}):`);
      for (const f of summary.flows)
        w(`  ${f.flow}: ${f.packets} packets, ${f.accept} accept, ${f.ignore} ignore, ${f.invalid} INVALID, final state ${f.finalState}${f.firstInvalid ? `; first INVALID #${f.firstInvalid.index}: "${f.firstInvalid.reason ?? ''}"` : ''}`);
      w(`summary: ${summary.tcp} TCP packets (${summary.duplicates} duplicate copies, ${summary.skipped} non-TCP skipped): ${summary.accept} accept, ${summary.ignore} ignore, ${summary.invalid} INVALID`);
      if (summary.invalid) w('INVALID packets are not de-NATed: behind NAT they reach the host itself and are answered with RST. Fixes: ctprobe fix apply --method drop-invalid | be-liberal (see ctprobe audit).');
    }
    return summary.invalid > 0 ? 1 : 0;
  },
};
