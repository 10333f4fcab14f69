// Checks that the zygote's warm code reaches its children, read from V8 itself in a child: the
// runner's result encoding is compiled (a table result compiles and deoptimizes nothing), and the
// code the zygote ran has feedback vectors while a job's own code gets them as in any Node
// process. These depend on V8's internals (trace output, %DebugPrint) and differ between Node
// versions: the benchmark reports them, the test suite does not assert them.
import { Spawner } from '../lib/index.js';
import type { RunResult } from '../lib/index.js';
import { fixture } from './util.js';

export interface WarmCheck {
  name: string;
  ok: boolean;
  detail: string;
}

const traced = (r: RunResult) => r.stdout.split('\n').filter((l) => /^\[(compiling method|bailout)/.test(l));

async function waitForPreforked(s: Spawner, n: number): Promise<void> {
  while (s.stats().preforked.waiting < n) await new Promise((r) => setTimeout(r, 5));
}

async function resultEncodingCompiled(s: Spawner): Promise<WarmCheck> {
  const name = "a child's table result compiles and deoptimizes nothing (--trace-opt, --trace-deopt)";
  const control = await s.run(fixture('traced-table.mjs'), { rows: 10, control: true });
  if (!/compiling method .*square/.test(traced(control).join('\n')))
    return { name, ok: false, detail: 'the trace shows nothing in a child (the control saw no compile)' };
  for (const args of [{ rows: 1000 }, { rows: 3 }, { rows: 50, labels: true }]) {
    for (let i = 0; i < 3; i++) {
      const r = await s.run(fixture('traced-table.mjs'), args);
      const lines = traced(r);
      if (lines.length > 0) return { name, ok: false, detail: `${JSON.stringify(args)}, run ${i} (preforked: ${r.preforked}): ${lines.join(' ')}` };
    }
  }
  return { name, ok: true, detail: '9 runs of 3 table shapes' };
}

async function feedbackVectors(): Promise<WarmCheck> {
  const name = "code the zygote ran has feedback vectors in a child, a job's own code does not (%DebugPrint)";
  const s = await Spawner.start({ concurrency: 1, preload: [fixture('feedback-preload.mjs')] });
  try {
    const vector = (r: RunResult, fn: string): boolean | string => {
      const block = r.stdout.split(/^DebugPrint: /m).find((b) => b.includes(`<String[${fn.length}]: #${fn}>`));
      const line = block && /^ - feedback vector: (.*)$/m.exec(block);
      return line ? !line[1].startsWith('No feedback vector') : `no %DebugPrint of ${fn}`;
    };
    for (const preforked of [false, true]) {
      if (preforked) await waitForPreforked(s, 1);
      const r = await s.run(fixture('feedback.mjs'), { preload: fixture('feedback-preload.mjs') });
      const [once, own] = [vector(r, 'once'), vector(r, 'own')];
      if (once !== true || own !== false)
        return { name, ok: false, detail: `preforked: ${r.preforked}: once (the zygote ran it) ${once}, own (the job ran it) ${own}` };
    }
    return { name, ok: true, detail: 'a forked and a preforked run' };
  } finally {
    await s.close();
  }
}

export async function warmChecks(): Promise<WarmCheck[]> {
  const s = await Spawner.start({ concurrency: 2, prefork: 2 });
  let encoding: WarmCheck;
  try {
    encoding = await resultEncodingCompiled(s);
  } finally {
    await s.close();
  }
  return [encoding, await feedbackVectors()];
}
