// The conversion step of `pull`: an official Segmenter run folder (checkpoint.pth + variant.yml, as
// segm/train.py leaves it) into a cts-seg checkpoint. pull takes it as a parameter so the download
// and cache logic neither depend on nor duplicate the importer, which lives with the import code.
import { CtsError } from '../base/errors.js';
import type { ModelCheckpoint } from '../cts/checkpoint.js';

/** Converts the run folder `runDir` (holding checkpoint.pth and variant.yml) into a checkpoint. */
export type ConvertRun = (runDir: string) => Promise<ModelCheckpoint>;

/**
 * The converter `cts-seg pull` and {@link resolveModel} use when none is passed. This build has no
 * importer of official runs yet, so it refuses with one line; the downloads stay cached and the next
 * pull converts them without downloading again once an importer is wired in here.
 */
export const convertOfficialRun: ConvertRun = async (runDir) => {
  throw new CtsError(`cannot convert the official run in ${runDir}: this build has no importer of official Segmenter runs yet; the downloaded files are kept in the cache`);
};
