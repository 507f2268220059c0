// The graph layer's public surface: IR, op builders (importing them registers the ops), autodiff
// and ONNX emission.
export * from './ir.js';
export * from './ops/util.js';
export * from './ops/elementwise.js';
export * from './ops/shape.js';
export * from './ops/reduce.js';
export * from './ops/linalg.js';
export * from './ops/indexing.js';
export * from './ops/nn.js';
export * from './ops/loss.js';
export * from './ops/attention.js';
export * from './ops/integer.js';
export * from './ops/quantized.js';
export { grad } from './autodiff.js';
export { nodeMacs, countMacs, attributeMacs, toGmac, fmtGmac, type MacCount } from './macs.js';
export { emitOnnx, OPSET, type EmitOptions } from './onnx.js';
