// Reads the textual IR that print.ts writes, checking every node against the registry as it
// goes, so that a mistake in a hand-written pass test points at its token like a DSL error.
// Value ids may be any numbers or names; they are renumbered to node indices in order. A
// graph-valued attribute follows its node's type as `name = graph ...`, a graph with its own
// dims and value ids.
import { Diagnostic, lineColOf, type SourceSpan } from "../../common/diagnostic.ts";
import type { Attrs, AttrValue, Graph, GraphOutput, Node } from "./graph.ts";
import { formatIrType, typeCarriesAttrs } from "./print.ts";
import { type AttrSpec, getOp, normalizeAttrs, type OpDef, OpError, operandArity } from "./registry.ts";
import { type Dim, type DType, isDType, sameType, type TensorType } from "./types.ts";
import { arityMismatch } from "./verify.ts";
import "./ops/index.ts";

type TokenKind = "word" | "number" | "string" | "value" | "punct" | "eof";

interface Token {
  kind: TokenKind;
  text: string;
  start: number;
  end: number;
}

const PUNCT = new Set(["{", "}", "[", "]", "(", ")", "=", ",", ":"]);
const NUMBER = /-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?/y;
const WORD = /[A-Za-z_][A-Za-z0-9_]*/y;
const VALUE = /%[A-Za-z0-9_.]+/y;
const STRING = /"(?:[^"\\\n]|\\.)*"/y;

function tokenize(text: string, at: (start: number, end: number) => SourceSpan): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const match = (re: RegExp): string | undefined => {
    re.lastIndex = i;
    return re.exec(text)?.[0];
  };
  while (i < text.length) {
    const c = text[i];
    if (c === " " || c === "\t" || c === "\r" || c === "\n") {
      i++;
      continue;
    }
    if (c === "#") {
      while (i < text.length && text[i] !== "\n") i++;
      continue;
    }
    let kind: TokenKind;
    let lexeme: string | undefined;
    if (PUNCT.has(c)) [kind, lexeme] = ["punct", c];
    else if (c === "%") [kind, lexeme] = ["value", match(VALUE)];
    else if (c === '"') [kind, lexeme] = ["string", match(STRING)];
    else if (text.startsWith("-inf", i)) [kind, lexeme] = ["number", "-inf"];
    else if (c === "-" || c === "." || (c >= "0" && c <= "9")) [kind, lexeme] = ["number", match(NUMBER)];
    else [kind, lexeme] = ["word", match(WORD)];
    if (lexeme === undefined) {
      const what = c === "%" ? "a value id after %" : c === '"' ? "a closing quote" : `a token, not ${JSON.stringify(c)}`;
      throw new Diagnostic(`expected ${what}`, at(i, i + 1));
    }
    const end = i + lexeme.length;
    // `12abc` or `-infinity`: a number run into a word.
    if (kind === "number" && end < text.length && /[A-Za-z0-9_.]/.test(text[end])) throw new Diagnostic(`malformed number`, at(i, end + 1));
    tokens.push({ kind, text: lexeme, start: i, end });
    i = end;
  }
  tokens.push({ kind: "eof", text: "end of input", start: text.length, end: text.length });
  return tokens;
}

/** An attribute value as written, before the schema says what it must be. */
type RawValue = { kind: "scalar"; token: Token; start: number; end: number } | { kind: "list"; items: Token[]; start: number; end: number };

const ATTR_KIND: Record<AttrSpec["type"], string> = {
  int: "an integer",
  float: "a number",
  bool: "true or false",
  string: "a quoted string",
  dtype: "a dtype",
  ints: "a list of integers",
  floats: "a list of numbers",
  shape: "a shape (sizes and dim names)",
  graph: "a graph, written after the node's type",
};

function numberOf(t: Token): number | undefined {
  if (t.kind === "number") return t.text === "-inf" ? -Infinity : Number(t.text);
  if (t.kind === "word" && t.text === "inf") return Infinity;
  if (t.kind === "word" && t.text === "nan") return NaN;
  return undefined;
}

/** What one graph's text defines; a graph nested in an attribute has its own. */
interface Scope {
  dims: string[];
  nodes: Node[];
  outputs: GraphOutput[];
  /** Value ids as written, to node indices. */
  ids: Map<string, number>;
  /** Where each input and param name was first defined, per op. */
  sourceNames: Map<string, SourceSpan>;
}

