// The producer's side: run(name, args, { inputs, timeout, signal }) queues a job for a worker
// (startWorker) and settles like Spawner.run(): the same RunResult, the same typed errors.
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Table, tableToIPC } from 'apache-arrow';
import { Queue } from 'bullmq';
import type { ConnectionOptions, QueueOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import { AbortError, ClosedError, InvalidOutputError } from '../errors.js';
import type { RunResult } from '../job.js';
import { expected } from '../options.js';
import { T, decode, encode, toWire } from '../wire.js';
import type { RemoteReply, RemoteRequest } from '../wire.js';
import { ArgsTooLargeError, QueueUnavailableError } from './errors.js';
import { fromRemoteError, fromRemoteResult } from './envelope.js';
import { checkConnection, checkQueueName, keysOf, redisClient } from './redis.js';
import type { Connection } from './redis.js';
import { dropBlob, putBlob, readBlob, resolveResults } from './store.js';
import type { ResolvedResults, ResultsOptions } from './store.js';

export interface RemoteSpawnerOptions {
  /** The BullMQ queue's name (the workers' `queue`). */
  queue: string;
  connection: Connection;
  /** Where inputs and results travel; the same on every producer and worker of the queue. */
  results?: ResultsOptions;
  /** BullMQ's key prefix. @default 'bull' */
  prefix?: string;
  /** Attempts at a run whose worker failed for a reason that is not the job's (zygote gone...). @default 3 */
  attempts?: number;
  /** ms to wait for Redis before a run rejects with ERR_QUEUE_UNAVAILABLE. @default 10_000 */
  connectTimeout?: number;
  /** Further options of the BullMQ Queue. */
  bullmq?: Omit<QueueOptions, 'connection' | 'prefix'>;
}

export interface RemoteRunOptions {
  /** Arrow tables for the job, as `ctx.inputs.<name>`. */
  inputs?: Record<string, Table>;
  /** The job's wall-clock limit in ms, on the worker (the queue's wait excluded). @default the worker's spawner `timeout` */
  timeout?: number;
  /** Removes a queued job, or kills a running one; run() rejects with ERR_ABORTED at once. */
  signal?: AbortSignal;
}

interface Pending {
  resolve(r: RunResult): void;
  reject(e: Error): void;
  startedAt: number;
}

export class RemoteSpawner {
  private readonly queue: Queue;
  private readonly results: ResolvedResults;
  private readonly keys: ReturnType<typeof keysOf>;
  private readonly replyTo: string;
  /** Requests and stored blobs; fails fast while Redis is away. */
  private readonly redis: Redis;
  /** Blocks on the reply list, across reconnections. */
  private readonly reader: Redis;
  private readonly pending = new Map<string, Pending>();
  private readonly attempts: number;
  private readonly connectTimeout: number;
  private closed = false;
  private reading: Promise<void> | null = null;

  constructor(options: RemoteSpawnerOptions) {
    if (typeof options !== 'object' || options === null) throw expected('options', 'an object', options);
    const queue = checkQueueName(options.queue);
    const connection = checkConnection(options.connection);
    this.results = resolveResults(options.results);
    this.attempts = options.attempts ?? 3;
    if (!Number.isSafeInteger(this.attempts) || this.attempts < 1) throw expected('attempts', 'a positive integer', options.attempts);
    this.connectTimeout = options.connectTimeout ?? 10_000;
    if (!(this.connectTimeout > 0 && Number.isFinite(this.connectTimeout)))
      throw expected('connectTimeout', 'a positive finite number', options.connectTimeout);
    const prefix = options.prefix ?? 'bull';
    this.keys = keysOf(prefix, queue);
    this.replyTo = this.keys.replies(randomUUID());
    this.redis = redisClient(connection, { maxRetriesPerRequest: 0, enableOfflineQueue: false });
    this.redis.on('error', () => {}); // surfaced by the commands that fail
    this.reader = redisClient(connection, { maxRetriesPerRequest: null });
    this.reader.on('error', () => {});
    this.queue = new Queue(queue, { ...options.bullmq, connection: connection as ConnectionOptions, prefix });
    this.queue.on('error', () => {});
  }

  /**
   * Queues a run of the job the workers registered as `name` and settles with its RunResult, or
   * rejects with the error the run failed with (the same classes and codes as Spawner.run()), or
   * with ERR_ARGS_TOO_LARGE, ERR_QUEUE_UNAVAILABLE, ERR_UNKNOWN_JOB, ERR_RESULT_STORE, ERR_WORKER.
   */
  async run<V = unknown>(name: string, args?: unknown, options: RemoteRunOptions = {}): Promise<RunResult<V>> {
    const startedAt = performance.now();
    if (typeof name !== 'string' || name === '') throw expected('name', 'a job name', name);
    if (typeof options !== 'object' || options === null) throw expected('options', 'an object', options);
    const { inputs = {}, timeout, signal } = options;
    if (timeout !== undefined && !(typeof timeout === 'number' && timeout > 0 && Number.isFinite(timeout)))
      throw expected('timeout', 'a positive finite number', timeout);
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw expected('signal', 'an AbortSignal', signal);
    const jobArgs = toWire(args);
    const argsBytes = encode(T.Value, jobArgs).length;
    if (argsBytes > this.results.maxArgsBytes) throw new ArgsTooLargeError(argsBytes, this.results.maxArgsBytes);
    const tables = Object.entries(inputs);
    for (const [k, t] of tables) if (!(t instanceof Table)) throw expected(`inputs.${k}`, 'an apache-arrow Table', t);
    if (this.closed) throw new ClosedError();
    if (signal?.aborted) throw new AbortError(signal.reason);

    await this.connected();
    const jobId = randomUUID();
    const budget = { left: this.results.inlineLimit };
    const refs: RemoteRequest['inputs'] = [];
    try {
      for (const [k, t] of tables) refs.push(new T.RemoteInput({ name: k, ipc: await putBlob(this.results, tableToIPC(t, 'stream'), budget, `input ${k}`) }));
    } catch (e) {
      await this.dropInputs(refs);
      throw e;
    }
    const request = encode(T.RemoteRequest, { jobArgs, inputs: refs, timeout: timeout === undefined ? undefined : Math.ceil(timeout), replyTo: this.replyTo });

    const settled = new Promise<RunResult<V>>((resolve, reject) => this.pending.set(jobId, { resolve: resolve as Pending['resolve'], reject, startedAt }));
    this.readReplies();
    try {
      await this.redis.set(this.keys.request(jobId), request, 'PX', this.results.ttl);
      await this.queue.add(
        name,
        {},
        { jobId, attempts: this.attempts, backoff: { type: 'exponential', delay: 1000 }, removeOnComplete: true, removeOnFail: true },
      );
    } catch (e) {
      this.pending.delete(jobId);
      await this.redis.del(this.keys.request(jobId)).catch(() => {});
      await this.dropInputs(refs);
      throw new QueueUnavailableError(`cannot queue the run: ${(e as Error).message}`, e);
    }
    if (signal) {
      const onAbort = () => this.abort(jobId, signal.reason, refs);
      signal.addEventListener('abort', onAbort, { once: true });
      settled.finally(() => signal.removeEventListener('abort', onAbort)).catch(() => {});
    }
    return settled;
  }

  /** Stops reading replies; runs still pending reject with ERR_CLOSED. Their jobs still run on the workers. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.reject(new ClosedError());
    }
    this.reader.disconnect();
    await this.reading;
    this.redis.disconnect();
    await this.queue.close();
  }

  /** Waits for Redis (at most connectTimeout), or rejects with ERR_QUEUE_UNAVAILABLE. */
  private async connected(): Promise<void> {
    if (this.redis.status === 'ready') return;
    if (this.redis.status === 'wait') this.redis.connect().catch(() => {});
    await new Promise<void>((resolve, reject) => {
      const done = (e?: Error) => {
        clearTimeout(timer);
        this.redis.off('ready', onReady);
        this.redis.off('error', onError);
        if (e) reject(e);
        else resolve();
      };
      let last: Error | null = null;
      const onReady = () => done();
      const onError = (e: Error) => (last = e);
      const timer = setTimeout(
        () =>
          done(
            new QueueUnavailableError(
              `Redis is not reachable (waited ${this.connectTimeout} ms, connectTimeout)${last ? `: ${last.message}` : ''}`,
              last ?? undefined,
            ),
          ),
        this.connectTimeout,
      );
      this.redis.on('ready', onReady);
      this.redis.on('error', onError);
    });
  }

  private readReplies(): void {
    this.reading ??= (async () => {
      while (!this.closed) {
        let popped: [Buffer, Buffer] | null;
        try {
          popped = await this.reader.brpopBuffer(this.replyTo, 0);
        } catch {
          if (this.closed) return;
          await new Promise((r) => setTimeout(r, 100)); // the client reconnects meanwhile
          continue;
        }
        if (popped) await this.settle(popped[1]);
      }
    })();
  }

  private async settle(bytes: Buffer): Promise<void> {
    let reply: RemoteReply;
    try {
      reply = decode(T.RemoteReply, bytes);
    } catch {
      return; // not a reply of this protocol: nobody waits for it
    }
    const { result, error } = reply.outcome;
    const body = result?.table ?? result?.value ?? null;
    const p = this.pending.get(reply.jobId);
    this.pending.delete(reply.jobId);
    if (!p) {
      await dropBlob(this.results, body).catch(() => {}); // an aborted run's
      return;
    }
    try {
      if (error) throw fromRemoteError(error);
      if (!result || !body) throw new InvalidOutputError('the worker sent a reply with neither a result nor an error');
      const bytes = await readBlob(this.results, body, 'the result');
      await dropBlob(this.results, body);
      p.resolve(fromRemoteResult(result, bytes, performance.now() - p.startedAt));
    } catch (e) {
      p.reject(e as Error);
    }
  }

  /** Rejects at once; removes the job if no worker took it yet, else asks the workers to kill it. */
  private abort(jobId: string, reason: unknown, inputs: Array<{ ipc: { storeKey?: string | null } }>): void {
    const p = this.pending.get(jobId);
    if (!p) return;
    this.pending.delete(jobId);
    p.reject(new AbortError(reason));
    void (async () => {
      if ((await this.queue.remove(jobId)) === 1) {
        await this.redis.del(this.keys.request(jobId));
        await this.dropInputs(inputs);
      } else {
        await this.redis.publish(this.keys.cancel, jobId);
      }
    })().catch(() => {});
  }

  private async dropInputs(inputs: Array<{ ipc: { storeKey?: string | null } }>): Promise<void> {
    for (const i of inputs) await dropBlob(this.results, i.ipc).catch(() => {});
  }
}
