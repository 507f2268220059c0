// The layering rules, checked on the sources: (1) imports run one way, base/io -> graph -> runtime ->
// nn -> models -> cts -> data/train/eval -> export/bench/demo/zoo -> api -> node/web/cli; (2) the
// environment-neutral core (everything the browser entry can reach, and the folders base, graph,
// runtime, nn, models, cts, export, api, web) imports nothing from Node: no `node:*` builtin, no
// Node-only package and no `*.node.ts` module (the Node side of a module lives beside it as
// `name.node.ts`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const SRC = join(ROOT, 'src');
const RANK: Record<string, number> = {
  base: 0, io: 0, graph: 1, runtime: 2, nn: 3, models: 4, cts: 5, data: 6, train: 6, eval: 6,
  export: 7, bench: 7, demo: 7, zoo: 7, api: 8, node: 9, web: 9, cli: 9, 'index.ts': 9,
};
const CORE = ['base', 'graph', 'runtime', 'nn', 'models', 'cts', 'export', 'api', 'web'];
const NODE_ONLY = /^(node:|fs$|path$|os$|crypto$|child_process$|worker_threads$|sharp$|onnxruntime-node$|yauzl$|tar$|cli-progress$|commander$)/;

function walk(dir: string, out: string[] = []): string[] {
  if (!existsSync(dir)) return out;
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (p.endsWith('.ts') && !p.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** Runtime imports of a file (type-only imports are erased and do not count). */
function imports(file: string): string[] {
  const s = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of s.matchAll(/^\s*(?:import|export)\s+(type\s+)?(?:[^'";]*?\sfrom\s*)?['"]([^'"]+)['"]/gm)) if (!m[1]) out.push(m[2]!);
  for (const m of s.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) out.push(m[1]!);
  return out;
}

const layer = (file: string) => relative(SRC, file).split('/')[0]!;

test('imports run one way down the layers', () => {
  const bad: string[] = [];
  for (const f of walk(SRC)) {
    for (const spec of imports(f)) {
      if (!spec.startsWith('.')) continue;
      const target = resolve(dirname(f), spec).replace(/\.js$/, '.ts');
      const from = RANK[layer(f)], to = RANK[layer(target)];
      assert.ok(from !== undefined && to !== undefined, `unranked folder: ${relative(SRC, f)} -> ${relative(SRC, target)}`);
      if (to > from) bad.push(`${relative(SRC, f)} imports ${relative(SRC, target)}`);
    }
  }
  assert.deepEqual(bad, [], `upward imports:\n${bad.join('\n')}`);
});

test('the environment-neutral core imports nothing from Node', () => {
  const roots = CORE.flatMap((d) => walk(join(SRC, d))).filter((f) => !f.endsWith('.node.ts'));
  assert.ok(roots.length > 40, `found only ${roots.length} core files`);
  const seen = new Set<string>(), bad: string[] = [];
  const stack = [...roots];
  while (stack.length) {
    const f = stack.pop()!;
    if (seen.has(f)) continue;
    seen.add(f);
    for (const spec of imports(f)) {
      if (spec.startsWith('.')) {
        const t = resolve(dirname(f), spec).replace(/\.js$/, '.ts');
        if (t.endsWith('.node.ts')) bad.push(`${relative(SRC, f)} -> ${spec}`);
        else stack.push(t);
      } else if (NODE_ONLY.test(spec)) bad.push(`${relative(SRC, f)} -> ${spec}`);
    }
  }
  assert.deepEqual(bad, [], `Node imports reachable from the core:\n${bad.join('\n')}`);
});

test('the checker sees an upward import and a Node import when there is one', () => {
  // the rules above must be able to fail: this file itself imports node:fs, and eval ranks above cts
  assert.ok(imports(fileURLToPath(import.meta.url).replace(/dist\/test/, 'test').replace(/\.js$/, '.ts')).some((s) => NODE_ONLY.test(s)));
  assert.ok(RANK.eval! > RANK.cts!);
});
