// safetensors files on disk (Node): read with a path in every error, write atomically. The format itself is safetensors.ts.
import { readFile } from 'node:fs/promises';
import { CtsError } from '../base/errors.js';
import type { HostTensor } from '../base/tensor.js';
import { describeFsError, writeFileAtomic } from './fs.node.js';
import { parseSafetensors, serializeSafetensors, type SafetensorsContents } from './safetensors.js';

/** Reads and parses a safetensors file; throws CtsError naming the path when it cannot be read. */
export async function readSafetensors(path: string): Promise<SafetensorsContents> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new CtsError(`cannot read safetensors file ${path}: ${describeFsError(err)}`, { cause: err });
  }
  return parseSafetensors(bytes, path);
}

/** Serializes and atomically writes a safetensors file (the target is untouched if serialization fails). */
export async function writeSafetensors(
  path: string,
  tensors: Map<string, HostTensor> | Record<string, HostTensor>,
  metadata?: Record<string, string>,
): Promise<void> {
  await writeFileAtomic(path, serializeSafetensors(tensors, metadata));
}

