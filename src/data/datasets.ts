// Dataset registry and readers for the on-disk layouts of spec §7 (plus CamVid and a generic folder format).
// Every reader turns raw annotation values into cts-seg's convention (0..K-1, 255 = ignore) through a
// 256-entry lookup table, so a value the dataset never produces is reported instead of silently trained on.
import { existsSync, statSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { z } from 'zod';
import { CtsError } from '../base/errors.js';
import { describeFsError } from '../io/fs.node.js';
import { defaultPalette } from '../cts/checkpoint.js';
import { CAMVID_CLASSES, CAMVID_VOID, type RGB } from './classes.js';
import { DATASETS, isDatasetName, type DatasetName } from './catalog.js';
import { readImage, readImageSize, readLabelPng } from './image.js';
import { IGNORE_INDEX, type DatasetInfo, type LabelMap, type RGBImage, type SegDataset, type SegSample } from './types.js';

export { DATASETS, isDatasetName, type DatasetEntry, type DatasetName } from './catalog.js';


/** Marks byte values a dataset never stores; they are reported as errors. */
const INVALID = -1;

/** How raw label bytes become class ids: a full byte table and a description of the valid raw values. */
interface LabelRule {
  lut: Int16Array;
  expected: string;
}

function identityRule(k: number): LabelRule {
  const lut = new Int16Array(256).fill(INVALID);
  for (let v = 0; v < k; v++) lut[v] = v;
  lut[IGNORE_INDEX] = IGNORE_INDEX;
  return { lut, expected: `0..${k - 1} or ${IGNORE_INDEX} (ignore)` };
}

/** ADE20K's reduce_zero_label: raw 0 ("other") -> ignore, 1..150 -> 0..149; raw 255 stays ignore (mmseg: 255-1=254 -> 255). */
function adeRule(): LabelRule {
  const lut = new Int16Array(256).fill(INVALID);
  lut[0] = IGNORE_INDEX;
  for (let v = 1; v <= 150; v++) lut[v] = v - 1;
  lut[255] = IGNORE_INDEX;
  return { lut, expected: 'raw values 0..150 (0 = other, becomes ignore) or 255' };
}

/** CamVid: 0..10 are classes, 11 (void) and 255 are ignore. */
function camvidRule(): LabelRule {
  const rule = identityRule(CAMVID_CLASSES.length);
  rule.lut[CAMVID_VOID] = IGNORE_INDEX;
  return { lut: rule.lut, expected: `0..${CAMVID_CLASSES.length - 1}, ${CAMVID_VOID} (void, ignore) or 255` };
}

async function listDir(path: string, what: string, hint: string): Promise<string[]> {
  try {
    return (await readdir(path)).sort(compareIds);
  } catch (e) {
    throw new CtsError(`cannot read ${what} folder ${path}: ${describeFsError(e)} (${hint})`);
  }
}

/** Plain code-unit order, so sample order never depends on the locale. */
function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

async function readText(path: string, what: string, hint: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    throw new CtsError(`cannot read ${what} ${path}: ${describeFsError(e)} (${hint})`);
  }
}

/**
 * The dataset folder under `root`: `root` itself when it holds `marker`, else `root/<name>` (so both the
 * `prepare` DIR and DIR/<name> work). Throws naming the expected path otherwise.
 */
function resolveRoot(root: string, name: string, marker: string, hint: string): string {
  if (existsSync(join(root, marker))) return root;
  if (name !== 'folder' && existsSync(join(root, name, marker))) return join(root, name);
  const alt = name !== 'folder' ? ` (or ${join(root, name, marker)})` : '';
  throw new CtsError(`${DATASETS[name as DatasetName].title} not found: expected ${join(root, marker)}${alt}; ${hint}`);
}

function checkSplit(name: DatasetName, split: string): void {
  if (!/^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/.test(split)) throw new CtsError(`invalid split name '${split}': expected a plain folder name such as train or val`);
  const splits = DATASETS[name].splits;
  if (splits.length > 0 && !splits.includes(split)) {
    throw new CtsError(`unknown ${DATASETS[name].title} split '${split}', expected one of ${splits.join(', ')}`);
  }
}

const IMAGE_EXTS = new Set(['.jpg', '.jpeg', '.png', '.webp', '.tif', '.tiff', '.bmp']);
const stem = (file: string) => basename(file, extname(file));

/** A split on disk whose labels are converted by a byte table and checked against their image's size. */
class DiskDataset implements SegDataset {
  constructor(
    readonly info: DatasetInfo,
    readonly split: string,
    readonly root: string,
    readonly samples: SegSample[],
    private readonly rule: LabelRule,
    private readonly title: string,
  ) {}

  private sample(i: number): SegSample {
    const s = this.samples[i];
    if (!s) throw new CtsError(`sample index ${i} is out of range: ${this.title} ${this.split} has ${this.samples.length} samples`);
    return s;
  }