class Parser {
  private readonly tokens: Token[];
  private pos = 0;
  private scope!: Scope;

  constructor(
    private readonly text: string,
    private readonly file: string,
  ) {
    this.tokens = tokenize(text, (s, e) => this.span(s, e));
  }

  private span(start: number, end: number): SourceSpan {
    return { file: this.file, source: this.text, start, end };
  }
  private at(t: { start: number; end: number }): SourceSpan {
    return this.span(t.start, t.end);
  }
  private peek(): Token {
    return this.tokens[this.pos];
  }
  private next(): Token {
    const t = this.tokens[this.pos];
    if (t.kind !== "eof") this.pos++;
    return t;
  }
  private isPunct(c: string): boolean {
    const t = this.peek();
    return t.kind === "punct" && t.text === c;
  }
  private fail(expected: string, t = this.peek()): never {
    const found = t.kind === "eof" ? t.text : t.kind === "string" ? `string ${t.text}` : `"${t.text}"`;
    throw new Diagnostic(`expected ${expected}, found ${found}`, this.at(t));
  }
  private expectPunct(c: string): Token {
    if (!this.isPunct(c)) this.fail(`"${c}"`);
    return this.next();
  }
  private expect(kind: TokenKind, what: string): Token {
    if (this.peek().kind !== kind) this.fail(what);
    return this.next();
  }
  /** `[a, b, c]` with items read by `item`; the closing bracket's token is returned too. */
  private list<T>(item: () => T): { items: T[]; open: Token; close: Token } {
    const open = this.expectPunct("[");
    const items: T[] = [];
    while (!this.isPunct("]")) {
      if (items.length) this.expectPunct(",");
      items.push(item());
    }
    return { items, open, close: this.next() };
  }

  parse(): Graph {
    const g = this.graph();
    this.expect("eof", "end of input");
    return g;
  }

  private graph(): Graph {
    const outer = this.scope;
    this.scope = { dims: [], nodes: [], outputs: [], ids: new Map(), sourceNames: new Map() };
    try {
      return this.graphBody();
    } finally {
      this.scope = outer;
    }
  }

  private graphBody(): Graph {
    const keyword = this.expect("word", '"graph"');
    if (keyword.text !== "graph") this.fail('"graph"', keyword);
    const nameToken = this.next();
    if (nameToken.kind !== "word" && nameToken.kind !== "string") this.fail("a graph name", nameToken);
    const name = nameToken.kind === "string" ? this.stringOf(nameToken) : nameToken.text;
    if (this.isPunct("[")) {
      for (const t of this.list(() => this.next()).items) {
        if (t.kind !== "word" && t.kind !== "string") this.fail("a dim name", t);
        const dim = t.kind === "string" ? this.stringOf(t) : t.text;
        if (this.scope.dims.includes(dim)) throw new Diagnostic(`dim ${dim} is declared twice`, this.at(t));
        this.scope.dims.push(dim);
      }
    }
    this.expectPunct("{");
    for (;;) {
      const t = this.peek();
      if (t.kind === "value") this.node();
      else if (t.kind === "word" && t.text === "output") this.output();
      else if (this.isPunct("}")) break;
      else this.fail('a node "%id = op ...", an output or "}"');
    }
    this.next();
    const { dims, nodes, outputs } = this.scope;
    return { name, dims, nodes, outputs };
  }

  private stringOf(t: Token): string {
    try {
      return JSON.parse(t.text) as string;
    } catch {
      throw new Diagnostic(`malformed string ${t.text}`, this.at(t));
    }
  }

  private use(t: Token): number {
    const id = this.scope.ids.get(t.text);
    if (id === undefined) throw new Diagnostic(`${t.text} is not defined`, this.at(t), ["a value must be defined before it is used"]);
    return id;
  }

  private output(): void {
    this.next();
    const nameToken = this.expect("string", "an output name in quotes");
    const name = this.stringOf(nameToken);
    if (this.scope.outputs.some((o) => o.name === name)) throw new Diagnostic(`output ${JSON.stringify(name)} is defined twice`, this.at(nameToken));
    this.expectPunct("=");
    this.scope.outputs.push({ name, node: this.use(this.expect("value", "a value id such as %3")) });
  }

