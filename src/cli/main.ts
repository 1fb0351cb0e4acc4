#!/usr/bin/env node
import { CtprobeError } from '../errors.js';
import type { Command } from './command.js';
import { commands } from './registry.js';

const VERSION = '0.1.0';

function topHelp(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    'ctprobe — reproduce, detect and explain conntrack-caused connection failures in NATed networks',
    '',
    'Usage: ctprobe <command> [flags]      ctprobe <command> --help for its flags',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Start with `ctprobe lab`: it reproduces the failures on this host, in namespaces, and shows which fix works.',
    '',
    'Most commands need root (or CAP_NET_RAW + CAP_NET_ADMIN). Exit codes: 0 ok, 1 a finding',
    '(a reset, a mismatch, a leak), 2 cannot run (usage, privilege, missing tool), 3 reset seen (server).',
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '-h' || name === '--help' || name === 'help') {
    process.stdout.write(topHelp() + '\n');
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-V') {
    process.stdout.write(VERSION + '\n');
    return 0;
  }
  const cmd: Command | undefined = commands.find((c) => c.name === name);
  if (!cmd) {
    process.stderr.write(`ctprobe: unknown command '${name}' (see ctprobe --help)\n`);
    return 2;
  }
  if (rest.includes('-h') || rest.includes('--help')) {
    process.stdout.write(cmd.help.trimEnd() + '\n');
    return 0;
  }
  return cmd.run(rest);
}

// Output piped into `head` and closed early: stop quietly (the lab's exit hook still tears down).
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof CtprobeError) {
      process.stderr.write(`ctprobe: ${err.message}\n`);
      process.exitCode = err.exitCode;
    } else {
      const e = err as Error;
      process.stderr.write(`ctprobe: internal error: ${e?.message ?? String(err)}\n`);
      if (process.env.CTPROBE_DEBUG) process.stderr.write(`${e?.stack ?? ''}\n`);
      process.exitCode = 70;
    }
  },
);