  /** Decoded 8-bit RGB image of sample i. */
  readImage(i: number): Promise<RGBImage> {
    return readImage(this.sample(i).imagePath);
  }

  /** Label of sample i in cts-seg's convention; throws naming the file on a size mismatch or an unexpected value. */
  async readLabel(i: number): Promise<LabelMap> {
    const s = this.sample(i);
    if (!s.labelPath) throw new CtsError(`${this.title} split '${this.split}' has no labels (sample ${s.id})`);
    const [raw, size] = await Promise.all([readLabelPng(s.labelPath), readImageSize(s.imagePath)]);
    if (raw.width !== size.width || raw.height !== size.height) {
      throw new CtsError(`label ${s.labelPath} is ${raw.width}x${raw.height} but its image ${s.imagePath} is ${size.width}x${size.height} (width x height); they must match`);
    }
    const { lut, expected } = this.rule;
    const src = raw.data, out = new Uint8Array(src.length);
    for (let p = 0; p < src.length; p++) {
      const v = lut[src[p]!]!;
      if (v === INVALID) {
        throw new CtsError(`label ${s.labelPath} has value ${src[p]} at x=${p % raw.width}, y=${Math.floor(p / raw.width)}; ${this.title} labels hold ${expected}`);
      }
      out[p] = v;
    }
    return { width: raw.width, height: raw.height, data: out };
  }
}

/** Pairs sorted image files with labels by stem; a missing label is an error naming its expected path. */
function pairByStem(imageDir: string, images: string[], labelDir: string | undefined, labels: Set<string>, labelSuffix: string): SegSample[] {
  const seen = new Map<string, string>();
  const out: SegSample[] = [];
  for (const f of images) {
    const id = stem(f);
    const dup = seen.get(id);
    if (dup) throw new CtsError(`two images share the id '${id}': ${join(imageDir, dup)} and ${join(imageDir, f)}`);
    seen.set(id, f);
    const sample: SegSample = { id, imagePath: join(imageDir, f) };
    if (labelDir !== undefined) {
      const lf = id + labelSuffix;
      if (!labels.has(lf)) throw new CtsError(`missing label ${join(labelDir, lf)} for image ${join(imageDir, f)}`);
      sample.labelPath = join(labelDir, lf);
    }
    out.push(sample);
  }
  return out.sort((a, b) => compareIds(a.id, b.id));
}

function nonEmpty(samples: SegSample[], what: string): SegSample[] {
  if (samples.length === 0) throw new CtsError(`${what} holds no samples`);
  return samples;
}

async function openAde(root: string, split: string): Promise<SegDataset> {
  const hint = 'run `cts-seg prepare ade20k DIR` and pass DIR or DIR/ade20k';
  if (split === 'test') {
    const dir = resolveRoot(root, 'ade20k', 'release_test/testing', hint);
    const imgDir = join(dir, 'release_test/testing');
    const images = (await listDir(imgDir, 'ADE20K test images', hint)).filter((f) => f.endsWith('.jpg'));
    return new DiskDataset(DATASETS.ade20k, split, dir, nonEmpty(pairByStem(imgDir, images, undefined, new Set(), ''), imgDir), adeRule(), 'ADE20K');
  }
  const dir = resolveRoot(root, 'ade20k', 'ADEChallengeData2016/images', hint);
  const sub = split === 'train' ? 'training' : 'validation';
  const imgDir = join(dir, 'ADEChallengeData2016/images', sub);
  const lblDir = join(dir, 'ADEChallengeData2016/annotations', sub);
  const images = (await listDir(imgDir, 'ADE20K images', hint)).filter((f) => f.endsWith('.jpg'));
  const labels = new Set(await listDir(lblDir, 'ADE20K annotations', hint));
  return new DiskDataset(DATASETS.ade20k, split, dir, nonEmpty(pairByStem(imgDir, images, lblDir, labels, '.png'), imgDir), adeRule(), 'ADE20K');
}

async function openPContext(root: string, split: string): Promise<SegDataset> {
  const hint = 'run `cts-seg prepare pcontext DIR` and pass DIR or DIR/pcontext';
  const dir = resolveRoot(root, 'pcontext', 'VOCdevkit/VOC2010', hint);
  const voc = join(dir, 'VOCdevkit/VOC2010');
  const listPath = join(voc, 'ImageSets/SegmentationContext', `${split}.txt`);
  const ids = [...new Set((await readText(listPath, 'Pascal-Context split list', hint)).split(/\r?\n/).map((l) => l.trim()).filter(Boolean))].sort(compareIds);
  const imgDir = join(voc, 'JPEGImages'), lblDir = join(voc, 'SegmentationClassContext');
  const images = new Set(await listDir(imgDir, 'Pascal-Context images', hint));
  const labels = new Set(await listDir(lblDir, 'Pascal-Context labels', hint));
  const samples = ids.map((id) => {
    if (!images.has(`${id}.jpg`)) throw new CtsError(`missing image ${join(imgDir, id + '.jpg')} listed in ${listPath}`);
    if (!labels.has(`${id}.png`)) throw new CtsError(`missing label ${join(lblDir, id + '.png')} listed in ${listPath}`);
    return { id, imagePath: join(imgDir, `${id}.jpg`), labelPath: join(lblDir, `${id}.png`) };
  });
  return new DiskDataset(DATASETS.pcontext, split, dir, nonEmpty(samples, listPath), identityRule(60), 'Pascal-Context');
}

