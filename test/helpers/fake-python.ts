// A stand-in for a Python that speaks the `--serve` line protocol of the bench/ scripts, for tests
// of the PyTorch comparisons without torch: `-c ...` succeeds (torch "imports"), anything but
// `script --serve ...` exits 3, the ready line comes after `onStart`, `quit` answers a peak RSS of
// 42 MiB, and every other line runs `onCommand` with the line in `cmd` (it must print one answer).
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** JavaScript run by the fake at start and per request (`cmd`: the request line, trimmed). */
export interface FakePythonScript {
  onStart?: string;
  onCommand: string;
}

/** Writes the fake as `dir/python` (executable) and returns its path. */
export function fakePython(dir: string, s: FakePythonScript): string {
  const p = join(dir, 'python');
  writeFileSync(p, `#!${process.execPath}
const fs = require('fs');
if (process.argv[2] === '-c') process.exit(0);
if (!process.argv.includes('--serve')) process.exit(3);
${s.onStart ?? ''}
console.log(JSON.stringify({ ready: true, torch_version: '0.0-fake', blas: 'none', threads: 1 }));
let buf = '';
process.stdin.on('data', (d) => {
  buf += d;
  let i;
  while ((i = buf.indexOf('\\n')) >= 0) {
    const cmd = buf.slice(0, i).trim(); buf = buf.slice(i + 1);
    if (cmd === 'quit') { console.log(JSON.stringify({ peak_rss_mb: 42 })); process.exit(0); }
    ${s.onCommand}
  }
});
`);
  chmodSync(p, 0o755);
  return p;
}
