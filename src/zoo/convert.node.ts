// The conversion step of `pull`: an official Segmenter run folder (checkpoint.pth + variant.yml, as
// segm/train.py leaves it) into a cts-seg checkpoint. pull takes it as a parameter so the download
// and cache logic neither depend on nor duplicate the importer, which lives with the import code.
import { join } from 'node:path';
import { importOfficialRun } from '../export/official.node.js';
import type { ModelCheckpoint } from '../cts/checkpoint.js';

/** Converts the run folder `runDir` (holding checkpoint.pth and variant.yml) into a checkpoint. */
export type ConvertRun = (runDir: string) => Promise<ModelCheckpoint>;

/**
 * The converter `cts-seg pull` and {@link resolveModel} use when none is passed: the official run
 * importer (checkpoint.pth through the allow-listed unpickler, variant.yml with only !!python/tuple).
 */
export const convertOfficialRun: ConvertRun = (runDir) => importOfficialRun(join(runDir, 'checkpoint.pth'));
