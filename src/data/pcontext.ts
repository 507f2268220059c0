// Pascal-Context labels as PyTorch-Encoding ships them (spec §7.2): `train.pth` / `val.pth` are
// torch.save'd dicts {int image id -> PIL label image}, written in 2018 in the legacy format
// (a zip-format re-save reads the same). PIL images pickle as their class (PIL.Image.Image, or an
// ImageFile subclass such as PngImageFile) plus a BUILD state from Image.__getstate__:
// [info, mode, size, palette, data] in every Pillow release; Pillow >= 10 ImageFile subclasses
// append the file name (6 elements, read as state[:5] by Image.__setstate__); a 4-element
// [info, mode, size, data] form is accepted as well. Under protocol < 3 the pixel bytes arrive as
// `_codecs.encode(str, 'latin1')` (Python 3) or as a latin1 str (Python 2).
import { CtsError } from '../base/errors.js';
import { latin1Bytes, PLAIN_DATA_GLOBALS, PY_SETSTATE, PyGlobal, pyTypeName, type AllowList } from '../io/pickle.js';
import { openTorchFile } from '../io/torch.js';
import type { LabelMap } from './types.js';

/** Stand-in for a pickled PIL image: only what a label map needs. */
class PilImage {
  mode = '';
  width = 0;
  height = 0;
  data?: Uint8Array;

  [PY_SETSTATE](state: unknown): void {
    if (!Array.isArray(state) || state.length < 4) throw new Error(`PIL state is a ${pyTypeName(state)}, expected [info, mode, size, (palette,) data]`);
    const [, mode, size] = state;
    const data = state.length === 4 ? state[3] : state[4];
    if (typeof mode !== 'string') throw new Error(`PIL mode is a ${pyTypeName(mode)}`);
    if (!Array.isArray(size) || size.length !== 2 || !size.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
      throw new Error(`PIL size is not a (width, height) pair`);
    }
    this.mode = mode;
    [this.width, this.height] = size as [number, number];
    // Python 2 pickles keep pixel bytes in a str; the unpickler hands those over as latin1 text.
    this.data = typeof data === 'string' ? latin1Bytes(data) : data instanceof Uint8Array ? data : undefined;
    if (!this.data) throw new Error(`PIL pixel data is a ${pyTypeName(data)}, expected bytes`);
  }
}

const newImage = (): PilImage => new PilImage();
// Image classes a label dict can hold: the base class and the ImageFile subclasses of lossless formats.
const PIL_CLASSES = ['PIL.Image.Image', 'PIL.PngImagePlugin.PngImageFile', 'PIL.BmpImagePlugin.BmpImageFile', 'PIL.GifImagePlugin.GifImageFile', 'PIL.TiffImagePlugin.TiffImageFile', 'PIL.PpmImagePlugin.PpmImageFile'];

/** Allow-list for label dicts: PIL images, the plain-data builtins, and protocol 0/1's copyreg._reconstructor for them. */
const PCONTEXT_GLOBALS: AllowList = {
  ...PLAIN_DATA_GLOBALS,
  ...Object.fromEntries(PIL_CLASSES.map((c) => [c, newImage])),
  'builtins.object': () => {
    throw new Error('object() is only allowed as the base of copyreg._reconstructor');
  },
  'copyreg._reconstructor': (a) => {
    const [cls, base, state] = a;
    if (!(cls instanceof PyGlobal) || !PIL_CLASSES.includes(cls.qualifiedName) || !(base instanceof PyGlobal) || base.qualifiedName !== 'builtins.object' || state !== null) {
      throw new Error('only PIL images can be reconstructed');
    }
    return newImage();
  },
};

/** '2008000002' -> '2008_000002' (VOC image id). */
function vocId(key: unknown, path: string): string {
  const s = typeof key === 'number' || typeof key === 'bigint' ? String(key) : typeof key === 'string' ? key : '';
  if (!/^\d{10}$/.test(s)) throw new CtsError(`${path}: key ${JSON.stringify(String(key))} is not a 10-digit image id like 2008000002`);
  return `${s.slice(0, 4)}_${s.slice(4)}`;
}

/**
 * Reads PyTorch-Encoding's Pascal-Context `train.pth` / `val.pth`: a map from VOC id ('2008_000002')
 * to its label map, values 0..59 exactly as stored (0 = background). Only PIL images and plain
 * containers may appear in the pickle; anything else is refused.
 */
export async function pcontextLabelsFromPth(path: string): Promise<Map<string, LabelMap>> {
  const f = await openTorchFile(path, { globals: PCONTEXT_GLOBALS, allowedWhat: 'only PIL label images and plain containers are allowed' });
  try {
    if (!(f.root instanceof Map)) throw new CtsError(`${path} holds a ${pyTypeName(f.root)}, expected a dict {image id: PIL label image}`);
    const out = new Map<string, LabelMap>();
    for (const [key, img] of f.root) {
      const id = vocId(key, path);
      if (!(img instanceof PilImage) || !img.data) throw new CtsError(`${path}: entry ${id} is a ${pyTypeName(img)}, expected a PIL image`);
      if (img.mode !== 'L' && img.mode !== 'P') throw new CtsError(`${path}: label ${id} has PIL mode '${img.mode}', expected 'L' or 'P' (8-bit class ids)`);
      if (img.data.byteLength !== img.width * img.height) {
        throw new CtsError(`${path}: label ${id} has ${img.data.byteLength} bytes of pixels, expected ${img.width}x${img.height}`);
      }
      out.set(id, { width: img.width, height: img.height, data: img.data });
    }
    return out;
  } finally {
    f.close();
  }
}
