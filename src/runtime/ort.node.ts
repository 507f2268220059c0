// Node's ONNX Runtime (onnxruntime-node), registered on import. Every provider runs on the one module;
// a provider it was not built with (cuda without its downloaded files) fails at session creation and
// falls back to cpu there.
import ort from 'onnxruntime-node';
import { registerBackend, type OrtModule } from './backend.js';

const mod = ort as unknown as OrtModule;
// A provider that cannot load (cuda without its files) is logged natively at error level before the
// session creation fails; cts-seg reports that fallback itself in one line, so only fatal logs pass.
mod.env.logLevel = 'fatal';
registerBackend({ platform: 'node', ortFor: async () => mod });
