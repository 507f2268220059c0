// The CTS token budget (spec §3.1): S shared superpatches (2x2 patches each) and N1 patches that keep
// their own token, with N1 + 4*S equal to the patch count. The official code only asserts this
// deep inside the forward pass; we check it up front and say which pairs are valid.
import { CtsError } from '../base/errors.js';

/** A validated token budget for one crop size. */
export interface TokenBudget {
  /** Patch grid (rows, cols). */
  gh: number;
  gw: number;
  /** Superpatch grid. */
  sh: number;
  sw: number;
  /** Shared superpatches S (= shared tokens). */
  numShared: number;
  /** Patches that keep their own token N1 = gh*gw - 4S. */
  numNotShared: number;
  /** Tokens entering the encoder, CLS excluded. */
  numTokens: number;
  /** Token reduction 3S / (gh*gw). */
  reduction: number;
}

/**
 * Validates (numNotShared, numShared) for an image of h x w pixels with the given patch size; either
 * number may be omitted and is then derived. `numShared` 0 alone (no sharing) accepts any size, padded
 * to a patch multiple as the plain Segmenter does. Throws CtsError naming the rule and the valid range.
 */
export function tokenBudget(h: number, w: number, patch: number, numShared?: number, numNotShared?: number): TokenBudget {
  if ((numShared ?? 0) === 0 && numNotShared === undefined) {
    // no sharing runs the plain Segmenter, which pads any size to a patch multiple
    if (!(Number.isInteger(h) && Number.isInteger(w) && h > 0 && w > 0)) throw new CtsError(`image size ${h}x${w} must be positive integers`);
    const gh = Math.ceil(h / patch), gw = Math.ceil(w / patch);
    return { gh, gw, sh: Math.floor(gh / 2), sw: Math.floor(gw / 2), numShared: 0, numNotShared: gh * gw, numTokens: gh * gw, reduction: 0 };
  }
  const sp = 2 * patch;
  if (!Number.isInteger(h) || !Number.isInteger(w) || h <= 0 || w <= 0 || h % sp || w % sp) {
    throw new CtsError(`token sharing needs an image size that is a multiple of ${sp} (2 x patch ${patch}), got ${h}x${w}`);
  }
  const gh = h / patch, gw = w / patch, sh = gh / 2, sw = gw / 2, nb = gh * gw, ns = sh * sw;
  const ex = Math.min(ns, Math.round(nb / 10));
  const rule = `num_not_shared + 4 x num_shared must equal the ${nb} patches (${gh}x${gw}) of a ${h}x${w} image; valid pairs are (${nb} - 4S, S) for S = 0..${ns}, e.g. (${nb - 4 * ex}, ${ex})`;
  if (numShared !== undefined && numNotShared !== undefined && numNotShared + 4 * numShared !== nb) {
    throw new CtsError(`${numNotShared} not shared + 4 x ${numShared} shared covers ${numNotShared + 4 * numShared} patches, not ${nb}: ${rule}`);
  }
  if (numShared === undefined && numNotShared === undefined) numShared = 0;
  if (numShared === undefined) {
    if (!Number.isInteger(numNotShared) || (nb - numNotShared!) % 4 || numNotShared! > nb) throw new CtsError(`num_not_shared ${numNotShared} is impossible: ${rule}`);
    numShared = (nb - numNotShared!) / 4;
  }
  if (!Number.isInteger(numShared) || numShared < 0 || numShared > ns) {
    throw new CtsError(`num_shared ${numShared} is impossible: ${rule}`);
  }
  const n1 = nb - 4 * numShared;
  return { gh, gw, sh, sw, numShared, numNotShared: n1, numTokens: n1 + numShared, reduction: (3 * numShared) / nb };
}

/** S for a target token reduction r in [0, 0.75]: round(r * Nb / 3), capped at the superpatch count. */
export function sharedForReduction(h: number, w: number, patch: number, r: number): number {
  if (!(r >= 0 && r <= 0.75)) throw new CtsError(`token reduction ${r} must lie in [0, 0.75]`);
  const nb = (h / patch) * (w / patch);
  return Math.min(Math.round((r * nb) / 3), nb / 4);
}
