// A job module that the zygote imports, runs once and forgets before serving (Linker.warmUp), so
// that the way a child loads a job file (URL and path handling, the package type, reading it, the
// module record, linking a preloaded and a builtin import) is compiled once in the zygote and not
// in every child. It runs in the zygote: it must stay free of side effects.
import { tableFromArrays } from 'apache-arrow';
import fs from 'node:fs';

export default async function warmUpJob(a: number) {
  return { table: tableFromArrays({ x: Int32Array.of(a) }), fsLoaded: typeof fs.readFileSync === 'function' };
}
