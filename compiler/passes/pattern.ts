// Declarative rewrites over the graph IR, after tinygrad's PatternMatcher and UPat: a rule is
// a pattern that reads like the math it finds, and a builder for what replaces it; one engine
// applies every rule.
//
//   // reshape(reshape(x)) -> reshape(x): only the outer shape matters.
//   const rule: Rule = {
//     pattern: P.op("reshape", P.op("reshape", P.any("x"))),
//     build: ({ x }, r, node) => r.add("reshape", [r.value(x.id)], { shape: node.attrs.shape }),
//   };
//   const folded = rewrite(graph, [rule]);
//
// Patterns match the graph as it was before the sweep (so `once()` can count readers); the
// builder maps a capture to the graph being built with `r.value(capture.id)`. A name bound
// twice must bind the same node, so `P.op("sub", P.any("x"), P.any("x"))` finds x - x only.
import { InternalError } from "../../common/diagnostic.ts";
import { type Attrs, type Graph, isGraph, type Node, sameAttr } from "../ir/graph.ts";
import { roundScalar } from "../ir/numeric.ts";
import { formatIrType, formatNumber } from "../ir/print.ts";
import { sameType } from "../ir/types.ts";
import { dce } from "./dce.ts";
import { type Rewriter, rebuild } from "./pass.ts";
import { count } from "./statistics.ts";
import { type Uses, uses } from "./uses.ts";

/** Ops whose two operands may be swapped without changing a bit of the result. */
export const COMMUTATIVE: readonly string[] = ["add", "mul", "maximum", "minimum", "eq", "ne"];

/** What a match binds: capture name -> node of the matched graph. */
export type Captures = Readonly<Record<string, Node>>;

/** A test of one candidate node; it sees every capture bound in the node's operands. */
export type Predicate = (node: Node, captures: Captures) => boolean;

export class Pattern {
  constructor(
    /** The ops this pattern accepts; undefined accepts any. */
    readonly ops: readonly string[] | undefined,
    /** Patterns for the operands, in order (either order for a commutative op); undefined does not look. */
    readonly operands: readonly Pattern[] | undefined,
    readonly capture: string | undefined = undefined,
    readonly predicates: readonly Predicate[] = [],
    readonly singleUse = false,
    /** How the pattern prints where its ops say too little (a const's value). */
    readonly label: string | undefined = undefined,
  ) {}

  /** Binds the matched node to `name`; a name bound twice must be the same node. */
  named(name: string): Pattern {
    return new Pattern(this.ops, this.operands, name, this.predicates, this.singleUse, this.label);
  }
  /** Only nodes for which `test` holds (checked after the operands matched). */
  where(test: Predicate): Pattern {
    return new Pattern(this.ops, this.operands, this.capture, [...this.predicates, test], this.singleUse, this.label);
  }
  /** Only nodes whose attributes equal these (lists elementwise, -0 apart from 0, graphs by structure). */
  attrs(expected: Attrs): Pattern {
    return this.where((node) => Object.entries(expected).every(([k, v]) => node.attrs[k] !== undefined && sameAttr(node.attrs[k], v)));
  }
  /** Only a node read by exactly one operand slot and no graph output: absorbing it into its reader duplicates no work. */
  once(): Pattern {
    return new Pattern(this.ops, this.operands, this.capture, this.predicates, true, this.label);
  }
  /** The pattern as math, `mul(x, 1)`: what a rule without a name is counted as in the statistics. */
  toString(): string {
    if (this.label !== undefined) return this.label;
    if (!this.ops) return this.capture ?? "_";
    const operands = this.operands ? `(${this.operands.map(String).join(", ")})` : "";
    return `${this.ops.join("|")}${operands}`;
  }
}

export const P = {
  /** Any node, captured as `name` if given. */
  any: (name?: string): Pattern => new Pattern(undefined, undefined, name),
  /** A node of `op` (or one of several ops); with operand patterns, exactly that many operands. */
  op: (op: string | readonly string[], ...operands: Pattern[]): Pattern =>
    new Pattern(typeof op === "string" ? [op] : op, operands.length ? operands : undefined),
  /** A scalar `const`; with `value`, one whose value rounded to its dtype is that number (Object.is: -0 is not 0). */
  const: (value?: number): Pattern => {
    const p = new Pattern(["const"], undefined);
    return value === undefined ? p : new Pattern(["const"], undefined, undefined, [(node) => Object.is(constValue(node), value)], false, formatNumber(value));
  },
};

/** The value a `const` node takes at run time: its attribute rounded to its dtype. */
export function constValue(node: Node): number {
  return roundScalar(node.type.dtype, node.attrs.value as number);
}

/** The graph a sweep matches against, and who reads each of its values. */
export interface Context {
  graph: Graph;
  uses: Uses;
}