async function openCityscapes(root: string, split: string): Promise<SegDataset> {
  const hint = 'run `cts-seg prepare cityscapes DIR` and pass DIR or DIR/cityscapes';
  const dir = resolveRoot(root, 'cityscapes', 'leftImg8bit', hint);
  const imgRoot = join(dir, 'leftImg8bit', split), gtRoot = join(dir, 'gtFine', split);
  const samples: SegSample[] = [];
  for (const city of await listDir(imgRoot, 'Cityscapes images', hint)) {
    if (!statSync(join(imgRoot, city)).isDirectory()) continue;
    const files = (await listDir(join(imgRoot, city), 'Cityscapes images', hint)).filter((f) => f.endsWith('_leftImg8bit.png'));
    if (files.length === 0) continue;
    const labels = new Set(await listDir(join(gtRoot, city), 'Cityscapes gtFine', hint));
    for (const f of files) {
      const base = f.slice(0, -'_leftImg8bit.png'.length);
      const lf = `${base}_gtFine_labelTrainIds.png`;
      if (!labels.has(lf)) {
        throw new CtsError(`missing label ${join(gtRoot, city, lf)} for image ${join(imgRoot, city, f)}; ${hint} (it converts *_gtFine_labelIds.png to trainIds)`);
      }
      samples.push({ id: `${city}/${base}`, imagePath: join(imgRoot, city, f), labelPath: join(gtRoot, city, lf) });
    }
  }
  samples.sort((a, b) => compareIds(a.id, b.id));
  return new DiskDataset(DATASETS.cityscapes, split, dir, nonEmpty(samples, imgRoot), identityRule(19), 'Cityscapes');
}

/** SegNet's lists name files by their path inside its docker image; this prefix is dropped. */
const CAMVID_PREFIX = '/SegNet/CamVid/';

async function openCamVid(root: string, split: string): Promise<SegDataset> {
  const hint = 'pass the CamVid folder holding train/, trainannot/, train.txt (SegNet layout)';
  const dir = resolveRoot(root, 'camvid', `${split}.txt`, hint);
  const listPath = join(dir, `${split}.txt`);
  const lines = (await readText(listPath, 'CamVid split list', hint)).split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
  const samples = lines.map((line, n) => {
    const parts = line.split(/\s+/);
    if (parts.length !== 2) throw new CtsError(`${listPath} line ${n + 1}: expected '<image> <label>', got '${line}'`);
    const [img, lbl] = parts.map((p) => (p.startsWith(CAMVID_PREFIX) ? p.slice(CAMVID_PREFIX.length) : p.replace(/^\/+/, ''))) as [string, string];
    return { id: stem(img), imagePath: join(dir, img), labelPath: join(dir, lbl) };
  });
  for (const p of samples.flatMap((s) => [s.imagePath, s.labelPath])) {
    if (!existsSync(p)) throw new CtsError(`missing file ${p} listed in ${listPath}`);
  }
  samples.sort((a, b) => compareIds(a.id, b.id));
  return new DiskDataset(DATASETS.camvid, split, dir, nonEmpty(samples, listPath), camvidRule(), 'CamVid');
}

const colour = z.tuple([z.number().int().min(0).max(255), z.number().int().min(0).max(255), z.number().int().min(0).max(255)]);
/** Schema of a folder dataset's classes.json (documented in docs/DATASETS.md). */
export const FolderClassesSchema = z.strictObject({
  classes: z.array(z.union([z.string().min(1), z.strictObject({ name: z.string().min(1), color: colour.optional() })])).min(1).max(255),
  cropSize: z.number().int().positive().optional(),
  eval: z.strictObject({
    resizeShort: z.number().int().positive().optional(),
    maxLong: z.number().int().positive().optional(),
    windowStride: z.number().int().positive().optional(),
  }).optional(),
});

