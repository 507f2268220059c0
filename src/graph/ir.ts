// The static tensor graph IR. Hand-written because no JS library builds ONNX graphs with
// static shape inference *and* lets us attach our own reverse-mode gradient rules; ORT only executes.
//
// A Graph is a list of Nodes in creation order (which is always a topological order: a node can
// only consume Values that exist). Every Value has a fixed shape and dtype, checked when the node
// that makes it is built, so shape errors surface in TypeScript with a readable message rather
// than as an ORT failure at session creation.
import type { DType, HostTensor } from '../base/tensor.js';

export type { DType, HostTensor };

/** ONNX TensorProto element type of each dtype (initializers, graph inputs and outputs, Cast targets). */
export const ONNX_ELEM: Record<DType, number> = { float32: 1, uint8: 2, int8: 3, int32: 6, int64: 7, bool: 9, float16: 10, float64: 11 };

/** Attribute values carried by a node (interpreted by the op's definition). */
export type AttrValue = number | boolean | string | number[] | HostTensor | undefined;
export type Attrs = Record<string, AttrValue>;

/** Where a Value comes from. */
export type ValueKind = 'input' | 'const' | 'node';

/** One tensor in the graph: static shape and dtype, produced by an input, a constant or a node. */
export class Value {
  /** Set when the value is a graph output or input, used as the ONNX name; for a constant, the initializer's name when given. */
  name: string | undefined;
  constructor(
    readonly graph: Graph,
    readonly id: number,
    readonly shape: readonly number[],
    readonly dtype: DType,
    readonly kind: ValueKind,
    readonly node?: Node,
    readonly constData?: HostTensor,
  ) {}
  /** Number of dimensions. */
  get rank(): number {
    return this.shape.length;
  }
  /** Number of elements. */
  get size(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }
  /** Human-readable description for error messages, e.g. `float32[2,3,96,96]`. */
  toString(): string {
    return `${this.name ? this.name + ':' : ''}${this.dtype}[${this.shape.join(',')}]`;
  }
}

/** One operation: op name (an entry of the op registry), inputs, attributes and outputs. */
export class Node {
  outputs: Value[] = [];
  constructor(
    readonly id: number,
    readonly op: string,
    readonly inputs: readonly Value[],
    readonly attrs: Attrs,
  ) {}
}

/** Shape and dtype of an op output, computed by the op's `infer`. */
export interface OutSpec {
  shape: number[];
  dtype: DType;
}

/** Context given to gradient rules. */
export interface GradCtx {
  node: Node;
  inputs: readonly Value[];
  outputs: readonly Value[];
  /** Gradient of the loss w.r.t. each output, null where no gradient flows. */
  gOut: readonly (Value | null)[];
  /** Whether the gradient w.r.t. input i is wanted (skip work for the others). */
  needs(i: number): boolean;
}

/**
 * The ONNX Runtime builds a graph can be emitted for, where an op's fastest formulation differs between
 * them: 'cpu' (onnxruntime-node's CPU provider, and the default for every other) or 'wasm'
 * (onnxruntime-web's WebAssembly build). The values a graph computes are the same either way, up to
 * float32 rounding.
 */
export const EMIT_TARGETS = ['cpu', 'wasm'] as const;

/** One of EMIT_TARGETS. */
export type EmitTarget = (typeof EMIT_TARGETS)[number];

/** Minimal view of the ONNX emitter that op definitions use to lower themselves. */
export interface EmitCtx {
  /** The build the graph is emitted for (see EmitTarget). */
  readonly target: EmitTarget;
  /** ONNX name of a graph value. */
  name(v: Value): string;
  /** Adds an ONNX node; returns its output names (fresh ones unless given). */
  node(opType: string, inputs: string[], outputs: number | string[], attrs?: OnnxAttrs, domain?: string): string[];
  /** Adds an initializer and returns its name. */
  constant(t: HostTensor): string;
}

/** ONNX attribute with an explicit type (ONNX distinguishes ints from floats). */
export type OnnxAttr =
  | { i: number }
  | { f: number }
  | { ints: number[] }
  | { floats: number[] }
  | { s: string }
  | { t: HostTensor };
export type OnnxAttrs = Record<string, OnnxAttr>;

/** Everything the system knows about one op. */
export interface OpDef {
  /** Checks inputs/attrs and returns the output specs; throws GraphError on misuse. */
  infer(inputs: readonly Value[], attrs: Attrs): OutSpec[];
  /** Reverse-mode rule. */
  grad?(ctx: GradCtx): (Value | null)[];
  /** Outputs are constants w.r.t. the inputs (TopK indices, StopGradient). Without this flag and
   *  without `grad`, autodiff refuses to differentiate through the op instead of silently dropping it. */
  stopsGradient?: boolean;
  /** Lowering to ONNX nodes; `outs` are the names the node's outputs must have. */
  emit(node: Node, ctx: EmitCtx, outs: string[]): void;
}

