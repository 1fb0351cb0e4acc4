/**
 * One flag table per command (as pwru does): name, type, default, help. The parser and the help
 * text are both generated from it, so help and defaults cannot drift apart.
 */
import { parseArgs } from 'node:util';
import { UsageError } from '../errors.js';
import { formatMs, parseDuration, parseIntFlag } from '../util/duration.js';

interface Common {
  help: string;
  short?: string;
  /** Placeholder in the help text (`--port N`). */
  arg?: string;
  /** Shown in the help instead of the default value (for computed defaults). */
  defaultText?: string;
}
export type FlagSpec =
  | (Common & { type: 'boolean' })
  | (Common & { type: 'string'; default?: string })
  | (Common & { type: 'strings' })
  | (Common & { type: 'choice'; choices: readonly string[]; default?: string })
  | (Common & { type: 'list'; choices: readonly string[]; default?: readonly string[] })
  | (Common & { type: 'int'; default?: number; min?: number; max?: number; multiple?: boolean })
  | (Common & { type: 'duration'; default?: number });

export type FlagTable = Record<string, FlagSpec>;

type Defaulted<S, T> = S extends { default: unknown } ? T : T | undefined;
type ValueOf<S extends FlagSpec> = S extends { type: 'boolean' }
  ? boolean
  : S extends { type: 'strings' }
    ? string[]
    : S extends { type: 'list'; choices: readonly (infer C)[] }
      ? C[]
      : S extends { type: 'choice'; choices: readonly (infer C)[] }
        ? Defaulted<S, C>
        : S extends { type: 'int'; multiple: true }
          ? number[]
          : S extends { type: 'int' | 'duration' }
            ? Defaulted<S, number>
            : Defaulted<S, string>;

type CamelCase<S extends string> = S extends `${infer H}-${infer T}` ? `${H}${Capitalize<CamelCase<T>>}` : S;
/** Parsed flags, keyed by camelCase name (`--no-control` → `noControl`). Durations are in ms. */
export type Flags<T extends FlagTable> = { [K in keyof T & string as CamelCase<K>]: ValueOf<T[K]> };

const camel = (s: string) => s.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());

/** `--offset -100000`: a value that starts with '-' followed by a digit belongs to the flag. */
function joinNegativeValues(argv: string[], table: FlagTable): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const name = a.startsWith('--') ? a.slice(2) : null;
    const spec = name !== null ? table[name] : undefined;
    const next = argv[i + 1];
    if (spec && spec.type !== 'boolean' && next !== undefined && /^-\d/.test(next)) {
      out.push(`${a}=${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}

export function parseFlagTable<T extends FlagTable>(argv: string[], table: T): { flags: Flags<T>; positionals: string[] } {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  for (const [name, s] of Object.entries(table)) {
    const multiple = s.type === 'strings' || (s.type === 'int' && s.multiple === true);
    options[name] = { type: s.type === 'boolean' ? 'boolean' : 'string', ...(s.short ? { short: s.short } : {}), ...(multiple ? { multiple: true } : {}) };
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: joinNegativeValues(argv, table), options, allowPositionals: true, strict: true });
  } catch (e) {
    // node's messages run over several lines and suggest '--flag=-x' syntax: keep the first sentence.
    const first = (e as Error).message.split('\n')[0]!.replace(/\. To specify.*$/, '').replace(/\.$/, '');
    throw new UsageError(`${first} (see --help)`);
  }
  const flags: Record<string, unknown> = {};
  for (const [name, s] of Object.entries(table)) {
    const raw = parsed.values[name];
    const flag = `--${name}`;
    let v: unknown;
    switch (s.type) {
      case 'boolean':
        v = raw === true;
        break;
      case 'string':
        v = raw ?? s.default;
        break;
      case 'strings':
        v = (raw as string[] | undefined) ?? [];
        break;
      case 'choice':
        if (raw !== undefined && !s.choices.includes(raw as string)) throw new UsageError(`${flag}: '${String(raw)}' is not one of ${s.choices.join(', ')}`);
        v = raw ?? s.default;
        break;
      case 'list': {
        if (raw === undefined) {
          v = [...(s.default ?? s.choices)];
          break;
        }
        const items = String(raw).split(',').map((x) => x.trim()).filter(Boolean);
        for (const it of items) if (!s.choices.includes(it)) throw new UsageError(`${flag}: '${it}' is not one of ${s.choices.join(', ')}`);
        v = items;
        break;
      }
      case 'int': {
        const one = (x: string) => parseIntFlag(x, flag, s.min, s.max);
        if (s.multiple) v = ((raw as string[] | undefined) ?? []).flatMap((x) => x.split(',')).map(one);
        else v = raw === undefined ? s.default : one(raw as string);
        break;
      }
      case 'duration':
        v = raw === undefined ? s.default : parseDuration(raw as string, flag);
        break;
    }
    flags[camel(name)] = v;
  }
  return { flags: flags as Flags<T>, positionals: parsed.positionals };
}

function defaultText(s: FlagSpec): string | null {
  if (s.defaultText) return s.defaultText;
  if (!('default' in s) || s.default === undefined) return null;
  if (s.type === 'duration') return formatMs(s.default);
  if (s.type === 'list') return s.default.join(',');
  return String(s.default);
}

/** The "Flags:" section of a help text. */
export function flagHelp(table: FlagTable): string {
  const rows = Object.entries(table).map(([name, s]) => {
    const arg = s.type === 'boolean' ? '' : ` ${s.arg ?? (s.type === 'int' ? 'N' : s.type === 'duration' ? 'DUR' : s.type === 'list' ? 'L' : 'X')}`;
    const left = `${s.short ? `-${s.short}, ` : ''}--${name}${arg}`;
    const choices = s.type === 'choice' || s.type === 'list' ? ` (${s.choices.join(s.type === 'list' ? ',' : '|')})` : '';
    const d = defaultText(s);
    return [left, `${s.help}${choices}${d !== null ? ` [default ${d}]` : ''}`] as const;
  });
  const width = Math.min(24, Math.max(...rows.map(([l]) => l.length)));
  return rows
    .map(([l, r]) => {
      const pad = l.length > width ? `\n${' '.repeat(width + 4)}` : ' '.repeat(width - l.length + 2);
      return `  ${l}${pad}${wrap(r, 96 - width - 4).join(`\n${' '.repeat(width + 4)}`)}`;
    })
    .join('\n');
}

function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.length + 1 + word.length > width) {
      out.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) out.push(line);
  return out;
}