function* matchNode(p: Pattern, node: Node, cx: Context, bound: Captures): Generator<Captures> {
  if (p.ops && !p.ops.includes(node.op)) return;
  if (p.singleUse && !cx.uses.soleReader(node.id)) return;
  let captures = bound;
  if (p.capture !== undefined) {
    const prior = bound[p.capture];
    if (prior && prior.id !== node.id) return;
    if (!prior) captures = { ...bound, [p.capture]: node };
  }
  let orders: (readonly Pattern[])[] = [[]];
  if (p.operands) {
    if (p.operands.length !== node.operands.length) return;
    const swappable = p.operands.length === 2 && p.ops !== undefined && p.ops.every((op) => COMMUTATIVE.includes(op));
    orders = swappable ? [p.operands, [p.operands[1], p.operands[0]]] : [p.operands];
  }
  for (const order of orders) {
    for (const c of matchOperands(order, node, 0, cx, captures)) {
      if (p.predicates.every((test) => test(node, c))) yield c;
    }
  }
}

function* matchOperands(patterns: readonly Pattern[], node: Node, i: number, cx: Context, bound: Captures): Generator<Captures> {
  if (i === patterns.length) {
    yield bound;
    return;
  }
  for (const c of matchNode(patterns[i], cx.graph.nodes[node.operands[i]], cx, bound)) yield* matchOperands(patterns, node, i + 1, cx, c);
}

/** The captures of the first way `pattern` matches at `node`, or undefined. Matching many nodes, pass `uses(graph)` once. */
export function match(pattern: Pattern, node: Node, graph: Graph, u: Uses = uses(graph)): Captures | undefined {
  for (const c of matchNode(pattern, node, { graph, uses: u }, {})) return c;
  return undefined;
}

export interface Rule {
  /** What `--stats` counts the rule's firings as; the pattern's text (`mul(x, 1)`) by default. */
  name?: string;
  pattern: Pattern;
  /**
   * The value that replaces the matched `node`, added through `r`; it must have the node's
   * type. Undefined declines, and the next rule is tried. `matched` is the graph the
   * captures come from, for builders that look further into it.
   */
  build(captures: Captures, r: Rewriter, node: Node, matched: Context): number | undefined;
}

/** A graph that still changes after this many sweeps has rules that undo each other. */
const MAX_SWEEPS = 100;

export function ruleName(rule: Rule): string {
  return rule.name ?? String(rule.pattern);
}

export interface RewriteOptions {
  /**
   * Also rewrite inside graph-valued attributes (a fused node's body), as MLIR's
   * canonicalizer walks into regions: a rule matches there as anywhere, and the node gets
   * the rewritten body. What a rule leaves in a body must still be a valid body of its op.
   */
  bodies?: boolean;
}

/** The node's graph-valued attributes rewritten by the rules, or undefined when none changed. */
function rewrittenBodies(node: Node, rules: readonly Rule[], options: RewriteOptions): Attrs | undefined {
  let attrs: Attrs | undefined;
  for (const [k, v] of Object.entries(node.attrs)) {
    if (!isGraph(v)) continue;
    const body = rewrite(v, rules, options);
    if (!sameAttr(body, v)) (attrs ??= { ...node.attrs })[k] = body;
  }
  return attrs;
}

/**
 * Applies the rules bottom-up, the first that fires at each node, sweep after sweep until
 * none fires; nodes left dead are removed after each sweep, so `once()` counts live readers.
 * Each firing is counted under the rule's name (statistics.ts); a DCE that follows is not.
 */
export function rewrite(graph: Graph, rules: readonly Rule[], options: RewriteOptions = {}): Graph {
  let g = graph;
  for (let sweep = 0; sweep < MAX_SWEEPS; sweep++) {
    const cx: Context = { graph: g, uses: uses(g) };
    let fired = false;
    const next = rebuild(g, (node, r) => {
      const bodies = options.bodies ? rewrittenBodies(node, rules, options) : undefined;
      if (bodies) {
        fired = true;
        return r.add(node.op, node.operands.map((o) => r.value(o)), bodies);
      }
      for (const rule of rules) {
        for (const captures of matchNode(rule.pattern, node, cx, {})) {
          const id = rule.build(captures, r, node, cx);
          if (id === undefined) continue;
          if (!sameType(r.type(id), node.type))
            throw new InternalError(`a rewrite of %${node.id} = ${node.op} gave ${formatIrType(r.type(id))}, not its type ${formatIrType(node.type)}`);
          fired = true;
          count(ruleName(rule));
          return id;
        }
      }
      return r.copy(node);
    });
    if (!fired) return dce(g);
    g = dce(next);
  }
  throw new InternalError(`rewrite of graph ${graph.name} still changes after ${MAX_SWEEPS} sweeps; two rules undo each other`);
}
