// A BullMQ worker that runs each queued job inline with spawner.run(): the job names a module this
// worker registered, its request and inputs come from Redis (or the result store), and its outcome
// goes back to the caller's reply list. Sandbox outcomes fail without retry; faults of the machine
// (zygote gone, spawner closed, Redis) are retried by BullMQ on any worker.
import { availableParallelism } from 'node:os';
import { tableFromIPC, tableToIPC } from 'apache-arrow';
import type { Table } from 'apache-arrow';
import { UnrecoverableError, WaitingError, Worker } from 'bullmq';
import type { ConnectionOptions, Job, WorkerOptions } from 'bullmq';
import { Spawner } from '../spawner.js';
import type { SpawnerOptions } from '../options.js';
import { expected } from '../options.js';
import { NodespawnerError } from '../errors.js';
import type { JobRef } from '../define.js';
import { T, decode, encode, fromWire, i64, toWire } from '../wire.js';
import type { RemoteReply, RemoteRequest } from '../wire.js';
import { UnknownJobError, WorkerError } from './errors.js';
import { toRemoteError, toRemoteResult } from './envelope.js';
import { checkConnection, checkQueueName, keysOf, redisClient } from './redis.js';
import type { Connection } from './redis.js';
import { dropBlob, putBlob, readBlob, resolveResults } from './store.js';
import type { ResultsOptions } from './store.js';

export interface StartWorkerOptions {
  /** The BullMQ queue's name. */
  queue: string;
  connection: Connection;
  /** A started Spawner to run jobs with; the worker does not close it. */
  spawner?: Spawner;
  /** Options of a Spawner the worker starts (and closes) itself, when `spawner` is not given. @default {} */
  spawnerOptions?: SpawnerOptions;
  /** The jobs this worker runs, by the name a queued job gives: absolute paths, file: URLs or defineJob() references. */
  jobs: Record<string, string | URL | JobRef<any, any>>; // eslint-disable-line @typescript-eslint/no-explicit-any
  /** Jobs taken from the queue at once. @default spawnerOptions.concurrency ?? os.availableParallelism() */
  concurrency?: number;
  /** Where inputs and results travel; the same on every producer and worker of the queue. */
  results?: ResultsOptions;
  /** BullMQ's key prefix. @default 'bull' */
  prefix?: string;
  /** Further options of the BullMQ Worker: lockDuration, stalledInterval, maxStalledCount... */
  bullmq?: Omit<WorkerOptions, 'connection' | 'concurrency' | 'autorun' | 'prefix'>;
  /** On SIGTERM and SIGINT, drain (running jobs finish, nothing new starts), then end as the signal would. @default true */
  handleSignals?: boolean;
}

export interface NodespawnerWorker {
  /** The BullMQ Worker (its events: 'active', 'completed', 'failed'...). */
  readonly worker: Worker;
  readonly spawner: Spawner;
  /** Drains: running jobs finish and report, nothing new starts; then the connections (and a spawner the worker started) close. */
  close(): Promise<void>;
}

/** Failures of this machine rather than of the job: another attempt, maybe on another worker, may succeed. */
const retriedCodes = new Set(['ERR_ZYGOTE_GONE', 'ERR_CLOSED', 'ERR_QUEUE_FULL', 'ERR_SANDBOX_SETUP', 'ERR_START', 'ERR_QUEUE_UNAVAILABLE']);
const retried = (e: unknown) => (e instanceof NodespawnerError ? retriedCodes.has(e.code) : !(e instanceof TypeError));

