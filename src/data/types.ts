// Shared data types of the data layer: images, label maps, datasets.

/** An 8-bit RGB image, HWC, row-major. */
export interface RGBImage {
  width: number;
  height: number;
  /** width*height*3 bytes, R G B interleaved. */
  data: Uint8Array;
}

/** A label map of class ids (0..K-1) with 255 = ignore, row-major. */
export interface LabelMap {
  width: number;
  height: number;
  data: Uint8Array;
}

/** Value of "ignore" in every label map cts-seg produces. */
export const IGNORE_INDEX = 255;

/** Evaluation protocol of a dataset (spec §6): resize rule and sliding window. */
export interface EvalProtocol {
  /** Keep-ratio resize so the short side is this (spec §6.1); undefined = no resize. */
  resizeShort?: number;
  /** Cap of the long side after the resize (max_ratio * im_size). */
  maxLong?: number;
  /** Sliding-window stride (the window is the model's crop). */
  windowStride: number;
}

/** Static description of a dataset: classes, palette and protocols. */
export interface DatasetInfo {
  /** Registry name (ade20k, pcontext, cityscapes, camvid, folder). */
  name: string;
  classes: string[];
  palette: [number, number, number][];
  /** Training crop of the paper's recipe (square side in pixels). */
  cropSize: number;
  eval: EvalProtocol;
}

/** One sample: an image and (for labelled splits) its label file. */
export interface SegSample {
  id: string;
  imagePath: string;
  labelPath?: string;
}

/** A dataset split on disk with the dataset's label conventions applied when reading. */
export interface SegDataset {
  info: DatasetInfo;
  split: string;
  root: string;
  samples: SegSample[];
  /** Decoded RGB image of sample i. */
  readImage(i: number): Promise<RGBImage>;
  /** Label map of sample i in cts-seg's convention (0..K-1, 255 ignore), validated against the image size. */
  readLabel(i: number): Promise<LabelMap>;
}
