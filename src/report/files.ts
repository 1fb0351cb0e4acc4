/**
 * Documents written to a path the user named (--html, --svg, --report DIR): the one place output
 * goes to a file instead of the Output sink. Every failure is one line naming the path (exit 2).
 */
import { accessSync, constants, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileError, InputError } from '../errors.js';
import type { Output } from './output.js';

/** A rendered document, where it goes, and the progress line that says so. */
export interface RenderedDocument {
  path: string;
  /** null: nothing to write (the note says why). */
  content: string | null;
  note: string;
}

/** Say before the work, not after it, when a document cannot be written there. */
export function assertWritable(path: string): void {
  try {
    accessSync(dirname(resolve(path)), constants.W_OK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw code === 'ENOENT' ? new InputError(`cannot write there: the directory ${dirname(resolve(path))} does not exist`, path) : fileError(path, e);
  }
}

export function makeDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw fileError(dir, e);
  }
}

export function writeDocuments(docs: readonly RenderedDocument[], out: Output): void {
  for (const d of docs) {
    if (d.content !== null)
      try {
        writeFileSync(d.path, d.content);
      } catch (e) {
        throw fileError(d.path, e);
      }
    if (d.note) out.progress(d.note);
  }
}
