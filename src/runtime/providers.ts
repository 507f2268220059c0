// Execution providers: which exist on which platform, how a user's name is parsed, and the fallback
// rule (every other provider falls back to the platform's CPU provider). This is the one place that
// decides them; the CLI, the Segmenter API and the benchmarks all ask here.
import { CtsError } from '../base/errors.js';
import type { EmitTarget } from '../graph/ir.js';

/** Execution providers cts-seg can use: `cpu`, `webgpu` and `cuda` in Node, `wasm` and `webgpu` in a browser. */
export type Provider = 'cpu' | 'webgpu' | 'cuda' | 'wasm';

/** Where cts-seg runs. */
export type Platform = 'node' | 'web';

/** Providers of each platform, the CPU one (the fallback) first. */
export const PLATFORM_PROVIDERS: Readonly<Record<Platform, readonly Provider[]>> = {
  // cuda needs onnxruntime-node's CUDA files, which its install script downloads only when allowed (README)
  node: ['cpu', 'webgpu', 'cuda'],
  web: ['wasm', 'webgpu'],
};

/** The platform's CPU provider, which every other provider falls back to. */
export function fallbackProvider(platform: Platform): Provider {
  return PLATFORM_PROVIDERS[platform][0]!;
}

/**
 * The ONNX Runtime build whose op choices a graph is emitted with on a provider (EmitTarget):
 * onnxruntime-web's WebAssembly kernels for `wasm`, the standard ones everywhere else.
 */
export function emitTarget(provider: Provider): EmitTarget {
  return provider === 'wasm' ? 'wasm' : 'cpu';
}

/** Parses a user's provider name for a platform (CtsError naming the valid ones). */
export function parseProvider(name: string, platform: Platform = 'node'): Provider {
  const valid = PLATFORM_PROVIDERS[platform];
  if (!(valid as readonly string[]).includes(name)) {
    throw new CtsError(`unknown execution provider '${name}' for ${platform === 'node' ? 'Node' : 'the browser'}: expected ${valid.join(', ')}`);
  }
  return name as Provider;
}

/**
 * Providers to try, in order, for what the user asked (one provider or a preference list; default the
 * CPU provider): the platform's CPU provider is appended when missing, so a GPU provider that cannot
 * start falls back to it (with one message, see CompiledGraph.compile).
 */
export function providerOrder(wanted: Provider | readonly Provider[] | undefined, platform: Platform): Provider[] {
  const list = wanted === undefined ? [] : typeof wanted === 'string' ? [wanted] : [...wanted];
  for (const p of list) parseProvider(p, platform);
  const cpu = fallbackProvider(platform);
  return list.includes(cpu) ? list : [...list, cpu];
}
