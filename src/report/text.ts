/** Small helpers for text a person reads: lines that fit a terminal. */

/** Word-wrap `text` to `width` columns; every line gets `indent`; a word longer than a line is cut. */
export function wrapText(text: string, width: number, indent = ''): string[] {
  const room = Math.max(20, width - indent.length);
  // most lines fit as they are (and have no run of spaces to squeeze)
  const single = !text.includes('  ') && text[0] !== ' ' && text.at(-1) !== ' ';
  if (single && text.length <= room) return [indent + text];
  const out: string[] = [];
  if (single && wrapSingleSpaced(text, room, indent, out)) return out;
  out.length = 0;
  let line = '';
  for (let word of text.split(/ +/)) {
    while (visibleLength(word) > room) {
      if (line) out.push(indent + line);
      out.push(indent + word.slice(0, room));
      word = word.slice(room);
      line = '';
    }
    if (line && line.length + 1 + word.length > room) {
      out.push(indent + line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line || !out.length) out.push(indent + line);
  return out;
}

/**
 * wrapText's greedy fill for words one space apart, none longer than a line: each line is a slice
 * of the text (no word array, no line rebuilt word by word). false for a longer word.
 */
function wrapSingleSpaced(text: string, room: number, indent: string, out: string[]): boolean {
  let lineStart = 0;
  let lineEnd = -1;
  for (let i = 0; i <= text.length; ) {
    let j = text.indexOf(' ', i);
    if (j < 0) j = text.length;
    if (j - i > room) return false;
    if (lineEnd >= 0 && lineEnd - lineStart + 1 + (j - i) > room) {
      out.push(indent + text.slice(lineStart, lineEnd));
      lineStart = i;
    }
    lineEnd = j;
    i = j + 1;
  }
  out.push(indent + text.slice(lineStart, lineEnd));
  return true;
}

/** wrapText's lines joined by newlines (a line that fits, as most do, without an array). */
export function wrapJoined(text: string, width: number, indent = ''): string {
  const room = Math.max(20, width - indent.length);
  if (text.length <= room && !text.includes('  ') && text[0] !== ' ' && text.at(-1) !== ' ') return indent + text;
  return wrapText(text, width, indent).join('\n');
}

const ANSI: Record<'red' | 'green' | 'yellow' | 'bold', [number, number]> = { red: [31, 39], green: [32, 39], yellow: [33, 39], bold: [1, 22] };
let colour = false;

/** Decided once per run, by the output sink: colour only on a terminal, and never with NO_COLOR. */
export function setColour(on: boolean): void {
  colour = on && !('NO_COLOR' in process.env && process.env.NO_COLOR !== '');
}

/** Whether paint colours (for what caches painted text). */
export const colourOn = (): boolean => colour;

export function paint(s: string, style: keyof typeof ANSI): string {
  if (!colour) return s;
  const [a, b] = ANSI[style];
  return `\u001b[${a}m${s}\u001b[${b}m`;
}

/** Visible width (ANSI escapes do not take room). */
export function visibleLength(s: string): number {
  // eslint-disable-next-line no-control-regex
  return s.replace(/\u001b\[\d+m/g, '').length;
}

export function padVisible(s: string, width: number): string {
  return s + ' '.repeat(Math.max(0, width - visibleLength(s)));
}
