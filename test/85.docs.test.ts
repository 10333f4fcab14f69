// Every error points to a section of docs/troubleshooting.md that exists.
import { expect } from 'chai';
import { join } from 'node:path';
import * as api from '../lib/index.js';
import { packageRoot, troubleshootingAnchors } from './helpers.js';

describe('docs', function () {
  it('gives every error class a `help` link to an existing troubleshooting section', function () {
    const anchors = troubleshootingAnchors();
    const errors = Object.values(api).filter((v) => typeof v === 'function' && v.prototype instanceof api.NodespawnerError) as Array<
      new (...a: never[]) => api.NodespawnerError
    >;
    expect(errors.length).to.be.greaterThan(10);
    for (const E of errors) {
      const e = Object.create(E.prototype) as api.NodespawnerError;
      const code = new (E as unknown as new (...a: unknown[]) => api.NodespawnerError)('x', 'x', 1, 'EPERM', '', {}).code;
      Object.defineProperty(e, 'code', { value: code });
      const [file, hash] = e.help.split('#');
      expect(file).to.equal(join(packageRoot, 'docs', 'troubleshooting.md'));
      expect([...anchors], `${E.name} (${code}) -> #${hash}`).to.include(hash);
    }
  });
});
