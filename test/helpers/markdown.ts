// Code blocks read out of the Markdown docs, so that the tests run the examples users read (README.md,
// docs/API.md) instead of copies that could drift from them.

export interface CodeBlock {
  /** The fence's info string (e.g. `ts`, `js`, `bash`). */
  lang: string;
  code: string;
  /** 1-based line of the opening fence, for messages. */
  line: number;
}

/** Every fenced code block (``` fences, not nested) of a Markdown text. */
export function codeBlocks(md: string): CodeBlock[] {
  const out: CodeBlock[] = [];
  const lines = md.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^\s*```(\S*)/.exec(lines[i]!);
    if (!open) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^\s*```\s*$/.test(lines[i]!); i++) body.push(lines[i]!);
    if (i >= lines.length) throw new Error(`unclosed code fence at line ${start + 1}`);
    out.push({ lang: open[1] ?? '', code: body.join('\n') + '\n', line: start + 1 });
  }
  return out;
}

/**
 * The one code block between `<!-- NAME -->` and `<!-- /NAME -->`. Throws when the markers are missing
 * or enclose no block, so renaming a marker fails the test instead of silently testing nothing.
 */
export function markedBlock(md: string, name: string): CodeBlock {
  const open = `<!-- ${name} -->`, close = `<!-- /${name} -->`;
  const a = md.indexOf(open), b = md.indexOf(close);
  if (a < 0 || b < a) throw new Error(`the markers ${open} ... ${close} are missing`);
  const lineOffset = md.slice(0, a).split('\n').length - 1;
  const blocks = codeBlocks(md.slice(a, b));
  if (blocks.length !== 1) throw new Error(`${open} must enclose exactly one code block, found ${blocks.length}`);
  return { ...blocks[0]!, line: blocks[0]!.line + lineOffset };
}
