// An in-thread ESM linker for job modules (vm.SourceTextModule). Node 20 runs custom loader hooks
// on a separate thread, which a forked child does not have; and a job outside the app's tree
// could not resolve 'apache-arrow' through node_modules, or would load a second, cold copy.
// Here every preloaded module is served by its bare name (and by its resolved file URL) from
// the zygote's warm instance; everything else is loaded from disk through this same linker, so
// that its own imports of preloaded modules are mapped too. (Node 22.15+ and 24 have synchronous
// in-thread hooks, module.registerHooks(), which can serve preloads the same way; a job imported
// through Node's own loader took longer in a child than through this linker, on both.)
// TypeScript modules have their types stripped by Node's own stripper where Node has one.
import vm from 'node:vm';
import fs from 'node:fs';
import module, { createRequire, isBuiltin } from 'node:module';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

type Namespace = Record<string, unknown>;

/** Node's type stripper (Node 22.13+), or undefined. */
const stripTypes = (module as { stripTypeScriptTypes?: (code: string, options?: { mode: 'strip' }) => string }).stripTypeScriptTypes;

/**
 * Whether source that no package.json types has ES module syntax: Node's own test (compile it as
 * CommonJS; the errors that only module syntax causes mean ESM).
 */
const moduleOnlyErrors = ['Cannot use import statement outside a module', "Unexpected token 'export'", "Cannot use 'import.meta' outside a module"];
function hasModuleSyntax(source: string): boolean {
  try {
    vm.compileFunction(source, ['exports', 'require', 'module', '__filename', '__dirname']);
    return false;
  } catch (e) {
    if (!(e instanceof SyntaxError)) return false;
    if (moduleOnlyErrors.some((m) => e.message.includes(m))) return true;
    // Top-level await is valid only in a module: Node retries those as ESM too.
    if (!e.message.includes('await is only valid')) return false;
    try {
      new vm.SourceTextModule(source);
      return true;
    } catch {
      return false;
    }
  }
}

function synthetic(ns: Namespace, identifier: string): vm.Module {
  const names = Object.keys(ns);
  return new vm.SyntheticModule(
    names,
    function (this: vm.SyntheticModule) {
      for (const n of names) this.setExport(n, ns[n]);
    },
    { identifier },
  );
}

export class Linker {
  /** Warm namespaces by bare name and by file URL; filled in the zygote before any fork. */
  private readonly preloaded = new Map<string, Namespace>();
  private readonly modules = new Map<string, Promise<vm.Module>>();
  private readonly packageTypes = new Map<string, string>();

  /** Registers a warm module; its synthetic module record is linked and evaluated here, once. */
  async addPreloaded(names: string[], ns: Namespace): Promise<void> {
    const m = synthetic(ns, names[0]);
    await m.link(() => {
      throw new Error('unreachable: synthetic modules have no imports');
    });
    await m.evaluate();
    for (const n of names) {
      this.preloaded.set(n, ns);
      this.modules.set(`preload:${n}`, Promise.resolve(m));
    }
  }

  preloadedNames(): string[] {
    return [...this.preloaded.keys()];
  }

  /** Imports, links and evaluates the module at an absolute path; returns its namespace. */
  async importFile(path: string): Promise<Namespace> {
    const m = await this.moduleFor(pathToFileURL(path).href);
    await this.ready(m);
    return m.namespace as Namespace;
  }

  /** Creates the module records of common builtins in the zygote, so children only link them. */
  /** Loads Node's type stripper (a WebAssembly module) in the zygote, so that no child does. */
  warmTypeScript(): void {
    stripTypes?.('const warm: number = 1;', { mode: 'strip' });
  }

  async warmBuiltins(names: string[]): Promise<void> {
    for (const name of names) await this.ready(await this.resolve(`node:${name}`, 'file:///'));
  }

  /**
   * Imports a job file the way a child does, runs its default export once, then forgets it and
   * the package types it read (zygote warm-up: the file is nodespawner's own).
   */
  async warmUp(path: string): Promise<void> {
    const ns = await this.importFile(path);
    await (ns as { default: (x: number) => Promise<unknown> }).default(1);
    for (const key of [...this.modules.keys()]) if (!key.startsWith('preload:') && !key.startsWith('node:')) this.modules.delete(key);
    this.packageTypes.clear();
  }

