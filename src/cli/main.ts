#!/usr/bin/env node
/** The entry point: find the command, run it, turn what it threw into one line and an exit code. */
import { readFileSync } from 'node:fs';
import { CtprobeError, errorText, EXIT, OutputError } from '../errors.js';
import { COMMON_EXITS } from './command.js';
import { commands, loadCommand } from './registry.js';

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

function topHelp(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    'ctprobe — reproduce, detect and explain conntrack-caused connection failures in NATed networks',
    '',
    'Usage: ctprobe <command> [flags]      ctprobe help <command>  (or <command> --help)',
    '       ctprobe --version',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Start with `ctprobe lab`: it reproduces the failures on this host, in namespaces, and shows which fix works.',
    '',
    'Output: -o text (default) or -o json: one JSON document for commands that end with a result',
    '(lab, audit, leaks, fix), JSON lines for streams (explain, server, client, proxy, invalid-log watch, watch);',
    'every JSON object has a "type".',
    '',
    'Most commands need root (or CAP_NET_RAW + CAP_NET_ADMIN).',
    'Exit codes: 0 ok, 1 a finding (a reset, a mismatch, a leak, an INVALID packet), 3 a reset seen (server)',
    COMMON_EXITS,
  ].join('\n');
}

const controller = new AbortController();
let signalled: NodeJS.Signals | null = null;
let interruptible = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const)
  process.on(sig, () => {
    // A command that owns nothing to clean up stops at once; one that does is told through its
    // signal (a second signal while it cleans up stops it at once).
    if (signalled || !interruptible) process.exit(sig === 'SIGINT' ? EXIT.interrupted : EXIT.terminated);
    signalled = sig;
    controller.abort();
  });

async function main(argv: string[]): Promise<number> {
  let [name, ...rest] = argv;
  if (name === 'help' && rest.length) [name, ...rest] = [rest[0]!, '--help'];
  if (name === undefined || name === '-h' || name === '--help' || name === 'help') {
    process.stdout.write(topHelp() + '\n');
    return name === undefined ? EXIT.cannotRun : EXIT.ok;
  }
  if (name === '--version' || name === '-V' || name === 'version') {
    process.stdout.write(`ctprobe ${VERSION}\n`);
    return EXIT.ok;
  }
  const cmd = await loadCommand(name);
  if (!cmd) {
    process.stderr.write(`ctprobe: unknown command '${name}' (see ctprobe --help)\n`);
    return EXIT.cannotRun;
  }
  if (rest.includes('-h') || rest.includes('--help')) {
    process.stdout.write(cmd.help() + '\n');
    return EXIT.ok;
  }
  interruptible = cmd.interruptible;
  const code = await cmd.run(rest, controller.signal);
  if (signalled) return signalled === 'SIGINT' ? EXIT.interrupted : EXIT.terminated;
  return code;
}

// Output piped into `head` and closed early: stop quietly (the lab's exit hook still tears down).
for (const stream of [process.stdout, process.stderr])
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE' || (e instanceof OutputError && e.errno === 'EPIPE')) process.exit(process.exitCode ?? 0);
    // (a failing stderr cannot be told about it)
    if (stream === process.stdout) process.stderr.write(`ctprobe: writing the output failed: ${errorText(e)}${e instanceof OutputError ? '' : e.code ? ` (${e.code})` : ''}\n`);
    process.exit(EXIT.internal);
  });

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof CtprobeError) {
      process.stderr.write(`ctprobe: ${err.message}\n`);
      process.exitCode = signalled && err.exitCode === EXIT.cannotRun ? (signalled === 'SIGINT' ? EXIT.interrupted : EXIT.terminated) : err.exitCode;
    } else {
      const e = err as Error;
      process.stderr.write(`ctprobe: internal error (a bug, please report it): ${e?.message ?? String(err)}\n`);
      if (process.env.CTPROBE_DEBUG) process.stderr.write(`${e?.stack ?? ''}\n`);
      process.exitCode = EXIT.internal;
    }
  },
);
