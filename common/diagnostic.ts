// One Diagnostic type for every user-facing error: parse, elaboration, shapes, bad files.
// A neutral module: every stage (dsl, compiler, backends, runtime, cli) raises it.

/** A half-open character range [start, end) in one source file. */
export interface SourceSpan {
  file: string;
  source: string;
  start: number;
  end: number;
}

export interface LineCol {
  line: number; // 1-based
  col: number; // 1-based
}

export function lineColOf(source: string, offset: number): LineCol {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < source.length; i++) {
    if (source.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, col: offset - lineStart + 1 };
}

/**
 * Characters a terminal would act on rather than print: C0 and C1 controls (ESC starts a
 * sequence that can rewrite the screen or the window title), DEL, and the Unicode line
 * separators and bidirectional overrides (which reorder what a reader sees).
 */
const UNPRINTABLE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** Text safe to print: each unprintable character as its escape (`\u001b`). */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

export class Diagnostic extends Error {
  constructor(
    message: string,
    readonly span?: SourceSpan,
    /** Further lines (notes, hints) printed under the caret. */
    readonly notes: string[] = [],
  ) {
    super(message);
    this.name = "Diagnostic";
  }

  get location(): (LineCol & { file: string }) | undefined {
    if (!this.span) return undefined;
    return { file: this.span.file, ...lineColOf(this.span.source, this.span.start) };
  }

  /** `file:line:col: message`, the source line, and a caret under the span. */
  format(): string {
    const span = this.span;
    if (!span) return [`error: ${printable(this.message)}`, ...this.notes.map((n) => `  note: ${printable(n)}`)].join("\n");
    const { line, col } = lineColOf(span.source, span.start);
    const lineStart = span.source.lastIndexOf("\n", span.start - 1) + 1;
    let lineEnd = span.source.indexOf("\n", lineStart);
    if (lineEnd < 0) lineEnd = span.source.length;
    // One column per character, so the caret stays under the span: a tab as a space, anything
    // unprintable as U+FFFD.
    const text = span.source.slice(lineStart, lineEnd).replace(/\t/g, " ").replace(UNPRINTABLE, "\ufffd");
    const width = Math.max(1, Math.min(span.end, lineEnd) - span.start);
    const gutter = String(line).length;
    return [
      `${printable(span.file)}:${line}:${col}: error: ${printable(this.message)}`,
      `${" ".repeat(gutter)} |`,
      `${line} | ${text}`,
      `${" ".repeat(gutter)} | ${" ".repeat(col - 1)}^${"~".repeat(width - 1)}`,
      ...this.notes.map((n) => `${" ".repeat(gutter)} = note: ${printable(n)}`),
    ].join("\n");
  }
}

/** An internal invariant broke: a bug in difftc, not a user mistake. */
export class InternalError extends Error {
  constructor(message: string) {
    super(`internal error (a bug in difftc): ${message}`);
    this.name = "InternalError";
  }
}
