// Segmenter (segm/model/segmenter.py): pad to a patch multiple, encode, drop CLS, decode per token,
// put the tokens on the patch grid, bilinear x16 upsampling, crop the padding away. Which tokens
// enter the encoder and how they return to the grid is a TokenLayout; the plain layout is one token
// per patch, and CTS (src/cts) provides the shared one.
import { GraphError, pad, reshape, resizeBilinear, slice, transpose, type Value } from '../graph/index.js';
import type { BlockHooks } from '../nn/layers.js';
import type { ParamFn, ParamSpec } from '../nn/params.js';
import type { SegmenterConfig } from './config.js';
import { decode, decoderSpec } from './decoder.js';
import { embedTokens, encode, patchEmbed, posGrid, vitSpec } from './vit.js';

/** What a token layout receives: the padded image and ways to embed pixels and positions. */
export interface LayoutContext {
  /** Padded image [B,3,Hp,Wp]. */
  image: Value;
  /** Patch grid of the padded image. */
  gh: number;
  gw: number;
  /** Patch embedding of any image whose sides are patch multiples -> [B, h*w, D]. */
  embed: (img: Value) => Value;
  /** Positional embeddings of the grid [1, gh*gw, D]. */
  pos: Value;
}

/** Decides the encoder's token set and maps per-token outputs back to the grid. */
export interface TokenLayout {
  /** Tokens [B,N,D] and their positional embeddings [1|B,N,D]. */
  embed(ctx: LayoutContext): { patches: Value; pos: Value };
  /** Per-token scores [B,N,K] -> grid [B,K,gh,gw]. */
  toGrid(perToken: Value, gh: number, gw: number): Value;
}

/** One token per patch, row-major (the original Segmenter). */
export const plainLayout: TokenLayout = {
  embed: (c) => ({ patches: c.embed(c.image), pos: c.pos }),
  toGrid: (t, gh, gw) => {
    const [b, , k] = t.shape as [number, number, number];
    return reshape(transpose(t, [0, 2, 1]), [b, k, gh, gw]);
  },
};

/** Every parameter of a Segmenter, in state-dict order (encoder then decoder). */
export function segmenterSpec(cfg: SegmenterConfig): ParamSpec {
  const spec: ParamSpec = new Map();
  vitSpec(spec, cfg);
  decoderSpec(spec, cfg);
  return spec;
}

/** Options of buildSegmenter. */
export interface SegmenterBuildOptions {
  /** Token layout (default: one token per patch). */
  layout?: TokenLayout;
  /** Pad the input to a multiple of this many pixels (default: the patch size). */
  padMultiple?: number;
  /** Stochastic-layer hooks for the encoder and decoder blocks (training). */
  encoderHooks?: BlockHooks;
  decoderHooks?: BlockHooks;
  /** Hook on the embedded tokens (encoder dropout during training). */
  afterEmbed?: (x: Value) => Value;
}

/** The Segmenter graph's outputs, intermediates included for parity checks. */
export interface SegmenterOutputs {
  /** [B,K,H,W] class scores at input resolution. */
  logits: Value;
  /** [B,1+N,D] input of encoder block 0. */
  tokensEmbedded: Value;
  /** [B,1+N,D] encoder output after the final LayerNorm. */
  encoderOut: Value;
  /** [B,N,K] decoder output per token. */
  masksTokens: Value;
  /** [B,K,gh,gw] decoder output on the patch grid. */
  masksGrid: Value;
}

/** Builds the Segmenter forward on a normalised image [B,3,H,W] (any H, W). */
export function buildSegmenter(x: Value, p: ParamFn, cfg: SegmenterConfig, o: SegmenterBuildOptions = {}): SegmenterOutputs {
  if (x.rank !== 4 || x.shape[1] !== 3) throw new GraphError(`Segmenter input must be [B,3,H,W], got ${x}`);
  const [, , h, w] = x.shape as [number, number, number, number];
  const m = o.padMultiple ?? cfg.patch_size;
  if (m % cfg.patch_size) throw new GraphError(`pad multiple ${m} is not a multiple of the patch size ${cfg.patch_size}`);
  const hp = Math.ceil(h / m) * m, wp = Math.ceil(w / m) * m;
  // right/bottom zero padding, as segm/model/utils.py padding()
  const img = hp === h && wp === w ? x : pad(x, [0, 0, 0, 0, 0, 0, hp - h, wp - w]);
  const gh = hp / cfg.patch_size, gw = wp / cfg.patch_size;
  const layout = o.layout ?? plainLayout;
  const { patches, pos } = layout.embed({ image: img, gh, gw, embed: (im) => patchEmbed(im, p, cfg), pos: posGrid(p, cfg, gh, gw) });
  const tokensEmbedded = embedTokens(patches, pos, p);
  const encIn = o.afterEmbed ? o.afterEmbed(tokensEmbedded) : tokensEmbedded;
  const encoderOut = encode(encIn, p, cfg, o.encoderHooks);
  const n = encoderOut.shape[1]! - 1;
  const masksTokens = decode(slice(encoderOut, [1], [1 + n], [1]), p, cfg, o.decoderHooks);
  const masksGrid = layout.toGrid(masksTokens, gh, gw);
  let logits = resizeBilinear(masksGrid, hp, wp);
  if (hp !== h || wp !== w) logits = slice(logits, [0, 0], [h, w], [2, 3]);
  return { logits, tokensEmbedded, encoderOut, masksTokens, masksGrid };
}
