// Parameters as graph values. A model builder asks for parameters by their official PyTorch
// state-dict name through a ParamFn; the caller decides whether they are baked into the graph as
// constants (inference) or fed as inputs (training, where they come back updated as outputs).
import { GraphError, cast, fmt, quantizeLinearWeight, tensorOf, transposed, type Graph, type Value } from '../graph/index.js';
import type { DType, HostTensor } from '../base/tensor.js';

/** Shape and dtype of one parameter or buffer. */
export interface ParamInfo {
  shape: number[];
  dtype: DType;
}

/** Ordered map from state-dict name to shape/dtype. */
export type ParamSpec = Map<string, ParamInfo>;

/**
 * Returns the graph value of a parameter by its state-dict name. The accessor, not each model
 * builder, decides how weights enter the graph, and so also which products run int8: when
 * `linearInt8` is present, `linear` (src/nn/layers.ts), attention (its q, k, v products and then
 * q·kᵀ), the patch embedding and the decoder's projections ask it for quantized weights and run int8.
 * Carrying the choice here spares threading a precision option through every block, attention and
 * decoder builder, and keeps it out of training graphs (whose inputParams never quantize). A wrapper
 * such as `prefixed` drops it, which is how the policy network computes in float32.
 */
export interface ParamFn {
  (name: string): Value;
  /**
   * The int8 form of a Linear weight `${layer}.weight` [out,in] (absent: Linear layers run in float);
   * `transposed` for a weight stored [in,out] and used as `x @ W` (the mask decoder's projections).
   */
  linearInt8?: (weightName: string, transposed?: boolean) => { q: Value; scale: Value };
}

/** Arithmetic of an inference graph: float32, or int8 products (Linear layers, patch embedding, attention scores) with dynamically quantized activations. */
export type Precision = 'fp32' | 'int8';

/** Every precision, in the order help texts list them. */
export const PRECISIONS: readonly Precision[] = ['fp32', 'int8'];

/** Options of constantParams. */
export interface ConstantParamsOptions {
  /**
   * 'int8': every Linear weight (and the patch embedding and the mask decoder's projections) is
   * quantized per output channel when first asked for and runs as an int8 product, attention scores
   * run in int8, and convolution kernels asked for as float (the policy network's) are stored as
   * float16 and cast to float32 when the model runs (default fp32: everything float32).
   */
  precision?: Precision;
}

/**
 * Bakes weights into the graph as initializers named by their state-dict names (int8 forms:
 * `NAME_quantized` and `NAME_scale`, ONNX Runtime's quantizer's suffixes; float16 storage
 * `NAME__f16`, as packWeights names it), so an exported file can be read back as weights; unknown
 * names are a GraphError.
 */
export function constantParams(g: Graph, weights: Map<string, HostTensor>, o: ConstantParamsOptions = {}): ParamFn {
  const made = new Map<string, Value>();
  const get = (name: string): HostTensor => {
    const t = weights.get(name);
    if (!t) throw new GraphError(`model asked for parameter '${name}', which the weights do not have`);
    return t;
  };
  const int8 = o.precision === 'int8';
  const p: ParamFn = (name) => {
    let v = made.get(name);
    if (!v) {
      const t = get(name);
      // Convolution kernels that stay float products (the policy network) are stored as float16 and
      // cast back: half the bytes in the file, float32 arithmetic. Not int8 codes: on the demo's CTS
      // model those flipped borderline sharing decisions, int8 vs fp32 argmax agreement 99.21%
      // against 99.95% with float16 (docs/BENCHMARKS.md).
      if (int8 && t.dtype === 'float32' && t.shape.length === 4) {
        v = cast(g.constant(tensorOf('float16', t.shape, t.data as Float32Array), `${name}__f16`), 'float32');
      } else {
        v = g.constant(t, name);
      }
      made.set(name, v);
    }
    return v;
  };
  if (int8) {
    // cached per layer: micro-batched graphs apply each Linear several times and must share one copy
    const quant = new Map<string, { q: Value; scale: Value }>();
    p.linearInt8 = (name, transposed = false) => {
      let v = quant.get(name);
      if (!v) {
        const { q, scale } = quantizeLinearWeight(transposed ? transpose2d(get(name)) : get(name));
        v = { q: g.constant(q, `${name}_quantized`), scale: g.constant(scale, `${name}_scale`) };
        quant.set(name, v);
      }
      return v;
    };
  }
  return p;
}

/** W [r,c] -> Wᵀ [c,r] on the host. */
function transpose2d(w: HostTensor): HostTensor {
  if (w.shape.length !== 2 || w.dtype !== 'float32') throw new GraphError(`a matrix weight must be float32 and 2-D, got ${w.dtype}${fmt(w.shape)}`);
  const [r, c] = w.shape as [number, number];
  return { dtype: 'float32', shape: [c, r], data: transposed(w.data as Float32Array, r, c) };
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
