export { Spawner } from './spawner.js';
export type { ZygoteInfo, JobStream } from './spawner.js';
export type { RunResult, RunTimings } from './job.js';
export type { SpawnerOptions, RunOptions, SandboxOptions, NetworkMode } from './options.js';
export type { EgressOptions, EgressStackName } from './egress.js';
export * from './errors.js';
export { defineJob } from './define.js';
export type { JobRef, JobContext, JobFunction, JobArgs, JobResult } from './define.js';
export type { SpawnerStats, Histogram } from './stats.js';
