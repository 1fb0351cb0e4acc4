/** `fix` and `invalid-log` results, and the invalid-log watch stream. */
import type { FixResult, FixStatus } from '../host/fix.js';
import type { InvalidLogStatus, WatchedLine } from '../host/invalidlog.js';
import { jsonLine, type LineRenderer, type Renderer } from './output.js';

export interface FixOutcome extends FixResult {
  target: string;
  action: 'apply' | 'remove';
  method: string;
  dryRun: boolean;
}

export const fixOutcome: Renderer<FixOutcome> = {
  json: (r) => ({ type: 'fix', ...r }),
  text: (r) => [`${r.target}: ${r.message}`, ...(r.dryRun || r.changed ? r.commands.map((c) => c.trimEnd().split('\n').map((l) => `  ${l}`).join('\n')) : [])].join('\n'),
};

export const fixStatusReport: Renderer<FixStatus & { target: string }> = {
  json: (r) => ({ type: 'fix-status', ...r }),
  text: (s) =>
    [
      `${s.target}:`,
      `  drop-invalid: iptables ${s.dropInvalid.iptables.join(', ') || 'not applied'}; nft ${s.dropInvalid.nft.join(', ') || 'not applied'}`,
      `  be_liberal=${s.beLiberal.value ?? 'unknown'}${s.beLiberal.appliedByCtprobe ? ` (set by ctprobe; was ${s.beLiberal.previous})` : ''}`,
    ].join('\n'),
};

export const invalidLogChange: Renderer<{ target: string; action: string; said: string[] }> = {
  json: (r) => ({ type: 'invalid-log', ...r }),
  text: (r) => r.said.map((s) => `${r.target}: ${s}`).join('\n'),
};

export const invalidLogStatusReport: Renderer<InvalidLogStatus & { target: string }> = {
  json: (r) => ({ type: 'invalid-log-status', ...r }),
  text: (s) =>
    `${s.target}: nf_conntrack_log_invalid=${s.logInvalid ?? 'unknown'}, LOG rules ${s.logRule === null ? 'none' : `prefix "${s.logRule}"`}, root nf_log_all_netns=${s.logAllNetns ?? 'unknown'} → ${s.effective ? 'invalid packets are logged' : 'nothing is logged from here'}${s.setByCtprobe ? ' (set by ctprobe)' : ''}`,
};

export const invalidLogLines: LineRenderer<WatchedLine> = {
  json: (l) => jsonLine('invalid', { usec: l.usec, ...l.event }),
  text({ event: e }) {
    const head = `${e.source}${e.reason ? `: ${e.reason}` : ''}${e.host ? ` (${e.host})` : ''}`;
    // a conntrack line whose packet dump was cut (by a log pipeline) has only its reason
    if (e.src === null) return `${head} — packet not in the log line`;
    return `${head} — ${e.proto ?? ''} ${e.src}:${e.sport ?? ''} → ${e.dst}:${e.dport ?? ''} [${e.flags.join(' ')}] seq ${e.seq ?? '-'} ack ${e.ack ?? '-'}${e.in ? ` in ${e.in}` : ''}${e.out ? ` out ${e.out}` : ''}`;
  },
};
