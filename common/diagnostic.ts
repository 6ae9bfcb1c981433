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
    if (!span) return [`error: ${this.message}`, ...this.notes.map((n) => `  note: ${n}`)].join("\n");
    const { line, col } = lineColOf(span.source, span.start);
    const lineStart = span.source.lastIndexOf("\n", span.start - 1) + 1;
    let lineEnd = span.source.indexOf("\n", lineStart);
    if (lineEnd < 0) lineEnd = span.source.length;
    const text = span.source.slice(lineStart, lineEnd).replace(/\t/g, " ");
    const width = Math.max(1, Math.min(span.end, lineEnd) - span.start);
    const gutter = String(line).length;
    return [
      `${span.file}:${line}:${col}: error: ${this.message}`,
      `${" ".repeat(gutter)} |`,
      `${line} | ${text}`,
      `${" ".repeat(gutter)} | ${" ".repeat(col - 1)}^${"~".repeat(width - 1)}`,
      ...this.notes.map((n) => `${" ".repeat(gutter)} = note: ${n}`),
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