  private node(): void {
    const idToken = this.next();
    if (this.scope.ids.has(idToken.text)) throw new Diagnostic(`${idToken.text} is defined twice`, this.at(idToken));
    this.expectPunct("=");
    const opToken = this.expect("word", "an op name");
    const def = getOp(opToken.text);
    if (!def) throw new Diagnostic(`unknown op ${opToken.text}`, this.at(opToken));

    const operands: number[] = [];
    if (this.isPunct("(")) {
      this.next();
      while (!this.isPunct(")")) {
        if (operands.length) this.expectPunct(",");
        operands.push(this.use(this.expect("value", "a value id such as %3")));
      }
      this.next();
    }
    const { min, max } = operandArity(def);
    if (operands.length < min || operands.length > max) throw new Diagnostic(arityMismatch(def, operands.length), this.at(opToken));

    const attrs: Attrs = {};
    const attrSpans = new Map<string, SourceSpan>();
    if (this.isPunct("{")) {
      this.next();
      while (!this.isPunct("}")) {
        if (attrSpans.size) this.expectPunct(",");
        const key = this.expect("word", "an attribute name");
        const spec = this.attrSpec(def, key, attrSpans);
        this.expectPunct("=");
        const raw = this.rawValue();
        attrs[key.text] = this.attrValue(def, key.text, spec, raw);
        attrSpans.set(key.text, this.at(raw));
      }
      this.next();
    }

    this.expectPunct(":");
    const typeStart = this.peek().start;
    const stated = this.type();
    const typeSpan = this.span(typeStart, this.tokens[this.pos - 1].end);

    // Graph-valued attributes follow the type, each as `name = graph ...`.
    while (this.peek().kind === "word" && this.tokens[this.pos + 1].kind === "punct" && this.tokens[this.pos + 1].text === "=") {
      const key = this.next();
      const spec = this.attrSpec(def, key, attrSpans);
      if (spec.type !== "graph") throw new Diagnostic(`${def.name}: attribute ${key.text} is ${ATTR_KIND[spec.type]}, written in the braces before the type`, this.at(key));
      this.next();
      const start = this.peek().start;
      attrs[key.text] = this.graph();
      attrSpans.set(key.text, this.span(start, this.tokens[this.pos - 1].end));
    }

    if (typeCarriesAttrs(def)) {
      attrs.dtype ??= stated.dtype;
      attrs.shape ??= stated.shape;
    }
    for (const [key, spec] of Object.entries(def.attrs))
      if (attrs[key] === undefined && spec.default === undefined) throw new Diagnostic(`${def.name} needs attribute ${key}`, this.at(opToken));
    let normalized: Attrs;
    let inferred: TensorType;
    try {
      normalized = normalizeAttrs(def, attrs);
      inferred = def.infer(
        operands.map((o) => this.scope.nodes[o].type),
        normalized,
      );
    } catch (e) {
      if (e instanceof OpError) throw new Diagnostic(e.message, this.at(opToken));
      throw e;
    }
    if (!sameType(inferred, stated))
      throw new Diagnostic(`${def.name} gives ${formatIrType(inferred)}, but the stated type is ${formatIrType(stated)}`, typeSpan);

    if (def.name === "input" || def.name === "param") {
      const key = `${def.name} ${JSON.stringify(normalized.name)}`;
      const first = this.scope.sourceNames.get(key);
      if (first) {
        const { line, col } = lineColOf(first.source, first.start);
        throw new Diagnostic(`${key} is defined twice`, attrSpans.get("name"), [`first defined at ${first.file}:${line}:${col}`]);
      }
      this.scope.sourceNames.set(key, attrSpans.get("name")!);
    }

    const id = this.scope.nodes.length;
    this.scope.ids.set(idToken.text, id);
    this.scope.nodes.push({ id, op: def.name, operands, attrs: normalized, type: stated, span: this.span(idToken.start, typeSpan.end) });
  }

