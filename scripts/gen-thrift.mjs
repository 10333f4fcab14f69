// Regenerates thrift/gen-js from thrift/nodespawner.thrift with the Apache Thrift compiler
// (Debian: apt-get install thrift-compiler). The output is committed and never edited by hand;
// files are renamed to .cjs/.d.cts because this package is ESM.
//
// Versions: the compiler is the one Debian ships (compilerVersion below, checked); the `thrift`
// runtime in package.json is newer, for its protocol's recursion depth limit (the app decodes
// what hostile children send). The generated js:node,es6 code uses only the runtime API both
// versions share (Thrift.TType, copyList, the protocol's read/write calls) and requires `thrift`
// and `node-int64`, both dependencies of this package; test/00.wire checks all of this.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, renameSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const compilerVersion = '0.17.0';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const version = execFileSync('thrift', ['--version'], { encoding: 'utf8' }).trim();
if (version !== `Thrift version ${compilerVersion}`) {
  throw new Error(
    `expected the Thrift compiler ${compilerVersion} (thrift --version said: ${version}); with another, update compilerVersion here and check test/00.wire`,
  );
}
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
