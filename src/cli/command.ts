/**
 * A CLI command is a flag table and a call: `defineCommand` generates its parser and its help
 * from the table; `run` calls the library, hands the typed result to a renderer in report/, and
 * returns the exit code. No command formats output itself.
 */
import { EXIT } from '../errors.js';
import { Output, type OutputFormat } from '../report/output.js';
import { flagHelp, parseFlagTable, type FlagTable, type Flags } from './flags.js';

export const OUTPUT_FLAGS = {
  output: { type: 'choice', short: 'o', arg: 'FMT', choices: ['text', 'json'], default: 'text', help: 'for people, or for machines' },
} as const satisfies FlagTable;

export interface CommandContext<T extends FlagTable> {
  flags: Flags<T & typeof OUTPUT_FLAGS>;
  args: string[];
  out: Output;
  /** Aborted on SIGINT/SIGTERM: long-running commands stop, clean up and return. */
  signal: AbortSignal;
}

export interface CommandSpec<T extends FlagTable> {
  /** As in registry.ts, which also holds its one-line summary for `ctprobe --help`. */
  name: string;
  /** Usage lines, each after "ctprobe ". */
  usage: string[];
  /** What it does, for people: paragraphs (plain text, ≤ 96 columns). */
  about: string;
  flags: T;
  /** Text after the flags: examples, notes. */
  more?: string;
  /** This command's exit codes besides the common ones (0 ok, 2 cannot run, 70, 130/143). */
  exits: string;
  /** Takes -o text|json (default true). */
  output?: boolean;
  /** Handles SIGINT/SIGTERM itself (through `signal`, or its own cleanup); otherwise they stop it at once. */
  interruptible?: boolean;
  run(ctx: CommandContext<T>): Promise<number>;
}

export interface Command {
  name: string;
  interruptible: boolean;
  help(): string;
  /** Parse flags only, as `run` would (throws UsageError): scripts and manifests are checked this way. */
  checkFlags(argv: string[]): void;
  run(argv: string[], signal: AbortSignal, stdout?: NodeJS.WritableStream): Promise<number>;
}

export const COMMON_EXITS = `  2 cannot run (bad usage, missing privilege, tool or input)
  70 internal error (a bug: please report it)
  130/143 interrupted by SIGINT/SIGTERM (everything ctprobe created is removed first)`;

export function defineCommand<const T extends FlagTable>(spec: CommandSpec<T>): Command {
  const table: FlagTable = { ...spec.flags, ...(spec.output === false ? {} : OUTPUT_FLAGS) };
  const help = () =>
    [
      `Usage: ${spec.usage.map((u, i) => `${i ? '       ' : ''}ctprobe ${u}`).join('\n')}`,
      '',
      spec.about.trim(),
      '',
      'Flags:',
      flagHelp(table),
      ...(spec.more ? ['', spec.more.trim()] : []),
      '',
      `Exit codes: ${spec.exits}`,
      COMMON_EXITS,
    ].join('\n');
  return {
    name: spec.name,
    interruptible: spec.interruptible ?? false,
    help,
    checkFlags(argv) {
      parseFlagTable(argv, table);
    },
    async run(argv, signal, stdout = process.stdout) {
      const { flags, positionals } = parseFlagTable(argv, table);
      const format = (spec.output === false ? 'text' : (flags as Record<string, unknown>).output) as OutputFormat;
      const out = new Output(format, stdout as NodeJS.WriteStream);
      try {
        return await spec.run({ flags: flags as CommandContext<T>['flags'], args: positionals, out, signal });
      } finally {
        await out.flush();
      }
    },
  };
}

/** --netns / --pid / --pod, for commands that read or act on a host or pod. */
export const TARGET_FLAG_TABLE = {
  netns: { type: 'string', arg: 'NAME', help: 'act in this named network namespace (ip netns list)' },
  pid: { type: 'string', arg: 'PID', help: 'act in the network namespace of this process' },
  pod: { type: 'string', arg: 'NAME', help: 'act in the network namespace of the pod whose hostname is NAME' },
} as const satisfies FlagTable;

export { EXIT };
