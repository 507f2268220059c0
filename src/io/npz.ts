// NumPy .npz archives (np.savez / np.savez_compressed): a zip of .npy members, one per array.
import { CtsError } from '../base/errors.js';
import { parseNpy } from './npy.js';
import type { HostTensor } from '../base/tensor.js';
import { openZip } from './zip.js';

/** Options of {@link readNpz}. */
export interface ReadNpzOptions {
  /** Called after each array with (arrays done, total), for progress display. */
  onProgress?: (done: number, total: number) => void;
}

/**
 * Reads every array of an .npz file. Keys are the member names without `.npy` (as `np.load(f)[key]`),
 * so AugReg's `Transformer/encoderblock_0/...` names come back unchanged.
 */
export async function readNpz(path: string, o: ReadNpzOptions = {}): Promise<Map<string, HostTensor>> {
  const zip = await openZip(path, 'npz file');
  try {
    const members = zip.names.filter((n) => n.endsWith('.npy'));
    const others = zip.names.filter((n) => !n.endsWith('.npy'));
    if (others.length) {
      throw new CtsError(`npz file ${path} has non-.npy member '${others[0]}', expected only arrays written by np.savez`);
    }
    const out = new Map<string, HostTensor>();
    for (const [i, name] of members.entries()) {
      out.set(name.slice(0, -'.npy'.length), parseNpy(await zip.read(name), `${path}:${name}`));
      o.onProgress?.(i + 1, members.length);
    }
    return out;
  } finally {
    zip.close();
  }
}
