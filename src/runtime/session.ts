// The runtime layer: compile a Graph into an ONNX Runtime session once, run it many times.
// Execution providers are tried in order (like onnxruntime-common's backend registry): a provider
// that cannot start (e.g. WebGPU without an adapter) is reported once and the next one is used;
// if none starts, one error lists every provider's reason.
import type { InferenceSession, Tensor } from 'onnxruntime-common';
import { CtsError } from '../base/errors.js';
import { emitOnnx, type EmitOptions } from '../graph/onnx.js';
import type { DType, EmitTarget, Graph, HostTensor } from '../graph/ir.js';
import { backend, type OrtModule } from './backend.js';
import { emitTarget, providerOrder, type Provider } from './providers.js';

export type { Provider } from './providers.js';

/** How to build a session. */
export interface CompileOptions {
  /** Provider, or providers in order of preference (default: the platform's CPU provider, which every other falls back to). */
  provider?: Provider | Provider[];
  /** Intra-op threads (default: ORT's choice, i.e. the physical cores). */
  threads?: number;
  /** Graph optimisation level (default 'all'). */
  optimization?: 'disabled' | 'basic' | 'extended' | 'all';
  /** Called once with a message when a preferred provider is unavailable (default: console.warn). */
  onFallback?: (message: string) => void;
  /** Passed to the emitter. */
  emit?: EmitOptions;
  /** ONNX external data files the model refers to (an exported model whose weights are stored beside it). */
  externalData?: { path: string; data: Uint8Array }[];
}

interface InputSpec {
  shape: readonly number[];
  dtype: DType;
}

const warned = new Set<string>();

/** A graph compiled into an ORT session with checked, typed-array inputs and outputs. */
export class CompiledGraph {
  private constructor(
    private readonly ort: OrtModule,
    private readonly session: InferenceSession,
    /** The provider the session runs on. */
    readonly provider: Provider,
    private readonly inputs: Map<string, InputSpec>,
    /** Names of the outputs, in graph order. */
    readonly outputNames: string[],
  ) {}

  /** Emits `graph` (or takes ready ONNX bytes) and creates the session. */
  static async compile(graph: Graph | Uint8Array, opts: CompileOptions = {}): Promise<CompiledGraph> {
    const be = backend();
    const errors: string[] = [];
    // a Graph is emitted for each provider's build (emitTarget); ready bytes are taken as they are
    const emitted = new Map<EmitTarget, Uint8Array>();
    const bytesFor = (provider: Provider): Uint8Array => {
      if (graph instanceof Uint8Array) return graph;
      const target = opts.emit?.target ?? emitTarget(provider);
      let b = emitted.get(target);
      if (!b) emitted.set(target, (b = emitOnnx(graph, { ...opts.emit, target })));
      return b;
    };
    for (const provider of providerOrder(opts.provider, be.platform)) {
      // outside the try: a graph that cannot be emitted is an error of the graph, not of the provider
      const bytes = bytesFor(provider);
      try {
        const ort = await be.ortFor(provider);
        const session = await ort.InferenceSession.create(bytes, {
          executionProviders: [provider],
          graphOptimizationLevel: opts.optimization ?? 'all',
          // Memory patterns pre-plan peak arenas; measured to cost ~1.5 GB extra at no speed gain.
          enableMemPattern: false,
          ...(opts.threads ? { intraOpNumThreads: opts.threads } : {}),
          ...(opts.externalData ? { externalData: opts.externalData } : {}),
          logSeverityLevel: 3,
        });
        if (errors.length) {
          const msg = `${errors.join('; ')}; running on the ${provider} provider instead`;
          // the default report is said once per process; a caller's own handler hears every fallback
          if (opts.onFallback) opts.onFallback(msg);
          else if (!warned.has(msg)) {
            warned.add(msg);
            console.warn(`cts-seg: ${msg}`);
          }
        }
        const inputs = new Map<string, InputSpec>();
        if (!(graph instanceof Uint8Array)) {
          for (const v of graph.inputs) if (session.inputNames.includes(v.name!)) inputs.set(v.name!, { shape: v.shape, dtype: v.dtype });
        }
        return new CompiledGraph(ort, session, provider, inputs, [...session.outputNames]);
      } catch (e) {
        errors.push(`${provider}: ${firstLine(e)}`);
      }
    }
    throw new CtsError(`no execution provider could run the graph (${errors.join('; ')})`);
  }

  /** Names of the inputs the session needs (inputs that no output depends on are dropped). */
  get inputNames(): string[] {
    return [...this.session.inputNames];
  }

  /**
   * Runs the session. Extra feeds that the graph does not need are ignored. `into` gives
   * preallocated buffers for some outputs (their exact dtype and shape), filled in place: a large
   * output (e.g. 1.26 GB of logits for 8 crops of 512x512 and 150 classes) then costs one copy into
   * a warm buffer instead of a fresh allocation on every run.
   */
  async run(feeds: Record<string, HostTensor>, outputs?: string[], into?: Record<string, HostTensor>): Promise<Record<string, HostTensor>> {
    const ortFeeds: Record<string, Tensor> = {};
    for (const name of this.session.inputNames) {
      const t = feeds[name];
      if (!t) throw new CtsError(`missing graph input '${name}'`);
      const spec = this.inputs.get(name);
      if (spec) {
        if (t.dtype !== spec.dtype || t.shape.length !== spec.shape.length || t.shape.some((d, i) => d !== spec.shape[i])) {
          throw new CtsError(`input '${name}' is ${t.dtype}[${t.shape.join(',')}], the graph expects ${spec.dtype}[${spec.shape.join(',')}]`);
        }
      }
      ortFeeds[name] = new this.ort.Tensor(t.dtype, t.data as Float32Array, [...t.shape]);
    }
    const names = outputs ?? this.outputNames;
    let res: InferenceSession.ReturnType;
    if (into) {
      const fetches: Record<string, Tensor | null> = {};
      for (const n of names) {
        const t = into[n];
        fetches[n] = t ? new this.ort.Tensor(t.dtype, t.data as Float32Array, [...t.shape]) : null;
      }
      res = await this.session.run(ortFeeds, fetches);
    } else res = await this.session.run(ortFeeds, names);
    const out: Record<string, HostTensor> = {};
    for (const [k, v] of Object.entries(res)) {
      out[k] = { dtype: v.type as DType, shape: [...v.dims], data: v.data as HostTensor['data'] };
    }
    return out;
  }

  /** Frees the native session. */
  async release(): Promise<void> {
    await this.session.release();
  }
}

/** The useful part of an ORT error: no source path, no assertion text, one line. */
function firstLine(e: unknown): string {
  const line = String(e instanceof Error ? e.message : e).split('\n')[0]!;
  const tail = line.includes(' was false. ') ? line.slice(line.indexOf(' was false. ') + 12) : line.replace(/^\/\S+:\d+ /, '');
  return tail.slice(0, 200);
}

/** Convenience: compile, run once, release. */
export async function runOnce(graph: Graph, feeds: Record<string, HostTensor> = {}, opts: CompileOptions = {}): Promise<Record<string, HostTensor>> {
  const s = await CompiledGraph.compile(graph, opts);
  try {
    return await s.run(feeds);
  } finally {
    await s.release();
  }
}
