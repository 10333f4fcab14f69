// ESLint for the TypeScript sources (typescript-eslint's recommended rules); formatting is
// prettier's (npm run lint runs both).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'build/', 'prebuilds/', 'node_modules/', 'thrift/gen-js/', 'test/native/build/', 'test/fixtures/', 'bench/fixtures/', 'examples/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      // prettier wraps code at 160 columns but not string literals or comments: split those.
      'max-len': ['error', { code: 200, ignoreUrls: true }],
    },
  },
  {
    // Tests: chai's property assertions (`expect(x).to.be.ok`) and `any` for what a rejection holds.
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-unused-expressions': 'off', '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    files: ['**/*.mjs', '**/*.js'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', URL: 'readonly' } },
  },
);
