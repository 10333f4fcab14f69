// The addon's fd watcher as the app's job readers use it: a pipe read to its end, with pause() and
// resume() for backpressure.
import { expect } from 'chai';
import fs from 'node:fs';
import { native } from '../lib/native.js';

function collect(fd: number, onChunk?: (n: number) => void) {
  const chunks: Buffer[] = [];
  let ends = 0;
  const done = new Promise<Buffer>((resolve) => {
    const w = new native.MessageWatcher(
      fd,
      (data, fds) => {
        expect(fds).to.deep.equal([]);
        if (data === null) {
          ends++;
          setTimeout(() => resolve(Buffer.concat(chunks)), 20); // and nothing after the end
          return;
        }
        chunks.push(data);
        onChunk?.(chunks.length);
      },
      true,
    );
    watchers.push(w);
  });
  return { done, chunks, ends: () => ends };
}

const watchers: Array<{ close(): void; pause(): void; resume(): void }> = [];

describe('native: MessageWatcher reading a pipe (bytes)', function () {
  afterEach(function () {
    for (const w of watchers.splice(0)) w.close();
  });

  it('delivers every byte in order, then null once at EOF', async function () {
    const [r, w] = native.pipe();
    const c = collect(r);
    const big = Buffer.alloc(300_000, 7); // more than a pipe holds: written from the thread pool
    const parts = [Buffer.from('first '), big, Buffer.from(' last')];
    for (const p of parts) await new Promise((res, rej) => fs.write(w, p, (e) => (e ? rej(e) : res(null))));
    native.close(w);
    const all = await c.done;
    expect(all.equals(Buffer.concat(parts))).to.equal(true);
    expect(c.ends()).to.equal(1);
  });

  it('holds what arrives while paused until resume()', async function () {
    const [r, w] = native.pipe();
    const c = collect(r);
    fs.writeSync(w, 'one');
    await new Promise((res) => setTimeout(res, 30));
    expect(c.chunks.map(String)).to.deep.equal(['one']);
    watchers[0].pause();
    fs.writeSync(w, 'two');
    native.close(w);
    await new Promise((res) => setTimeout(res, 50));
    expect(c.chunks.map(String)).to.deep.equal(['one']);
    expect(c.ends()).to.equal(0);
    watchers[0].resume();
    expect(String(await c.done)).to.equal('onetwo');
    expect(c.ends()).to.equal(1);
  });

  it('rejects a bytes flag that is not a boolean, saying how to call it', function () {
    const [r, w] = native.pipe();
    try {
      expect(() => new native.MessageWatcher(r, () => undefined, 'yes' as unknown as boolean)).to.throw(
        TypeError,
        /Usage: new MessageWatcher\(fd: number, onMessage: .*, bytes\?: boolean\)/,
      );
    } finally {
      native.close(r);
      native.close(w);
    }
  });
});
