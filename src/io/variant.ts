// The official runs' `variant.yml`: what segm/train.py writes with PyYAML's `yaml.dump(variant)`
// and `load_model` reads back with `yaml.FullLoader`. PyYAML tags tuples `!!python/tuple`; FullLoader
// would also build other python objects from tags, so this reader resolves the tuple tag alone (as
// a plain array) and refuses every other python tag, executing nothing. The writer emits what
// yaml.dump would: sorted keys, block style, sequences not indented under their key, floats that
// PyYAML's YAML 1.1 resolver reads back as floats.
import { parseDocument, stringify, isAlias, isMap, isScalar, isSeq, type Node } from 'yaml';
import { CtsError } from '../base/errors.js';

/** A plain YAML value: scalars, arrays (tuples included) and string-keyed objects. */
export type VariantValue = string | number | boolean | null | VariantValue[] | { [k: string]: VariantValue };
/** A parsed variant.yml. */
export type Variant = { [k: string]: VariantValue };

const TUPLE_TAG = 'tag:yaml.org,2002:python/tuple';
const PLAIN_TAGS = new Set(['str', 'int', 'float', 'bool', 'null', 'map', 'seq', 'binary', 'timestamp'].map((t) => `tag:yaml.org,2002:${t}`));
const tupleTag = { tag: TUPLE_TAG, collection: 'seq' as const, resolve: <T>(seq: T): T => seq };

/** Refuses every tag but the plain ones and the tuple tag, naming the key that carries it. */
function checkTags(node: unknown, path: string, source: string): void {
  if (!node || isAlias(node)) return;
  const n = node as Node;
  if (n.tag && n.tag !== TUPLE_TAG && !PLAIN_TAGS.has(n.tag)) {
    const tag = n.tag.replace(/^tag:yaml\.org,2002:/, '!!');
    throw new CtsError(`${source}: ${path || '(top level)'} has the tag ${tag}; only !!python/tuple is accepted (other python tags would build objects)`);
  }
  if (isMap(n)) for (const it of n.items) checkTags(it.value, `${path ? `${path}.` : ''}${String(isScalar(it.key) ? it.key.value : it.key)}`, source);
  else if (isSeq(n)) n.items.forEach((it, i) => checkTags(it, `${path}[${i}]`, source));
}

/** Parses variant.yml text (`source` names it in errors); the top level must be a mapping. */
export function parseVariant(text: string, source: string): Variant {
  const doc = parseDocument(text, { version: '1.1', customTags: [tupleTag], prettyErrors: false });
  const err = doc.errors[0];
  if (err) throw new CtsError(`${source}: not valid YAML: ${err.message.split('\n')[0]}`);
  checkTags(doc.contents, '', source);
  const other = doc.warnings.find((w) => /tag/i.test(w.message));
  if (other) throw new CtsError(`${source}: ${other.message.split('\n')[0]}`);
  const v: unknown = doc.toJS({ maxAliasCount: 100 });
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new CtsError(`${source}: expected a mapping at the top level (the variant dict of segm/train.py)`);
  return v as Variant;
}

/** A float as Python's repr and PyYAML write it (`0.0`, `0.001`, `1.0e-05`), so it reads back as a float. */
export function pyFloat(x: number): string {
  if (Number.isNaN(x)) return '.nan';
  if (!Number.isFinite(x)) return x > 0 ? '.inf' : '-.inf';
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-4 || a >= 1e16)) {
    const [m, e] = x.toExponential().split('e') as [string, string];
    const exp = Number(e);
    return `${m.includes('.') ? m : `${m}.0`}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  }
  const s = String(x);
  return s.includes('.') ? s : `${s}.0`;
}

/** Keys segm/train.py always fills with Python floats; JavaScript cannot tell 0.0 from 0, so these are written as floats. */
const FLOAT_KEYS = new Set(['dropout', 'drop_path_rate', 'lr', 'min_lr', 'weight_decay', 'momentum', 'poly_power']);

function scalar(v: VariantValue, float = false): string {
  if (v === null) return 'null';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') return Number.isInteger(v) && !float ? String(v) : pyFloat(v);
  if (typeof v === 'string') return stringify(v, { version: '1.1', lineWidth: 0, singleQuote: true }).trimEnd();
  return JSON.stringify(v); // a nested collection inside a sequence: flow style is valid YAML
}

function emit(obj: { [k: string]: VariantValue }, indent: string, path: string, tuples: ReadonlySet<string>, out: string[]): void {
  for (const k of Object.keys(obj).sort()) {
    const v = obj[k]!;
    const key = scalar(k);
    const at = path ? `${path}.${k}` : k;
    if (Array.isArray(v)) {
      const tag = tuples.has(at) ? ' !!python/tuple' : '';
      if (v.length === 0) out.push(`${indent}${key}:${tag} []`);
      else {
        out.push(`${indent}${key}:${tag}`);
        for (const x of v) out.push(`${indent}- ${scalar(x)}`);
      }
    } else if (v !== null && typeof v === 'object') {
      if (Object.keys(v).length === 0) out.push(`${indent}${key}: {}`);
      else {
        out.push(`${indent}${key}:`);
        emit(v, `${indent}  `, at, tuples, out);
      }
    } else out.push(`${indent}${key}: ${scalar(v, FLOAT_KEYS.has(k))}`);
  }
}

/**
 * variant.yml text in yaml.dump's layout; `tuples` lists the dotted key paths whose arrays are
 * Python tuples (`net_kwargs.image_size`, `net_kwargs.policy_schedule`).
 */
export function dumpVariant(v: Variant, tuples: Iterable<string>): string {
  const out: string[] = [];
  emit(v, '', '', new Set(tuples), out);
  return `${out.join('\n')}\n`;
}

/** Reads `obj.key` as a positive integer or throws naming the file and key. */
export function variantInt(obj: { [k: string]: VariantValue }, key: string, where: string, source: string, min = 1): number {
  const v = obj[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
    throw new CtsError(`${source}: ${where}.${key} must be an integer >= ${min}, got ${v === undefined ? 'nothing' : JSON.stringify(v)}`);
  }
  return v;
}

/** Reads `obj.key` as a mapping or throws naming the file and key. */
export function variantMap(obj: { [k: string]: VariantValue }, key: string, where: string, source: string): { [k: string]: VariantValue } {
  const v = obj[key];
  if (!v || typeof v !== 'object' || Array.isArray(v)) {
    throw new CtsError(`${source}: ${where ? `${where}.` : ''}${key} must be a mapping, got ${v === undefined ? 'nothing' : JSON.stringify(v)}`);
  }
  return v;
}

/** Checks a key is absent or a pair of integers (a 2-tuple); returns it, or throws naming the key. */
export function variantPair(obj: { [k: string]: VariantValue }, key: string, where: string, source: string): [number, number] | undefined {
  const v = obj[key];
  if (v === undefined) return undefined;
  const ok = (x: VariantValue | undefined) => typeof x === 'number' && Number.isInteger(x) && x >= 0;
  if (!Array.isArray(v) || v.length !== 2 || !v.every(ok)) {
    throw new CtsError(`${source}: ${where}.${key} must be a tuple of 2 integers, got ${JSON.stringify(v)}`);
  }
  return v as [number, number];
}
