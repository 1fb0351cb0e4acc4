import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from '../errors.js';

/** A CLI subcommand: thin — parse flags, call the modules, print. */
export interface Command {
  name: string;
  summary: string;
  /** Full --help text: usage line, what it does, flags, examples. */
  help: string;
  run(argv: string[]): Promise<number>;
}

export type OutputFormat = 'text' | 'json';

type Options = NonNullable<ParseArgsConfig['options']>;

/** parseArgs with errors turned into one-line usage errors. */
export function parseFlags<O extends Options>(argv: string[], options: O, allowPositionals = true) {
  try {
    return parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals, strict: true });
  } catch (e) {
    throw new UsageError(`${(e as Error).message.replace(/\. To specify.*$/s, '')} (see --help)`);
  }
}

export function outputFormat(value: unknown): OutputFormat {
  if (value === undefined || value === 'text') return 'text';
  if (value === 'json') return 'json';
  throw new UsageError(`-o: '${String(value)}' is not an output format (text or json)`);
}

export const OUTPUT_FLAG = { output: { type: 'string', short: 'o' } } as const;
