// nodespawner/bullmq: sandboxed jobs spread over many machines on BullMQ (an optional peer, with ioredis).
export { startWorker } from './worker.js';
export type { StartWorkerOptions, NodespawnerWorker } from './worker.js';
export { RemoteSpawner } from './remote.js';
export type { RemoteSpawnerOptions, RemoteRunOptions } from './remote.js';
export { FileResultStore } from './store.js';
export type { ResultStore, ResultsOptions } from './store.js';
export type { Connection } from './redis.js';
export * from './errors.js';