/** A shape or usage error found while building a graph. */
export class GraphError extends Error {
  override name = 'GraphError';
}

const registry = new Map<string, OpDef>();

/** Registers an op definition under a name (once). */
export function defineOp(name: string, def: OpDef): void {
  if (registry.has(name)) throw new Error(`op ${name} defined twice`);
  registry.set(name, def);
}

/** Looks up an op definition. */
export function opDef(name: string): OpDef {
  const d = registry.get(name);
  if (!d) throw new GraphError(`unknown op ${name}`);
  return d;
}

/** Names of all registered ops (for coverage tests). */
export function registeredOps(): string[] {
  return [...registry.keys()].sort();
}

/** A graph under construction. */
export class Graph {
  readonly nodes: Node[] = [];
  readonly inputs: Value[] = [];
  readonly outputs: { name: string; value: Value }[] = [];
  private nextId = 0;
  private readonly inputNames = new Set<string>();

  /** Declares a graph input (data, parameters, optimizer state...). */
  input(name: string, shape: readonly number[], dtype: DType = 'float32'): Value {
    if (this.inputNames.has(name)) throw new GraphError(`graph input '${name}' declared twice`);
    checkShape(shape, `input '${name}'`);
    const v = new Value(this, this.nextId++, [...shape], dtype, 'input');
    v.name = name;
    this.inputNames.add(name);
    this.inputs.push(v);
    return v;
  }

  /**
   * Embeds a constant tensor (an ONNX initializer). `name`, when given, names the initializer (the
   * official state-dict name of a weight, so that an exported file can be read back as weights);
   * a name already taken by an input or another constant gets a numeric suffix when emitted.
   */
  constant(t: HostTensor, name?: string): Value {
    checkShape(t.shape, 'constant');
    const v = new Value(this, this.nextId++, [...t.shape], t.dtype, 'const', undefined, t);
    if (name !== undefined) v.name = name;
    return v;
  }

  /** Adds a node of a registered op; returns its outputs. */
  apply(op: string, inputs: readonly Value[], attrs: Attrs = {}): Value[] {
    for (const v of inputs) {
      if (v.graph !== this) throw new GraphError(`${op}: input ${v} belongs to another graph`);
    }
    const def = opDef(op);
    let specs: OutSpec[];
    try {
      specs = def.infer(inputs, attrs);
    } catch (e) {
      if (e instanceof GraphError) {
        e.message = `${op}(${inputs.map(String).join(', ')}): ${e.message}`;
      }
      throw e;
    }
    const node = new Node(this.nextId++, op, [...inputs], attrs);
    node.outputs = specs.map((s) => new Value(this, this.nextId++, s.shape, s.dtype, 'node', node));
    this.nodes.push(node);
    return node.outputs;
  }

  /** Same as apply for single-output ops. */
  apply1(op: string, inputs: readonly Value[], attrs: Attrs = {}): Value {
    return this.apply(op, inputs, attrs)[0]!;
  }

  /** Marks a value as a named graph output. */
  output(name: string, v: Value): void {
    if (this.outputs.some((o) => o.name === name)) throw new GraphError(`graph output '${name}' declared twice`);
    if (this.inputNames.has(name)) throw new GraphError(`graph output '${name}' clashes with an input name`);
    this.outputs.push({ name, value: v });
  }

  /** Finds a declared input by name. */
  getInput(name: string): Value {
    const v = this.inputs.find((x) => x.name === name);
    if (!v) throw new GraphError(`graph has no input '${name}'`);
    return v;
  }
}

/**
 * The part of a graph that `roots` need: the nodes computing them and everything upstream, and every
 * value those nodes read (inputs and constants included). ONNX emission drops the rest as dead code;
 * the MAC counter counts only this part, so a side branch that is built but not used costs nothing.
 */
export function liveSet(graph: Graph, roots: readonly Value[]): { nodes: Set<Node>; values: Set<Value> } {
  const values = new Set<Value>(roots);
  const nodes = new Set<Node>();
  // nodes are in topological order, so one backward sweep sees every consumer before its producers
  for (let i = graph.nodes.length - 1; i >= 0; i--) {
    const n = graph.nodes[i]!;
    if (!n.outputs.some((o) => values.has(o))) continue;
    nodes.add(n);
    for (const v of n.inputs) values.add(v);
  }
  return { nodes, values };
}

function checkShape(shape: readonly number[], what: string): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new GraphError(`${what}: bad shape [${shape.join(',')}]`);
  }
}

/** Number of elements of a shape. */
export function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Normalises a possibly negative axis against a rank. */
export function normAxis(axis: number, rank: number, what = 'axis'): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) throw new GraphError(`${what} ${axis} out of range for rank ${rank}`);
  return a;
}

/** True for dtypes that carry gradients. */
export function isFloat(d: DType): boolean {
  return d === 'float32' || d === 'float64';
}

/** Formats a shape for messages. */
export function fmt(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}
