// The Redis keys of nodespawner/bullmq beside BullMQ's own, and the clients that use them.
import { Redis } from 'ioredis';
import type { RedisOptions } from 'ioredis';
import { expected } from '../options.js';

/** How to reach Redis: ioredis options (`{ host, port }`, `{ path }` for a unix socket...) or an ioredis client, which is duplicated, never used itself. */
export type Connection = RedisOptions | Redis;

export function checkQueueName(queue: unknown): string {
  if (typeof queue !== 'string' || !/^[A-Za-z0-9_.-]{1,200}$/.test(queue)) throw expected('queue', 'a queue name (letters, digits, _ . -)', queue);
  return queue;
}

export function checkConnection(connection: unknown): Connection {
  if (typeof connection !== 'object' || connection === null) throw expected('connection', 'ioredis options or an ioredis client', connection);
  return connection as Connection;
}

/** A client of our own: its options are ours to set (BullMQ's clients keep theirs). */
export function redisClient(connection: Connection, options: RedisOptions): Redis {
  if (connection instanceof Redis) return connection.duplicate(options);
  return new Redis({ ...connection, ...options });
}

/** Keys under BullMQ's prefix and the queue's name, so that one `prefix:queue:*` holds everything. */
export function keysOf(prefix: string, queue: string) {
  const base = `${prefix}:${queue}:nodespawner`;
  return {
    /** The RemoteRequest of a job (binary, with a time to live). */
    request: (jobId: string) => `${base}:request:${jobId}`,
    /** The list of RemoteReply a RemoteSpawner reads (binary, with a time to live). */
    replies: (client: string) => `${base}:replies:${client}`,
    /** Pub/sub channel: the id of a running job whose caller aborted it. */
    cancel: `${base}:cancel`,
  };
}
