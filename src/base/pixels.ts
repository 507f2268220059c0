// The pixel limit of decoded images, at the bottom of the layers: the Node decoders (src/data/image.ts),
// the browser platform and the Segmenter API all check it, and all share this one default.
import { CtsError } from './errors.js';

/** Default largest image, in pixels: a 100-megapixel photo decodes to 300 MB of RGB. */
export const DEFAULT_MAX_PIXELS = 100_000_000;

/** Checks an image's declared size against the pixel limit (before its pixels are decoded). */
export function checkPixels(width: number, height: number, maxPixels: number, name: string): void {
  if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0)) {
    throw new CtsError(`${name}: image size ${width}x${height} is invalid`);
  }
  if (width * height > maxPixels) {
    throw new CtsError(`${name} is ${width}x${height} = ${width * height} pixels, over the limit of ${maxPixels} (raise it with the maxPixels option or --max-pixels)`);
  }
}
