/** Small helpers for text a person reads: lines that fit a terminal. */

/** Word-wrap `text` to `width` columns; every line gets `indent`, long words are not broken. */
export function wrapText(text: string, width: number, indent = ''): string[] {
  const out: string[] = [];
  let line = '';
  const room = Math.max(20, width - indent.length);
  for (const word of text.split(/ +/)) {
    if (line && line.length + 1 + word.length > room) {
      out.push(indent + line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line || !out.length) out.push(indent + line);
  return out;
}