  /** The schema of attribute `key` of `def`, which must not be given yet. */
  private attrSpec(def: OpDef, key: Token, given: ReadonlyMap<string, SourceSpan>): AttrSpec {
    const spec = Object.hasOwn(def.attrs, key.text) ? def.attrs[key.text] : undefined;
    if (!spec) {
      const known = Object.keys(def.attrs);
      throw new Diagnostic(`${def.name} has no attribute ${key.text}${known.length ? ` (it takes ${known.join(", ")})` : ""}`, this.at(key));
    }
    if (given.has(key.text)) throw new Diagnostic(`attribute ${key.text} is given twice`, this.at(key));
    return spec;
  }

  private rawValue(): RawValue {
    if (!this.isPunct("[")) {
      const token = this.next();
      if (token.kind === "punct" || token.kind === "eof" || token.kind === "value") this.fail("an attribute value", token);
      return { kind: "scalar", token, start: token.start, end: token.end };
    }
    const { items, open, close } = this.list(() => {
      const t = this.next();
      if (t.kind === "punct" || t.kind === "eof" || t.kind === "value") this.fail("a list item", t);
      return t;
    });
    return { kind: "list", items, start: open.start, end: close.end };
  }

  /** Reads the raw value as the schema's type says, then lets the registry check it. */
  private attrValue(def: OpDef, key: string, spec: AttrSpec, raw: RawValue): AttrValue {
    const illTyped = () =>
      new Diagnostic(`${def.name}: attribute ${key} must be ${ATTR_KIND[spec.type]}, got ${this.text.slice(raw.start, raw.end)}`, this.at(raw));
    let value: AttrValue | undefined;
    const isList = spec.type === "ints" || spec.type === "floats" || spec.type === "shape";
    if (isList !== (raw.kind === "list")) throw illTyped();
    if (raw.kind === "list") {
      const items = raw.items.map((t) => {
        const n = numberOf(t);
        if (spec.type !== "shape") return n;
        if (t.kind === "number") return n;
        if (t.kind !== "word" && t.kind !== "string") return undefined;
        const dim = t.kind === "string" ? this.stringOf(t) : t.text;
        if (!this.scope.dims.includes(dim)) throw new Diagnostic(`dim ${dim} is not declared in the graph header`, this.at(t));
        return dim;
      });
      if (items.some((x) => x === undefined)) throw illTyped();
      value = items as Dim[];
    } else {
      const t = raw.token;
      if (spec.type === "int" || spec.type === "float") value = numberOf(t);
      else if (spec.type === "bool") value = t.kind === "word" && (t.text === "true" || t.text === "false") ? t.text === "true" : undefined;
      else if (spec.type === "string") value = t.kind === "string" ? this.stringOf(t) : undefined;
      else if (spec.type === "dtype") value = t.kind === "word" ? t.text : undefined;
    }
    if (value === undefined) throw illTyped();
    try {
      // The registry's own check (integers, `oneOf`, non-negative sizes), for this key alone.
      return normalizeAttrs({ ...def, attrs: { [key]: spec } }, { [key]: value })[key];
    } catch (e) {
      if (e instanceof OpError) throw new Diagnostic(e.message, this.at(raw));
      throw e;
    }
  }

  private type(): TensorType {
    const dtypeToken = this.expect("word", "a result type such as f32[N, 512]");
    if (!isDType(dtypeToken.text)) throw new Diagnostic(`unknown dtype ${dtypeToken.text}`, this.at(dtypeToken));
    const shape = this.list((): Dim => {
      const t = this.next();
      if (t.kind === "number") {
        const n = Number(t.text);
        if (!Number.isInteger(n) || n < 0 || Object.is(n, -0)) throw new Diagnostic(`a size must be a non-negative integer, got ${t.text}`, this.at(t));
        return n;
      }
      if (t.kind !== "word" && t.kind !== "string") this.fail("a size or a dim name", t);
      const dim = t.kind === "string" ? this.stringOf(t) : t.text;
      if (!this.scope.dims.includes(dim)) throw new Diagnostic(`dim ${dim} is not declared in the graph header`, this.at(t));
      return dim;
    }).items;
    return { dtype: dtypeToken.text as DType, shape };
  }
}

/** Parses the textual IR; every mistake is a Diagnostic pointing at its token. */
export function parseGraph(text: string, file = "<ir>"): Graph {
  return new Parser(text, file).parse();
}