  private async ready(m: vm.Module): Promise<void> {
    if (m.status === 'unlinked') await m.link((spec, ref) => this.resolve(spec, ref.identifier));
    if (m.status === 'linked') await m.evaluate();
    if (m.status === 'errored') throw m.error;
  }

  private resolve(specifier: string, parentUrl: string): Promise<vm.Module> {
    const warm = this.preloaded.get(specifier);
    if (warm) return this.cached(`preload:${specifier}`, async () => synthetic(warm, specifier));
    if (isBuiltin(specifier)) {
      const name = specifier.startsWith('node:') ? specifier : `node:${specifier}`;
      return this.cached(name, async () => synthetic((await import(name)) as Namespace, name));
    }
    let url: string;
    if (/^(\.{0,2}\/|file:)/.test(specifier)) {
      url = new URL(specifier, parentUrl).href;
    } else {
      // A bare name that was not preloaded: Node's own ESM resolution, from the importing file.
      url = (import.meta as unknown as { resolve(s: string, p: string): string }).resolve(specifier, parentUrl);
    }
    return this.moduleFor(url);
  }

  private cached(key: string, make: () => Promise<vm.Module>): Promise<vm.Module> {
    let p = this.modules.get(key);
    if (!p) {
      p = make();
      this.modules.set(key, p);
    }
    return p;
  }

  private moduleFor(url: string): Promise<vm.Module> {
    const warm = this.preloaded.get(url);
    if (warm) return this.cached(`preload:${url}`, async () => synthetic(warm, url));
    if (url.startsWith('node:')) return this.cached(url, async () => synthetic((await import(url)) as Namespace, url));
    if (!url.startsWith('file:')) throw new Error(`cannot import ${url}: only file: and node: modules are supported in a job`);
    return this.cached(url, async () => this.load(url));
  }

  private async load(url: string): Promise<vm.Module> {
    const path = fileURLToPath(url);
    const ext = extname(path);
    if (ext === '.json') {
      const value = JSON.parse(fs.readFileSync(path, 'utf8'));
      return synthetic({ default: value }, url);
    }
    let source: string | null = null;
    let esm = ext === '.mjs' || ext === '.mts';
    if (ext === '.js' || ext === '.ts') {
      const type = this.packageType(dirname(path));
      if (type === 'none') {
        // No declared type: ESM if the source has module syntax, as Node decides (TypeScript too).
        source = this.source(path, ext);
        esm = hasModuleSyntax(source);
      } else {
        esm = type === 'module';
      }
    }
    if (!esm) {
      // CommonJS, TypeScript included: Node's require() strips the types itself.
      const exported = createRequire(path)(path);
      const ns: Namespace = { default: exported };
      if (exported && typeof exported === 'object') {
        for (const k of Object.keys(exported)) if (k !== 'default') ns[k] = exported[k];
      }
      return synthetic(ns, url);
    }
    source ??= this.source(path, ext);
    return new vm.SourceTextModule(source, {
      identifier: url,
      initializeImportMeta(meta) {
        Object.assign(meta, { url, filename: path, dirname: dirname(path) });
      },
      importModuleDynamically: (async (specifier: string) => {
        const m = await this.resolve(specifier, url);
        await this.ready(m);
        return m;
      }) as never,
    });
  }

  /** A module's source, its types stripped for TypeScript. */
  private source(path: string, ext: string): string {
    const text = fs.readFileSync(path, 'utf8');
    if (ext !== '.ts' && ext !== '.mts') return text;
    if (!stripTypes) throw new Error(`cannot run the TypeScript module ${path}: Node ${process.version} does not strip types`);
    return stripTypes(text, { mode: 'strip' }); // types become spaces: lines and columns stay
  }

  /** The "type" of the nearest package.json (`none` without one or without the field), as Node decides whether a .js file is ESM. */
  private packageType(dir: string): string {
    const known = this.packageTypes.get(dir);
    if (known !== undefined) return known;
    let type = 'none';
    const pkg = join(dir, 'package.json');
    if (fs.existsSync(pkg)) {
      try {
        const declared = JSON.parse(fs.readFileSync(pkg, 'utf8')).type;
        type = declared === 'module' || declared === 'commonjs' ? declared : 'none';
      } catch {
        type = 'none';
      }
    } else if (dirname(dir) !== dir) {
      type = this.packageType(dirname(dir));
    }
    this.packageTypes.set(dir, type);
    return type;
  }
}
