// Checkpoint files on disk (Node): the format is cts/checkpoint.ts; this reads and writes it atomically.
import { readSafetensors } from '../io/safetensors.node.js';
import { writeFileAtomic } from '../io/fs.node.js';
import { parseCheckpoint, serializeCheckpoint, type LoadCheckpointOptions, type ModelCheckpoint } from './checkpoint.js';

/** Reads and strictly validates a checkpoint file (ours, or a plain official-named state dict). */
export async function loadCheckpoint(path: string, o: LoadCheckpointOptions = {}): Promise<ModelCheckpoint> {
  return parseCheckpoint(await readSafetensors(path), path, o);
}

/** Writes a checkpoint atomically (temp file, fsync, rename). */
export async function saveCheckpoint(path: string, ckpt: ModelCheckpoint): Promise<void> {
  await writeFileAtomic(path, serializeCheckpoint(ckpt, path));
}