export async function startWorker(options: StartWorkerOptions): Promise<NodespawnerWorker> {
  if (typeof options !== 'object' || options === null) throw expected('options', 'an object', options);
  const queue = checkQueueName(options.queue);
  const connection = checkConnection(options.connection);
  const results = resolveResults(options.results);
  const prefix = options.prefix ?? 'bull';
  const keys = keysOf(prefix, queue);
  if (typeof options.jobs !== 'object' || options.jobs === null) throw expected('jobs', 'an object of job names and modules', options.jobs);
  const jobs = new Map(Object.entries(options.jobs));
  for (const [name, module] of jobs) {
    const path =
      typeof module === 'object' && !(module instanceof URL) ? module.path : module instanceof URL ? module.protocol === 'file:' && module.pathname : module;
    if (typeof path !== 'string' || !(path.startsWith('/') || path.startsWith('file:')))
      throw expected(`jobs.${name}`, 'an absolute path, a file: URL or a defineJob() reference', module);
  }
  const concurrency = options.concurrency ?? options.spawnerOptions?.concurrency ?? availableParallelism();
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) throw expected('concurrency', 'a positive integer', concurrency);
  if (options.spawner !== undefined && !(options.spawner instanceof Spawner)) throw expected('spawner', 'a started Spawner', options.spawner);

  const spawner = options.spawner ?? (await Spawner.start(options.spawnerOptions));
  const redis = redisClient(connection, { maxRetriesPerRequest: null });
  const subscriber = redisClient(connection, { maxRetriesPerRequest: null });

  /** Pushes the reply to the caller and removes the request and its inputs: the run is over. */
  async function finish(jobId: string, req: RemoteRequest, outcome: RemoteReply['outcome']): Promise<void> {
    const reply = encode(T.RemoteReply, { jobId, outcome: new T.RemoteOutcome(outcome) });
    await redis.multi().lpush(req.replyTo, reply).pexpire(req.replyTo, results.ttl).del(keys.request(jobId)).exec();
    for (const input of req.inputs) await dropBlob(results, input.ipc);
  }

  async function readRequest(jobId: string): Promise<RemoteRequest | null> {
    const raw = await redis.getBuffer(keys.request(jobId));
    if (!raw) return null;
    const req = decode(T.RemoteRequest, raw);
    if (!req.replyTo.startsWith(keys.replies('')))
      throw new WorkerError(`job ${jobId}: its reply list ${JSON.stringify(req.replyTo)} is not one of this queue's`);
    return req;
  }

  async function run(job: Job, req: RemoteRequest, signal: AbortSignal | undefined) {
    const module = jobs.get(job.name);
    if (module === undefined) throw new UnknownJobError(job.name);
    const inputs: Record<string, Table> = {};
    for (const input of req.inputs) inputs[input.name] = tableFromIPC(await readBlob(results, input.ipc, `input ${input.name}`));
    const timeout = req.timeout == null ? undefined : i64(req.timeout);
    const r = await spawner.run(module as string, fromWire(req.jobArgs), { inputs, timeout, signal });
    const body = r.table ? tableToIPC(r.table, 'stream') : encode(T.Value, toWire(r.value, 'result'));
    const blob = await putBlob(results, body, { left: results.inlineLimit }, 'the result');
    return new T.RemoteResult(toRemoteResult(r, new T.Blob(blob)));
  }

  // Set when the worker starts to drain: a job BullMQ hands it after that (one its blocking fetch
  // had already taken) goes back to the queue for another worker, with no attempt counted.
  let draining = false;
  const processor = async (job: Job, token?: string, signal?: AbortSignal): Promise<void> => {
    if (draining) {
      await job.moveToWait(token);
      throw new WaitingError();
    }
    const req = await readRequest(job.id!);
    if (!req) throw new UnrecoverableError(`the request of job ${job.id} is gone: past results.ttl, or removed by its caller`);
    let outcome: RemoteReply['outcome'];
    try {
      outcome = { result: await run(job, req, signal) };
    } catch (e) {
      if (retried(e) && job.attemptsMade + 1 < (job.opts.attempts ?? 1)) throw e;
      outcome = { error: new T.RemoteError(toRemoteError(e)) };
    }
    await finish(job.id!, req, outcome);
    if (outcome.error) throw new UnrecoverableError(`${outcome.error.code}: ${outcome.error.message}`);
  };

  const worker = new Worker(queue, processor, { ...options.bullmq, connection: connection as ConnectionOptions, prefix, concurrency, autorun: true });
  // A job that failed without the processor's final word (its workers died running it more often
  // than maxStalledCount allows): its caller still gets a reply.
  worker.on('failed', (job, err) => {
    if (!job?.id || !(err.name === 'UnrecoverableError' || job.attemptsMade >= (job.opts.attempts ?? 1))) return;
    const jobId = job.id;
    readRequest(jobId)
      .then(
        (req) =>
          req &&
          finish(jobId, req, { error: new T.RemoteError(toRemoteError(new WorkerError(`job ${jobId} (${job.name}) failed in the queue: ${err.message}`))) }),
      )
      .catch((e) => worker.emit('error', e));
  });
  // A caller aborted a job that is running here.
  subscriber.on('message', (_channel: string, jobId: string) => {
    worker.cancelJob(jobId, 'the caller aborted the run');
  });
  await subscriber.subscribe(keys.cancel);

  const sweep = () => results.store?.sweep?.().catch((e) => worker.emit('error', e));
  sweep();
  const sweeper = setInterval(sweep, Math.min(results.ttl, 600_000)).unref();

  let closing: Promise<void> | null = null;
  const close = () =>
    (closing ??= (async () => {
      draining = true;
      for (const s of signals) process.off(s, onSignal);
      clearInterval(sweeper);
      try {
        await worker.close();
      } finally {
        subscriber.disconnect();
        redis.disconnect();
        if (!options.spawner) await spawner.close();
      }
    })());
  const signals = options.handleSignals === false ? [] : (['SIGTERM', 'SIGINT'] as const);
  const onSignal = (signal: NodeJS.Signals) => {
    void close().finally(() => {
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    });
  };
  for (const s of signals) process.once(s, onSignal);
  return { worker, spawner, close };
}
