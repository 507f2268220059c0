// Pictures of a prediction: the class map in palette colours, the image blended with it, and the
// image with the token-sharing regions marked.
//
// Shared regions under sliding windows: each window has its own 32x32 superpatch grid, and
// overlapping windows may share different superpatches. The sliding window therefore records, per
// pixel, the fraction of the windows covering it in which it lay in a shared superpatch (see
// `slidingLogits`), resized to the original image like the logits. Here that fraction sets the tint
// strength, and the outline follows the border of the region where it is at least 1/2 (a pixel
// shared by most of the windows that saw it). With one window per image (image = crop) the
// fraction is 0 or 1 and the outline traces the shared superpatches exactly (adjacent ones merge
// into one outlined region).
import type { RGBImage } from '../data/types.js';
import { CtsError } from '../base/errors.js';

/** Colour used to tint shared regions (magenta stands out on natural images). */
export const SHARED_TINT: [number, number, number] = [255, 0, 255];
/** Outline colour of shared regions. */
export const SHARED_OUTLINE: [number, number, number] = [255, 255, 0];

/** Class map -> RGB pixels with one palette colour per class. */
export function colorize(classes: Uint8Array, palette: readonly (readonly [number, number, number])[]): Uint8Array {
  const out = new Uint8Array(classes.length * 3);
  for (let p = 0; p < classes.length; p++) {
    const c = palette[classes[p]!];
    if (!c) throw new CtsError(`class ${classes[p]} has no palette colour (palette has ${palette.length})`);
    out[3 * p] = c[0];
    out[3 * p + 1] = c[1];
    out[3 * p + 2] = c[2];
  }
  return out;
}

/** The image blended with the coloured mask: round((image + mask) / 2) per channel. */
export function overlay(img: RGBImage, maskRgb: Uint8Array, alpha = 0.5): Uint8Array {
  if (maskRgb.length !== img.data.length) throw new CtsError(`mask has ${maskRgb.length / 3} pixels, image ${img.width}x${img.height}`);
  const out = new Uint8Array(img.data.length);
  for (let i = 0; i < out.length; i++) out[i] = Math.round((1 - alpha) * img.data[i]! + alpha * maskRgb[i]!);
  return out;
}

/**
 * The image with shared regions tinted (strength 0.5 x shared fraction) and outlined (1-px border
 * of the fraction >= 0.5 region, drawn inside it). Without a fraction map (no sharing) the image is
 * returned unchanged.
 */
export function sharedView(img: RGBImage, fraction?: Float32Array): Uint8Array {
  const out = img.data.slice();
  if (!fraction) return out;
  const { width: W, height: H } = img;
  if (fraction.length !== W * H) throw new CtsError(`shared map has ${fraction.length} pixels, image ${W}x${H}`);
  const inside = (y: number, x: number) => fraction[y * W + x]! >= 0.5;
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const p = y * W + x, f = fraction[p]!;
      if (f <= 0) continue;
      const edge = inside(y, x) && (y === 0 || x === 0 || y === H - 1 || x === W - 1 || !inside(y - 1, x) || !inside(y + 1, x) || !inside(y, x - 1) || !inside(y, x + 1));
      const a = edge ? 1 : 0.5 * Math.min(f, 1), col = edge ? SHARED_OUTLINE : SHARED_TINT;
      for (let c = 0; c < 3; c++) out[3 * p + c] = Math.round((1 - a) * out[3 * p + c]! + a * col[c]!);
    }
  }
  return out;
}
