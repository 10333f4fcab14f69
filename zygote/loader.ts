// How the zygote and its children import job modules. Where Node has synchronous in-thread
// module hooks (`module.registerHooks()`, Node 22.15+ and 24), jobs are imported by Node's own
// loader, with one resolve hook that serves every preloaded bare name from the zygote's warm
// instance: TypeScript, import.meta and the module cache are Node's. On Node 20, whose loader
// hooks run on a separate thread that a forked child does not have, an in-thread linker on
// vm.SourceTextModule does the same (linker.ts).
import module from 'node:module';
import { pathToFileURL } from 'node:url';
import { hasSyncHooks } from '../lib/runtime.js';

export type Namespace = Record<string, unknown>;

export interface JobLoader {
  /** Registers a warm module by its names: the bare specifier first, then its resolved URL. */
  addPreloaded(names: string[], ns: Namespace): Promise<void>;
  /** Imports, links and evaluates the module at an absolute path; returns its namespace. */
  importFile(path: string): Promise<Namespace>;
  /** Loads common builtins in the zygote, so children only link them. */
  warmBuiltins(names: string[]): Promise<void>;
  /** Imports a job file the way a child does and runs its default export once (zygote warm-up). */
  warmUp(path: string): Promise<void>;
}

type RegisterHooks = (hooks: {
  resolve?: (specifier: string, context: { conditions: string[]; parentURL?: string }, next: (s: string, c?: unknown) => { url: string }) => { url: string; shortCircuit?: boolean };
}) => unknown;


class HooksLoader implements JobLoader {
  /** Preloaded bare names and the URLs the zygote loaded them from. */
  private readonly warm = new Map<string, string>();

  constructor() {
    const warm = this.warm;
    (module as unknown as { registerHooks: RegisterHooks }).registerHooks({
      // ESM imports only: a CommonJS job's require() resolves as in any Node process.
      resolve(specifier, context, next) {
        const url = context.conditions.includes('import') ? warm.get(specifier) : undefined;
        return url === undefined ? next(specifier, context) : { url, shortCircuit: true };
      },
    });
  }

  async addPreloaded(names: string[], _ns: Namespace): Promise<void> {
    const [spec, url] = names;
    if (url !== undefined && !spec.startsWith('/') && !spec.startsWith('file:')) this.warm.set(spec, url);
  }

  importFile(path: string): Promise<Namespace> {
    return import(pathToFileURL(path).href) as Promise<Namespace>;
  }

  async warmBuiltins(names: string[]): Promise<void> {
    for (const name of names) await import(`node:${name}`);
  }

  async warmUp(path: string): Promise<void> {
    const ns = await this.importFile(path);
    await (ns as { default: (x: number) => Promise<unknown> }).default(1);
  }
}

export async function createLoader(): Promise<JobLoader> {
  if (hasSyncHooks) return new HooksLoader();
  const { Linker } = await import('./linker.js');
  return new Linker();
}