/** Reads the class list of a folder dataset: classes.json (schema above) or classes.txt (`name [R G B]` per line). */
export async function readFolderClasses(dir: string): Promise<DatasetInfo> {
  const jsonPath = join(dir, 'classes.json'), txtPath = join(dir, 'classes.txt');
  const hasJson = existsSync(jsonPath), hasTxt = existsSync(txtPath);
  if (hasJson && hasTxt) throw new CtsError(`both ${jsonPath} and ${txtPath} exist; keep one class list`);
  if (!hasJson && !hasTxt) throw new CtsError(`folder dataset ${dir} has no class list: expected ${jsonPath} or ${txtPath}`);
  const names: string[] = [], colours: (RGB | undefined)[] = [];
  let cropSize = DATASETS.folder.cropSize;
  let evalCfg = { ...DATASETS.folder.eval };
  if (hasJson) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(await readText(jsonPath, 'class list', 'see docs/DATASETS.md'));
    } catch (e) {
      if (e instanceof CtsError) throw e;
      throw new CtsError(`${jsonPath} is not valid JSON: ${(e as Error).message}`);
    }
    const r = FolderClassesSchema.safeParse(parsed);
    if (!r.success) {
      const issue = r.error.issues[0]!;
      throw new CtsError(`${jsonPath}: ${issue.path.join('.') || '(root)'}: ${issue.message} (expected {"classes": [{"name", "color": [r,g,b]}, ...]})`);
    }
    for (const c of r.data.classes) {
      names.push(typeof c === 'string' ? c : c.name);
      colours.push(typeof c === 'string' ? undefined : c.color);
    }
    cropSize = r.data.cropSize ?? cropSize;
    evalCfg = { windowStride: r.data.eval?.windowStride ?? cropSize };
    if (r.data.eval?.resizeShort !== undefined) Object.assign(evalCfg, { resizeShort: r.data.eval.resizeShort });
    if (r.data.eval?.maxLong !== undefined) Object.assign(evalCfg, { maxLong: r.data.eval.maxLong });
  } else {
    const lines = (await readText(txtPath, 'class list', 'see docs/DATASETS.md')).split(/\r?\n/);
    lines.forEach((raw, n) => {
      const line = raw.trim();
      if (!line || line.startsWith('#')) return;
      const m = /^(.*?)\s+(\d+)\s+(\d+)\s+(\d+)$/.exec(line);
      const rgb = m ? ([Number(m[2]), Number(m[3]), Number(m[4])] as RGB) : undefined;
      if (rgb && rgb.some((c) => c > 255)) throw new CtsError(`${txtPath} line ${n + 1}: colour components must be 0..255, got '${line}'`);
      names.push(m ? m[1]! : line);
      colours.push(rgb);
    });
    if (names.length === 0 || names.length > 255) throw new CtsError(`${txtPath} lists ${names.length} classes, expected 1..255`);
  }
  const fallback = defaultPalette(names.length);
  return { name: 'folder', classes: names, palette: colours.map((c, i) => c ?? fallback[i]!), cropSize, eval: evalCfg };
}

async function openFolder(root: string, split: string): Promise<SegDataset> {
  const hint = 'a folder dataset holds images/<split>/*, labels/<split>/<same stem>.png and classes.json or classes.txt (docs/DATASETS.md)';
  const dir = resolveRoot(root, 'folder', join('images', split), hint);
  const info = await readFolderClasses(dir);
  const imgDir = join(dir, 'images', split), lblDir = join(dir, 'labels', split);
  const images = (await listDir(imgDir, 'images', hint)).filter((f) => IMAGE_EXTS.has(extname(f).toLowerCase()));
  const hasLabels = existsSync(lblDir);
  const labels = hasLabels ? new Set(await listDir(lblDir, 'labels', hint)) : new Set<string>();
  const samples = pairByStem(imgDir, images, hasLabels ? lblDir : undefined, labels, '.png');
  return new DiskDataset(info, split, dir, nonEmpty(samples, imgDir), identityRule(info.classes.length), `folder dataset ${dir}`);
}

/**
 * Opens one split of a dataset on disk. `root` is the dataset's folder (e.g. DIR/ade20k as written by
 * `cts-seg prepare ade20k DIR`) or its parent DIR; for camvid and folder it is the folder holding the data.
 * Samples are sorted by id. Labels are returned as 0..K-1 with 255 = ignore (ADE20K zero-reduced,
 * CamVid void -> 255). Splits: train/val (ADE20K and Cityscapes also test; folder: any subfolder of images/).
 */
export async function openDataset(name: string, root: string, split: string): Promise<SegDataset> {
  if (!isDatasetName(name)) throw new CtsError(`unknown dataset '${name}', expected one of ${Object.keys(DATASETS).join(', ')}`);
  checkSplit(name, split);
  switch (name) {
    case 'ade20k':
      return openAde(root, split);
    case 'pcontext':
      return openPContext(root, split);
    case 'cityscapes':
      return openCityscapes(root, split);
    case 'camvid':
      return openCamVid(root, split);
    case 'folder':
      return openFolder(root, split);
  }
}
