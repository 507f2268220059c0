// Parameters as graph values. A model builder asks for parameters by their official PyTorch
// state-dict name through a ParamFn; the caller decides whether they are baked into the graph as
// constants (inference) or fed as inputs (training, where they come back updated as outputs).
import { GraphError, fmt, type Graph, type Value } from '../graph/index.js';
import type { DType, HostTensor } from '../base/tensor.js';

/** Shape and dtype of one parameter or buffer. */
export interface ParamInfo {
  shape: number[];
  dtype: DType;
}

/** Ordered map from state-dict name to shape/dtype. */
export type ParamSpec = Map<string, ParamInfo>;

/** Returns the graph value of a parameter by its state-dict name. */
export type ParamFn = (name: string) => Value;

/** Bakes weights into the graph as initializers; unknown names are a GraphError. */
export function constantParams(g: Graph, weights: Map<string, HostTensor>): ParamFn {
  const made = new Map<string, Value>();
  return (name) => {
    let v = made.get(name);
    if (!v) {
      const t = weights.get(name);
      if (!t) throw new GraphError(`model asked for parameter '${name}', which the weights do not have`);
      v = g.constant(t);
      made.set(name, v);
    }
    return v;
  };
}

/** Declares every parameter of a spec as a graph input (same name); returns the accessor and the inputs. */
export function inputParams(g: Graph, spec: ParamSpec, only?: (name: string) => boolean): { p: ParamFn; inputs: Map<string, Value> } {
  const inputs = new Map<string, Value>();
  for (const [name, info] of spec) if (!only || only(name)) inputs.set(name, g.input(name, info.shape, info.dtype));
  return {
    p: (name) => {
      const v = inputs.get(name);
      if (!v) throw new GraphError(`model asked for parameter '${name}', which is not declared`);
      return v;
    },
    inputs,
  };
}

/** Adds `name` with `shape` to a spec (float32 unless given). */
export function addParam(spec: ParamSpec, name: string, shape: number[], dtype: DType = 'float32'): void {
  if (spec.has(name)) throw new GraphError(`parameter ${name} declared twice`);
  if (shape.some((d) => !Number.isInteger(d) || d <= 0)) throw new GraphError(`parameter ${name}: bad shape ${fmt(shape)}`);
  spec.set(name, { shape, dtype });
}
