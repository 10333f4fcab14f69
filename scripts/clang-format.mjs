// Formats native/ with clang-format and the repository's .clang-format; with --check, only says
// which files differ (exit 1). Debian: apt-get install clang-format.
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const check = process.argv.includes('--check');
const files = readdirSync(join(root, 'native'))
  .filter((f) => /\.(cc|h|c)$/.test(f))
  .map((f) => join('native', f));
try {
  execFileSync('clang-format', ['--version'], { stdio: 'ignore' });
} catch {
  console.error('clang-format is not installed (Debian/Ubuntu: apt-get install clang-format)');
  process.exit(2);
}
const args = check ? ['--dry-run', '--Werror', ...files] : ['-i', ...files];
try {
  execFileSync('clang-format', ['--style=file', ...args], { cwd: root, stdio: 'inherit' });
} catch {
  console.error(`clang-format: native/ is not formatted; run \`npm run format\``);
  process.exit(1);
}
