// The browser entry (src/web/index.ts and the worker script) must bundle for a browser: nothing it
// reaches, statically or by dynamic import, may load a Node built-in, sharp, onnxruntime-node or a
// *.node.ts module. Checked on the sources, so it needs neither a bundler nor a browser.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const NODE_ONLY = new Set(['sharp', 'onnxruntime-node', 'tar', 'yauzl', 'cli-progress', 'commander']);

/** Every module reachable from `entry` (relative imports followed), with the packages each imports; type-only imports skipped. */
function reach(entry: string): { files: string[]; packages: Map<string, string> } {
  const files: string[] = [];
  const packages = new Map<string, string>();
  const visit = (file: string) => {
    if (files.includes(file)) return;
    files.push(file);
    // comments hold example imports ("import from 'cts-seg'"); strip them first
    const src = readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
    const specs = [
      ...[...src.matchAll(/^\s*(?:import|export)\s+(?!type\b)(?:[^'";]*?\sfrom\s+)?['"]([^'"]+)['"]/gm)].map((m) => m[1]!),
      ...[...src.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)].map((m) => m[1]!),
    ];
    for (const s of specs) {
      if (!s.startsWith('.')) {
        packages.set(s, relative(ROOT, file));
        continue;
      }
      const ts = resolve(dirname(file), s.replace(/\.js$/, '.ts'));
      assert.ok(existsSync(ts), `${relative(ROOT, file)} imports ${s}, which has no .ts source`);
      visit(ts);
    }
  };
  visit(entry);
  return { files, packages };
}

for (const entry of ['src/web/index.ts', 'src/web/worker.ts']) {
  test(`${entry} reaches no Node-only module`, () => {
    const { files, packages } = reach(join(ROOT, entry));
    for (const f of files) assert.ok(!/\.node\.ts$/.test(f), `${entry} reaches ${relative(ROOT, f)}`);
    for (const [p, from] of packages) {
      const name = p.startsWith('@') ? p.split('/').slice(0, 2).join('/') : p.split('/')[0]!;
      assert.ok(!isBuiltin(p) && !NODE_ONLY.has(name), `${from} imports ${p}, which a browser cannot load`);
    }
    // and it registers the browser's backend and platform, not none
    for (const m of ['src/web/ort.ts', 'src/web/platform.ts']) assert.ok(files.includes(join(ROOT, m)), `${entry} does not import ${m}`);
    assert.ok(packages.has('onnxruntime-web/wasm') && packages.has('onnxruntime-web/webgpu'));
  });
}
