// Parses .dt source into the AST with ohm-js; a syntax error becomes a Diagnostic.
import { readFileSync } from "node:fs";
import * as ohm from "ohm-js";
import type { Arg, DimEntry, Expr, Ident, ModelDecl, ModelParam, Program, Range, Stmt, TypeExpr } from "./ast.ts";
import { Diagnostic, lineColOf, type SourceSpan } from "../common/diagnostic.ts";
import { formatBytes, readRegularFile } from "../common/files.ts";

const grammar = ohm.grammar(readFileSync(new URL("./difftc.ohm", import.meta.url), "utf8"));

function buildSemantics(file: string, source: string) {
  const semantics = grammar.createSemantics();
  const spanOf = (node: ohm.Node): SourceSpan => ({ file, source, start: node.source.startIdx, end: node.source.endIdx });
  const ident = (node: ohm.Node): Ident => ({ name: node.sourceString, span: spanOf(node) });
  const binary = (op: Expr extends never ? never : string) =>
    function (this: ohm.Node, l: ohm.Node, _op: ohm.Node, r: ohm.Node): Expr {
      return { kind: "binary", op: op as never, left: l.ast(), right: r.ast(), span: spanOf(this) };
    };
  semantics.addOperation("ast", {
    Program: (models) => models.children.map((m) => m.ast()),
    Model(_kw, name, params, _open, body, _close): ModelDecl {
      const ps: ModelParam[] = params.children.length ? params.children[0].ast() : [];
      return { name: ident(name), params: ps, body: body.children.map((s) => s.ast()), span: spanOf(this) };
    },
    ModelParams: (_o, list, _c) => list.asIteration().children.map((p) => p.ast()),
    ModelParam: (name, _eq, value): ModelParam => ({ name: ident(name), default: value.children[0]?.ast() }),
    DimStmt(_kw, names): Stmt {
      return { kind: "dim", names: names.asIteration().children.map(ident), span: spanOf(this) };
    },
    LetStmt(_kw, target, _eq, value): Stmt {
      const t = target.ast() as { targets: Ident[]; tuple: boolean };
      return { kind: "let", ...t, value: value.ast(), span: spanOf(this) };
    },
    Target_tuple: (_o, names, _c) => ({ targets: names.asIteration().children.map(ident), tuple: true }),
    Target_single: (name) => ({ targets: [ident(name)], tuple: false }),
    InputStmt(_kw, name, _colon, type): Stmt {
      return { kind: "input", name: ident(name), type: type.ast(), span: spanOf(this) };
    },
    ParamStmt(_kw, name, _colon, type, _tilde, init): Stmt {
      return { kind: "param", name: ident(name), type: type.ast(), init: init.children[0]?.ast(), span: spanOf(this) };
    },
    OutputStmt(_kw, name, _colon, type, _eq, value): Stmt {
      return { kind: "output", name: ident(name), type: type.children[0]?.ast(), value: value.ast(), span: spanOf(this) };
    },
    SubStmt(_kw, name, array, _eq, model, _o, args, _c): Stmt {
      return { kind: "sub", name: ident(name), array: array.children[0]?.ast(), model: ident(model), args: args.ast(), span: spanOf(this) };
    },
    SubArray: (_o, index, _in, range, _c) => ({ index: ident(index), range: range.ast() }),
    ForStmt(_kw, index, _in, range, _o, body, _c): Stmt {
      return { kind: "for", index: ident(index), range: range.ast(), body: body.children.map((s) => s.ast()), span: spanOf(this) };
    },
    AssignStmt(target, _eq, value): Stmt {
      return { kind: "assign", target: ident(target), value: value.ast(), span: spanOf(this) };
    },
    Range: (from, _dots, to): Range => ({ from: from.ast(), to: to.ast() }),
    TensorType(dtype, _o, dims, _c): TypeExpr {
      return { dtype: ident(dtype), dims: dims.asIteration().children.map((d) => d.ast()), span: spanOf(this) };
    },
    DimEntry_ellipsis(_dots): DimEntry {
      return { kind: "ellipsis", span: spanOf(this) };
    },
    DimEntry_size: (expr): DimEntry => ({ kind: "size", expr: expr.ast() }),
    Args: (list) => list.asIteration().children.map((a) => a.ast()),
    Arg_keyword(name, _eq, value): Arg {
      return { name: name.sourceString, value: value.ast(), span: spanOf(this) };
    },
    Arg_positional(value): Arg {
      return { value: value.ast(), span: spanOf(this) };
    },
    CompareExpr_compare(l, op, r): Expr {
      return { kind: "binary", op: op.sourceString as never, left: l.ast(), right: r.ast(), span: spanOf(this) };
    },
    AddExpr_add: binary("+"),
    AddExpr_sub: binary("-"),
    MulExpr_mul: binary("*"),
    MulExpr_div: binary("/"),
    MulExpr_matmul: binary("@"),
    PowExpr_pow: binary("**"),
    UnaryExpr_neg(_minus, operand): Expr {
      return { kind: "unary", op: "-", operand: operand.ast(), span: spanOf(this) };
    },
    PostfixExpr_call(callee, _o, args, _c): Expr {
      return { kind: "call", callee: callee.ast(), args: args.ast(), span: spanOf(this) };
    },
    PostfixExpr_index(target, _o, index, _c): Expr {
      return { kind: "index", target: target.ast(), index: index.ast(), span: spanOf(this) };
    },
    Primary_paren: (_o, e, _c) => e.ast(),
    Primary_list(_o, items, _c): Expr {
      return { kind: "list", items: items.asIteration().children.map((i) => i.ast()), span: spanOf(this) };
    },
    number(_n): Expr {
      const text = this.sourceString;
      return { kind: "number", value: Number(text), integer: /^\d+$/.test(text), span: spanOf(this) };
    },
    string(_o, chars, _c): Expr {
      return { kind: "string", value: chars.sourceString, span: spanOf(this) };
    },
    ident(_start, _rest): Expr {
      return { kind: "name", name: this.sourceString, span: spanOf(this) };
    },
    _iter: (...children) => children.map((c) => c.ast()),
  });
  return semantics;
}

