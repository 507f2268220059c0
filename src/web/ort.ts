// The browser's ONNX Runtime (onnxruntime-web), registered on import. Two builds are loaded lazily,
// one per provider: the plain wasm build for the CPU path (measured ~4x faster in Chromium than the
// WebGPU-capable builds, whose asyncify/JSEP layer slows every CPU kernel) and the WebGPU build.
// Where their .wasm binaries live is the page's business (a bundler emits them as assets), so it is
// set through `env` rather than guessed here.
import { CtsError } from '../base/errors.js';
import { registerBackend, type OrtModule } from '../runtime/backend.js';
import type { Provider } from '../runtime/providers.js';

/** Where onnxruntime-web's .wasm binaries are: one URL per build. */
export interface WasmFiles {
  /** The plain wasm build's binary (onnxruntime-web/ort-wasm-simd-threaded.wasm), used by the wasm provider. */
  wasm?: string;
  /** The WebGPU build's binary (onnxruntime-web/ort-wasm-simd-threaded.asyncify.wasm), used by the webgpu provider. */
  webgpu?: string;
}

/** Settings of the browser build, read when a model is loaded (like transformers.js `env`). */
export interface WebEnv {
  /**
   * Where onnxruntime-web finds its .wasm binaries: a folder URL ending in '/', or each build's file
   * URL. Default: onnxruntime-web's own lookup (next to its module). With Vite, import each binary
   * with `?url` and set both.
   */
  wasmPaths: string | WasmFiles | undefined;
  /**
   * WebAssembly threads (default 1: more threads need cross-origin isolation, i.e. COOP/COEP
   * headers, which a plain static server does not send).
   */
  numThreads: number;
  /** URL of the worker script for `worker: true` (default: worker.js next to this module, found by bundlers). */
  workerUrl: string | URL | undefined;
}

/** The browser build's settings; change them before the first Segmenter.load. */
export const env: WebEnv = { wasmPaths: undefined, numThreads: 1, workerUrl: undefined };

type GpuNavigator = { gpu?: { requestAdapter(): Promise<unknown> } };

const loaded = new Map<Provider, Promise<OrtModule>>();

/** The configured onnxruntime-web build for a provider; rejects when the provider cannot run here. */
async function ortFor(provider: Provider): Promise<OrtModule> {
  if (provider === 'webgpu') {
    const gpu = (globalThis.navigator as GpuNavigator | undefined)?.gpu;
    // an adapter is what WebGPU needs to run at all; ORT would fail later with a less clear message
    if (!gpu || !(await gpu.requestAdapter())) throw new CtsError('no WebGPU adapter');
  } else if (provider !== 'wasm') {
    throw new CtsError(`the ${provider} provider is not available in the browser (expected wasm or webgpu)`);
  }
  let m = loaded.get(provider);
  if (!m) {
    m = (provider === 'webgpu' ? import('onnxruntime-web/webgpu') : import('onnxruntime-web/wasm')) as Promise<unknown> as Promise<OrtModule>;
    loaded.set(provider, m);
    m.catch(() => loaded.delete(provider));
  }
  const ort = await m;
  configure(ort, provider);
  return ort;
}

function configure(ort: OrtModule, provider: Provider): void {
  const w = ort.env.wasm;
  const paths = env.wasmPaths;
  if (typeof paths === 'string') w.wasmPaths = paths;
  else if (paths) {
    const file = provider === 'webgpu' ? paths.webgpu : paths.wasm;
    if (file) w.wasmPaths = { wasm: file };
  }
  w.numThreads = env.numThreads;
  // ORT's own proxy worker would load a second copy of the runtime; `worker: true` moves all of cts-seg instead
  w.proxy = false;
}

registerBackend({ platform: 'web', ortFor });
