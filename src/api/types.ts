// The public types of the Segmenter API, shared by the Node entry (`cts-seg`) and the browser entry
// (`cts-seg/web`): both expose the same Segmenter class over these types; only the accepted image and
// model sources differ by platform.
import type { Provider } from '../runtime/providers.js';
import type { PolicyMethod } from '../cts/spec.js';
import type { RGBImage } from '../data/types.js';
import type { ModelCheckpoint } from '../cts/checkpoint.js';
import type { RawImage } from './platform.js';
import type { Precision } from '../nn/params.js';

/**
 * Images segment() accepts, by platform: each platform entry adds its own kinds to this interface
 * (declaration merging: Node adds paths, Buffers and sharp pipelines; the browser adds image elements,
 * bitmaps, canvases, Blobs and video frames), so user code is type-checked against its platform.
 */
export interface ImageInputs {
  raw: RawImage;
}

/** An image segment() accepts on the platform in use (see ImageInputs). */
export type ImageInput = ImageInputs[keyof ImageInputs];

/** Model sources load() accepts, by platform (extended by each platform entry like ImageInputs). */
export interface ModelSources {
  bytes: Uint8Array | ArrayBuffer;
  checkpoint: ModelCheckpoint;
}

/** A model source load() accepts on the platform in use (see ModelSources). */
export type ModelSource = ModelSources[keyof ModelSources];

/** Arithmetic precision of the model: fp32, or int8 products (Linear layers, patch embedding, attention scores; per-channel weights, dynamically quantized activations). */
export type { Precision } from '../nn/params.js';

/** Options of Segmenter.load. */
export interface LoadOptions {
  /** Execution provider, or a preference list; the platform's CPU provider (cpu / wasm) is the fallback. */
  provider?: Provider | Provider[];
  /** Shared superpatches per window, overriding the model's budget (0 turns sharing off). */
  numShared?: number;
  /** Token-sharing policy, overriding the model's: policy_net, no_sharing or random (oracle needs labels). */
  policy?: PolicyMethod;
  /** Arithmetic precision (default fp32). */
  precision?: Precision;
  /** Sliding-window size in pixels (checkpoints only; default the training crop; the positional embedding is resized). */
  windowSize?: number;
  /** Windows per model call (default 4, clamped to the windows an image needs). */
  windowBatch?: number;
  /** Intra-op threads (Node; default: ONNX Runtime's choice). */
  threads?: number;
  /** Largest image accepted, in pixels (default 100 million); larger ones are refused before decoding. */
  maxPixels?: number;
  /** Largest estimated memory of a compiled model graph, in bytes (default: the machine's memory in Node, 4 GiB in a browser); larger windows or batches are refused before compiling. */
  maxMemory?: number;
  /** Check that a checkpoint's weights are finite and its normalisation usable (default true). */
  checkWeights?: boolean;
  /** Browser only: run inference in a Web Worker, keeping the page responsive. */
  worker?: boolean;
  /** ONNX external data files an exported model refers to (bytes, or a URL/path the platform reads). */
  externalData?: { path: string; data: Uint8Array | string }[];
  /** Called with a message when a preferred provider is not available (default: console.warn). */
  onFallback?: (message: string) => void;
}

/** How an image is run through the model. */
export type SegmentMode =
  /** The official protocol: resize the short side to the window, slide windows, merge, resize back. */
  | 'sliding'
  /** One pass: the whole image squeezed to the window, the result resized back. */
  | 'single';

/** Options of segment and segmentBatch. */
export interface SegmentOptions {
  /** Default 'sliding'. */
  mode?: SegmentMode;
  /** Sliding-window stride in pixels (default: the model's, else the window size). */
  windowStride?: number;
  /** Also run the mirrored image and average the two views' probabilities (the official flip test-time augmentation). */
  flip?: boolean;
  /** Also return class probabilities [K, height, width] (memory: 4 K bytes per pixel). */
  probabilities?: boolean;
  /** Also return the coloured mask, the overlay and the shared-token picture. */
  pictures?: boolean;
  /** Seed of the random policy (default 0). */
  seed?: number;
}

/** Pictures of a result, RGB at the image's size. */
export interface SegmentPictures {
  /** The class map in palette colours. */
  mask: RGBImage;
  /** The image blended 50/50 with the mask. */
  overlay: RGBImage;
  /** The image with the regions that shared tokens tinted and outlined. */
  shared: RGBImage;
}

/** Token counts of one window. */
export interface TokenCounts {
  /** Patches of one window (tokens without sharing). */
  patches: number;
  /** Tokens that entered the encoder per window (patches - 3 x shared). */
  tokens: number;
  /** Shared superpatches per window. */
  shared: number;
  /** Windows run for this image. */
  windows: number;
}

/** Wall times in milliseconds. */
export interface Timings {
  /** Reading and decoding the image. */
  decode: number;
  /** Model calls (including the sliding window's copies). */
  inference: number;
  /** Merging, resizing back and argmax. */
  postprocess: number;
  total: number;
}

/** The segmentation of one image. */
export interface SegmentResult {
  width: number;
  height: number;
  /** Class index per pixel, row-major, width x height values. */
  classMap: Uint8Array;
  /** Class names, index = class id. */
  classes: string[];
  /** RGB colour per class. */
  palette: [number, number, number][];
  /**
   * Per pixel, 1 where the pixel lay in a shared superpatch in most of the windows that covered it
   * (width x height); absent when the model shares no tokens.
   */
  maskShared?: Uint8Array;
  /** Per pixel, the fraction of covering windows in which the pixel was shared (width x height). */
  sharedFraction?: Float32Array;
  /** Class probabilities [K, height, width], when asked for. */
  probabilities?: Float32Array;
  /** Pictures, when asked for. */
  pictures?: SegmentPictures;
  tokens: TokenCounts;
  timings: Timings;
}

/** What a loaded model is. */
export interface ModelInfo {
  /** 'checkpoint' (.safetensors compiled here) or 'onnx' (a cts-seg export). */
  format: 'checkpoint' | 'onnx';
  classes: string[];
  palette: [number, number, number][];
  /** Window (height, width). */
  window: [number, number];
  /** Default sliding-window stride. */
  windowStride: number;
  policy: PolicyMethod;
  numShared: number;
  precision: Precision;
  /** Execution provider in use. */
  provider: Provider;
  dataset?: string;
}