/**
 * The largest model source parsed. ohm's memo tables hold about 2 KB per source byte (a 1 MiB
 * program took 1.8 GB and a minute), so a larger file is refused instead of exhausting memory;
 * the standard library is 4 KB, a model file a few.
 */
export const MAX_SOURCE_BYTES = 256 * 1024;

/** A model source file's text, refused when it is not a regular file or past MAX_SOURCE_BYTES. */
export function readSource(path: string): string {
  return readRegularFile(path, MAX_SOURCE_BYTES, "model source").toString("utf8");
}

export function parseProgram(source: string, file = "<input>"): Program {
  const whole: SourceSpan = { file, source, start: 0, end: 1 };
  if (source.length > MAX_SOURCE_BYTES) throw new Diagnostic(`${file} is ${formatBytes(source.length)}, more than the ${formatBytes(MAX_SOURCE_BYTES)} a model source may be`);
  try {
    return parseOrThrow(source, file);
  } catch (e) {
    // ohm recurses per nesting level; absurdly deep nesting exhausts the stack.
    if (e instanceof RangeError) throw new Diagnostic("the program nests too deeply to parse", whole);
    throw e;
  }
}

function parseOrThrow(source: string, file: string): Program {
  const match = grammar.match(source);
  if (match.failed()) {
    const at = match.getRightmostFailurePosition();
    // The negative lookahead that keeps keywords out of identifiers is no help to a reader.
    const expected = match.getExpectedText().replace(/not a keyword, |, or not a keyword/g, "");
    const found = source.slice(at).match(/^(\S+)/)?.[1];
    const what = found === undefined ? "end of file" : `'${found.length > 12 ? `${found.slice(0, 12)}…` : found}'`;
    const open = unclosedBracket(source, at);
    const note = open && expected.includes(`"${CLOSERS[open.bracket]}"`) ? [`the '${open.bracket}' at ${file}:${lineCol(source, open.at)} is not closed`] : [];
    throw new Diagnostic(`syntax error: expected ${expected}, found ${what}`, { file, source, start: at, end: at + Math.max(1, found?.length ?? 1) }, note);
  }
  const models: ModelDecl[] = buildSemantics(file, source)(match).ast();
  return { file, source, models };
}

const CLOSERS: Record<string, string> = { "(": ")", "[": "]", "{": "}" };

/** The innermost bracket still open at `end` (comments and strings skipped), for a note at an unclosed one. */
function unclosedBracket(source: string, end: number): { bracket: string; at: number } | undefined {
  const stack: { bracket: string; at: number }[] = [];
  for (let i = 0; i < end; i++) {
    const c = source[i];
    if (c === "#") while (i < end && source[i + 1] !== "\n") i++;
    else if (c === '"') while (i < end && source[i + 1] !== '"' && source[i + 1] !== "\n") i++;
    else if (c in CLOSERS) stack.push({ bracket: c, at: i });
    else if (stack.length && c === CLOSERS[stack.at(-1)!.bracket]) stack.pop();
  }
  return stack.at(-1);
}

function lineCol(source: string, offset: number): string {
  const { line, col } = lineColOf(source, offset);
  return `${line}:${col}`;
}

export function parseFile(path: string): Program {
  return parseProgram(readSource(path), path);
}
