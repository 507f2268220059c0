// The ONNX Runtime build the runtime layer runs on, registered once by a platform adapter:
// `runtime/ort.node.ts` (onnxruntime-node) or `web/ort.ts` (onnxruntime-web). The core imports only
// onnxruntime-common's types, so the same graph code runs in Node and in a browser.
import type { Env, InferenceSession, Tensor } from 'onnxruntime-common';
import { CtsError } from '../base/errors.js';
import type { Platform, Provider } from './providers.js';

/** The part of an onnxruntime module (node or web) that cts-seg uses. */
export interface OrtModule {
  InferenceSession: typeof InferenceSession;
  Tensor: typeof Tensor;
  env: Env;
}

/** A platform's ONNX Runtime. */
export interface Backend {
  platform: Platform;
  /**
   * The onnxruntime module that runs `provider` (the browser has one build for wasm and another for
   * WebGPU); rejects with the reason when the provider cannot run here (e.g. no WebGPU adapter).
   */
  ortFor(provider: Provider): Promise<OrtModule>;
}

let current: Backend | undefined;

/** Registers the platform's ONNX Runtime (the node and web entry points do this on import). */
export function registerBackend(b: Backend): void {
  current = b;
}

/** The registered backend; a CtsError says how to get one when none is. */
export function backend(): Backend {
  if (!current) {
    throw new CtsError("no ONNX Runtime backend is registered: import 'cts-seg' (Node) or 'cts-seg/web' (browser) rather than an internal module");
  }
  return current;
}
