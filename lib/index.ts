export { Spawner } from './spawner.js';
export type { ZygoteInfo } from './spawner.js';
export type { RunResult, RunTimings } from './job.js';
export type { SpawnerOptions, RunOptions, SandboxOptions } from './options.js';
export * from './errors.js';
