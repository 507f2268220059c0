// The built-in datasets' static facts (classes, palettes, crops, evaluation protocols), with no file
// access, so the Segmenter API can pick a model's protocol in the browser too. Reading the data is
// datasets.ts (Node).
import {
  ADE20K_CLASSES, ADE20K_PALETTE, CAMVID_CLASSES, CAMVID_PALETTE, CITYSCAPES_CLASSES,
  CITYSCAPES_PALETTE, PCONTEXT_CLASSES, PCONTEXT_PALETTE, type RGB,
} from './classes.js';
import type { DatasetInfo } from './types.js';

/** Names accepted by {@link openDataset}. */
export type DatasetName = 'ade20k' | 'pcontext' | 'cityscapes' | 'camvid' | 'folder';

/** Registry entry: the static {@link DatasetInfo} plus what a user needs to find and prepare the data. */
export interface DatasetEntry extends DatasetInfo {
  /** Human-readable name used in messages. */
  title: string;
  /** Splits the layout provides. */
  splits: string[];
  /** Folder the user passes as root, relative to the `prepare` DIR (e.g. `ade20k`). */
  rootHint: string;
  /** Whether `cts-seg prepare <name>` can download and convert it. */
  preparable: boolean;
}

const palette = (p: readonly RGB[]): RGB[] => p.map((c) => [c[0], c[1], c[2]]);

/** The built-in datasets. `folder` has no fixed classes: they come from the folder's classes.json/classes.txt. */
export const DATASETS: Record<DatasetName, DatasetEntry> = {
  ade20k: {
    name: 'ade20k', title: 'ADE20K', classes: [...ADE20K_CLASSES], palette: palette(ADE20K_PALETTE), cropSize: 512,
    eval: { resizeShort: 512, maxLong: 2048, windowStride: 512 },
    splits: ['train', 'val', 'test'], rootHint: 'DIR/ade20k', preparable: true,
  },
  pcontext: {
    name: 'pcontext', title: 'Pascal-Context', classes: [...PCONTEXT_CLASSES], palette: palette(PCONTEXT_PALETTE), cropSize: 480,
    eval: { resizeShort: 520, maxLong: 4160, windowStride: 320 },
    splits: ['train', 'val'], rootHint: 'DIR/pcontext', preparable: true,
  },
  cityscapes: {
    name: 'cityscapes', title: 'Cityscapes', classes: [...CITYSCAPES_CLASSES], palette: palette(CITYSCAPES_PALETTE), cropSize: 768,
    // im_size 1024 / max_ratio 2: the identity on Cityscapes' own 1024x2048 frames (spec §6.1).
    eval: { resizeShort: 1024, maxLong: 2048, windowStride: 512 },
    splits: ['train', 'val', 'test'], rootHint: 'DIR/cityscapes', preparable: true,
  },
  camvid: {
    // Not in the paper. 360 is no multiple of 32, so the crop is the largest multiple below it (352); the
    // frames are evaluated at their native 480x360 (no resize) with stride 320, i.e. 2x2 windows.
    name: 'camvid', title: 'CamVid', classes: [...CAMVID_CLASSES], palette: palette(CAMVID_PALETTE), cropSize: 352,
    eval: { windowStride: 320 },
    splits: ['train', 'val', 'test'], rootHint: 'the folder holding train/, trainannot/ and train.txt', preparable: false,
  },
  folder: {
    name: 'folder', title: 'folder dataset', classes: [], palette: [], cropSize: 512, eval: { windowStride: 512 },
    splits: [], rootHint: 'the folder holding images/, labels/ and classes.json or classes.txt', preparable: false,
  },
};

/** Type guard for registry names. */
export function isDatasetName(name: string): name is DatasetName {
  return Object.prototype.hasOwnProperty.call(DATASETS, name);
}
