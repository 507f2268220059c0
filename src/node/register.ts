// Registers Node's ONNX Runtime and the Node platform of the Segmenter API. Imported by the Node entry
// (src/index.ts) and the CLI, and preloaded by the test runner (`node --import`), so every module
// below them runs on onnxruntime-node without importing it.
import '../runtime/ort.node.js';
import './platform.js';
