// Regenerates thrift/gen-js from thrift/nodespawner.thrift with the Apache Thrift compiler
// (Debian: apt-get install thrift-compiler). The output is committed and never edited by hand;
// files are renamed to .cjs/.d.cts because this package is ESM.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, renameSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'thrift', 'gen-js');
const tmp = mkdtempSync(join(tmpdir(), 'nodespawner-thrift-'));
try {
  execFileSync('thrift', ['--gen', 'js:node,es6', '-out', tmp, join(root, 'thrift', 'nodespawner.thrift')], { stdio: 'inherit' });
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  for (const name of readdirSync(tmp)) {
    const target = name.replace(/\.d\.ts$/, '.d.cts').replace(/\.js$/, '.cjs');
    renameSync(join(tmp, name), join(out, target));
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
