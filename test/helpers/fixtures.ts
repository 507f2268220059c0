// Locations of test data: the tiny96 reference case shipped in test/fixtures, and the shared
// folder beside the checkout (../shared) which CI provides but a user's clone may not have.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Absolute path of a file under test/fixtures (tests run from dist/test/<dir>/). */
export function fixture(rel: string): string {
  return fileURLToPath(new URL(`../../../test/fixtures/${rel}`, import.meta.url));
}

/** The shared folder (env CTS_SHARED_DIR, else ../shared beside the repository), or undefined. */
export function sharedDir(): string | undefined {
  const env = process.env.CTS_SHARED_DIR;
  if (env) return existsSync(env) ? env : undefined;
  const p = fileURLToPath(new URL('../../../../shared/', import.meta.url));
  return existsSync(p) ? p : undefined;
}

/** Path of a reference case: tiny96 from the fixtures, others from ../shared/reference; undefined when absent. */
export function referenceCase(name: string): string | undefined {
  if (name === 'tiny96') return fixture('tiny96/');
  const s = sharedDir();
  const p = s ? `${s}/reference/${name}/` : undefined;
  return p && existsSync(p) ? p : undefined;
}
