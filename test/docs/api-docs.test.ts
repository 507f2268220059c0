// docs/API.md is written by hand; these checks keep it honest: every ```ts example type-checks
// against the compiled declarations (dist/src/index.d.ts as `cts-seg`, dist/src/web/index.d.ts as
// `cts-seg/web`), and every field of the public API types is named in it, so a new option cannot
// land undocumented.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { codeBlocks } from '../helpers/markdown.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DOC = readFileSync(join(ROOT, 'docs/API.md'), 'utf8');
const NODE_TYPES = join(ROOT, 'dist/src/index.d.ts');
const WEB_TYPES = join(ROOT, 'dist/src/web/index.d.ts');

test('every ```ts block of docs/API.md type-checks against the compiled cts-seg types', (t) => {
  const blocks = codeBlocks(DOC).filter((b) => b.lang === 'ts');
  assert.ok(blocks.length >= 5, `docs/API.md has only ${blocks.length} ts blocks`);
  const web = existsSync(WEB_TYPES);
  const checked = blocks.filter((b) => web || !/from 'cts-seg\/web'/.test(b.code));
  if (checked.length < blocks.length) {
    t.diagnostic(`${blocks.length - checked.length} block(s) importing cts-seg/web not checked: ${WEB_TYPES} does not exist yet (the browser entry is on another branch)`);
  }
  // inside dist/ (ignored by git) so that 'sharp', 'node:*' and @types/node resolve from the repository
  const dir = mkdtempSync(join(ROOT, 'dist', '.api-docs-'));
  try {
    const files = checked.map((b) => {
      const name = `line-${b.line}.ts`;
      writeFileSync(join(dir, name), `${b.code}export {};\n`);
      return name;
    });
    writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
      compilerOptions: {
        target: 'ES2022', module: 'ESNext', moduleResolution: 'Bundler', lib: ['ES2022', 'DOM', 'DOM.Iterable'],
        types: ['node'], strict: true, noEmit: true, skipLibCheck: true,
        paths: { 'cts-seg': [NODE_TYPES], 'cts-seg/web': [WEB_TYPES] },
      },
      files,
    }, null, 2));
    const r = spawnSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', dir, '--pretty', 'false'], { encoding: 'utf8' });
    // messages name the file line-<fence line>.ts(<line in block>,<col>): point at the Markdown line instead
    const out = `${r.stdout}${r.stderr}`.replace(/\S*line-(\d+)\.ts\((\d+),(\d+)\)/g, (_, fence: string, l: string, c: string) => `docs/API.md:${Number(fence) + Number(l)}:${c}`);
    assert.equal(r.status, 0, `docs/API.md examples do not type-check:\n${out}`);
    t.diagnostic(`${checked.length} blocks type-checked`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Property names of the interfaces (and their nested object types) declared in a source file. */
function declaredProperties(file: string, only?: readonly string[]): { owner: string; name: string }[] {
  const src = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true);
  const props: { owner: string; name: string }[] = [];
  const visit = (node: ts.Node, owner: string): void => {
    if (ts.isPropertySignature(node) && ts.isIdentifier(node.name)) props.push({ owner, name: node.name.text });
    ts.forEachChild(node, (c) => visit(c, owner));
  };
  for (const s of src.statements) {
    if (ts.isInterfaceDeclaration(s) && (!only || only.includes(s.name.text))) visit(s, s.name.text);
  }
  return props;
}

/** Public members of a class declared in a source file (not private, not the constructor). */
function publicMembers(file: string, cls: string): string[] {
  const src = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true);
  const out: string[] = [];
  for (const s of src.statements) {
    if (!ts.isClassDeclaration(s) || s.name?.text !== cls) continue;
    for (const m of s.members) {
      const isPrivate = ts.getCombinedModifierFlags(m as ts.Declaration) & ts.ModifierFlags.Private;
      if (!isPrivate && m.name && ts.isIdentifier(m.name)) out.push(m.name.text);
    }
    for (const p of s.members.filter(ts.isConstructorDeclaration).flatMap((c) => [...c.parameters])) {
      const isPrivate = ts.getCombinedModifierFlags(p) & ts.ModifierFlags.Private;
      if (!isPrivate && ts.isIdentifier(p.name)) out.push(p.name.text);
    }
  }
  return out;
}

test('docs/API.md names every field of the Segmenter API types and every public Segmenter member', () => {
  const fields = [...declaredProperties(join(ROOT, 'src/api/types.ts')), ...declaredProperties(join(ROOT, 'src/api/platform.ts'), ['RawImage'])];
  assert.ok(fields.length > 30, `only ${fields.length} fields found: has src/api/types.ts moved?`);
  const missing = fields.filter((f) => !DOC.includes(`\`${f.name}\``)).map((f) => `${f.owner}.${f.name}`);
  assert.deepEqual(missing, [], 'fields not documented (as `name`) in docs/API.md');

  const members = publicMembers(join(ROOT, 'src/api/segmenter.ts'), 'Segmenter');
  assert.ok(members.includes('load') && members.includes('segment'), `Segmenter members not found: ${members.join(', ')}`);
  assert.deepEqual(members.filter((m) => !new RegExp(`\\b${m}\\b`).test(DOC)), [], 'public Segmenter members not mentioned in docs/API.md');

  const types = [...new Set(fields.map((f) => f.owner))];
  assert.deepEqual(types.filter((name) => !DOC.includes(`\`${name}\``)), [], 'API types not named in docs/API.md');
});
