/**
 * The tiny template behind every SVG and HTML ctprobe writes: `html\`<p>${text}</p>\`` escapes
 * every interpolated value unless it is already markup (the result of another `html`), so text
 * from a capture or a kernel log can never become markup.
 */

export class Markup {
  constructor(readonly s: string) {}
  toString(): string {
    return this.s;
  }
}

const ESC: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ESC[c]!);
}

function render(v: unknown): string {
  if (v instanceof Markup) return v.s;
  if (Array.isArray(v)) return v.map(render).join('');
  if (v === null || v === undefined || v === false) return '';
  return esc(String(v));
}

export function html(strings: TemplateStringsArray, ...values: unknown[]): Markup {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += render(values[i]) + strings[i + 1]!;
  return new Markup(out);
}

/** A number for an SVG attribute: short, no exponent. */
export function num(n: number): string {
  return String(Math.round(n * 10) / 10);
}

/** Trusted constant markup (a stylesheet written here), never text from input. */
export function raw(constant: string): Markup {
  return new Markup(constant);
}
