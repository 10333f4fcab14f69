// Typed jobs: a reference to a job module that carries its argument and result types, and
// optionally checks the arguments in the app before anything is queued.
import { fileURLToPath } from 'node:url';
import type { Table } from 'apache-arrow';
import { expected, expectedMessage } from './options.js';
import { InvalidArgumentError } from './errors.js';

/** What a job's default export receives as its second argument. */
export interface JobContext {
  /** Arrow tables passed with `options.inputs`, by name. */
  inputs: Record<string, Table>;
  /** The request id (unique per Spawner). */
  id: number;
}

/** The shape of a job module's default export. */
export type JobFunction<A, R> = (args: A, ctx: JobContext) => R | Promise<R>;

declare const types: unique symbol;

export interface JobRef<A, R> {
  /** Absolute path of the job module. */
  readonly path: string;
  /** Throws (a TypeError, say) when `args` are not what the job takes. */
  readonly check?: (args: unknown) => void;
  /** Type-level only: never set. */
  readonly [types]?: { args: A; result: R };
}

export type JobArgs<J> = J extends JobRef<infer A, unknown> ? A : never;
export type JobResult<J> = J extends JobRef<unknown, infer R> ? R : never;

/**
 * Declares a job module with its types: `spawner.run(job, args)` then checks `args` at compile
 * time (and at run time with `check`), and types `r.value`.
 *
 *   const sum = defineJob<{ values: number[] }, number>(new URL('./sum.mjs', import.meta.url));
 *   const r = await spawner.run(sum, { values: [1, 2] }); // r.value: number | undefined
 */
export function defineJob<A = unknown, R = unknown>(module: string | URL, options: { check?: (args: unknown) => void } = {}): JobRef<A, R> {
  const path = module instanceof URL || module.startsWith('file:') ? fileURLToPath(module) : module;
  if (!path.startsWith('/')) throw new InvalidArgumentError(expectedMessage('module', 'an absolute path or a file: URL', module));
  if (options.check !== undefined && typeof options.check !== 'function') throw expected('check', 'a function', options.check);
  return Object.freeze({ path, check: options.check });
}

export function isJobRef(x: unknown): x is JobRef<unknown, unknown> {
  return typeof x === 'object' && x !== null && !(x instanceof URL) && typeof (x as { path?: unknown }).path === 'string';
}
