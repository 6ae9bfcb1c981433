// The AST of a .dt file. Every node keeps its source span for diagnostics.
import type { SourceSpan } from "../common/diagnostic.ts";

export type Expr =
  | { kind: "number"; value: number; integer: boolean; span: SourceSpan }
  | { kind: "string"; value: string; span: SourceSpan }
  | { kind: "name"; name: string; span: SourceSpan }
  | { kind: "list"; items: Expr[]; span: SourceSpan }
  | { kind: "unary"; op: "-"; operand: Expr; span: SourceSpan }
  | { kind: "binary"; op: BinaryOp; left: Expr; right: Expr; span: SourceSpan }
  | { kind: "call"; callee: Expr; args: Arg[]; span: SourceSpan }
  | { kind: "index"; target: Expr; index: Expr; span: SourceSpan };

export type BinaryOp = "+" | "-" | "*" | "/" | "@" | "**" | "<" | "<=" | ">" | ">=" | "==" | "!=";

export interface Arg {
  name?: string; // keyword arguments
  value: Expr;
  span: SourceSpan;
}

export interface Ident {
  name: string;
  span: SourceSpan;
}

/** `[...]` entries of a tensor type: a size expression or `...` (any leading dims). */
export type DimEntry = { kind: "ellipsis"; span: SourceSpan } | { kind: "size"; expr: Expr };

export interface TypeExpr {
  dtype: Ident;
  dims: DimEntry[];
  span: SourceSpan;
}

export interface Range {
  from: Expr;
  to: Expr;
}

export type Stmt =
  | { kind: "dim"; names: Ident[]; span: SourceSpan }
  | { kind: "let"; targets: Ident[]; tuple: boolean; value: Expr; span: SourceSpan }
  | { kind: "input"; name: Ident; type: TypeExpr; span: SourceSpan }
  | { kind: "param"; name: Ident; type: TypeExpr; init?: Expr; span: SourceSpan }
  | { kind: "output"; name: Ident; type?: TypeExpr; value: Expr; span: SourceSpan }
  | { kind: "sub"; name: Ident; array?: { index: Ident; range: Range }; model: Ident; args: Arg[]; span: SourceSpan }
  | { kind: "for"; index: Ident; range: Range; body: Stmt[]; span: SourceSpan }
  | { kind: "assign"; target: Ident; value: Expr; span: SourceSpan };

export interface ModelParam {
  name: Ident;
  default?: Expr;
}

export interface ModelDecl {
  name: Ident;
  params: ModelParam[];
  body: Stmt[];
  span: SourceSpan;
}

export interface Program {
  file: string;
  source: string;
  models: ModelDecl[];
}
