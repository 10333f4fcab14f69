// Where inputs and results of remote runs lie: in Redis (inside the request or the reply) when small,
// in a result store when larger. Every stored object has a time to live and is deleted once read.
import { randomUUID } from 'node:crypto';
import { mkdir, open, readFile, readdir, rename, rm } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { expected } from '../options.js';
import type { Blob } from '../wire.js';
import { ResultStoreError } from './errors.js';

/**
 * Storage for inputs and results larger than `results.inlineLimit`, shared by every producer and
 * worker of a queue: FileResultStore on a shared volume, or your own (S3-compatible storage, for
 * one). Keys are the store's own; whoever reads an object deletes it; objects never read are
 * deleted once their time to live is over.
 */
export interface ResultStore {
  /** Stores `bytes` for `ttlMs` at most; resolves with the key to read them by. */
  put(bytes: Uint8Array, ttlMs: number): Promise<string>;
  /** The bytes under `key`, or null when they are gone (deleted, or past their time to live). */
  get(key: string): Promise<Uint8Array | null>;
  /** Deletes the object under `key`, if it is still there. */
  delete(key: string): Promise<void>;
  /** Deletes every object past its time to live; workers call this now and then. */
  sweep?(): Promise<void>;
}

/** A key: the expiry (ms since the epoch) and a random UUID. Nothing else names a file here. */
const keyPattern = /^(\d{13,15})-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.arrow$/;

/**
 * A ResultStore in a directory that every producer and worker mounts (NFS, a Kubernetes
 * ReadWriteMany volume). Files are written under a temporary name and renamed, readable by their
 * owner only: every machine must run as the same uid.
 */
export class FileResultStore implements ResultStore {
  constructor(readonly dir: string) {
    if (typeof dir !== 'string' || !isAbsolute(dir)) throw expected('dir', 'an absolute path', dir);
  }

  async put(bytes: Uint8Array, ttlMs: number): Promise<string> {
    const key = `${Date.now() + ttlMs}-${randomUUID()}.arrow`;
    const tmp = join(this.dir, `.${key}.tmp`);
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const fh = await open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(bytes);
    } catch (e) {
      await fh.close();
      await rm(tmp, { force: true });
      throw e;
    }
    await fh.close();
    await rename(tmp, join(this.dir, key));
    return key;
  }

  async get(key: string): Promise<Uint8Array | null> {
    const m = keyPattern.exec(key);
    if (!m) throw new ResultStoreError(`not a key of this FileResultStore: ${JSON.stringify(key.slice(0, 100))}`);
    if (Number(m[1]) < Date.now()) {
      await this.delete(key);
      return null;
    }
    try {
      return await readFile(join(this.dir, key));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
  }

  async delete(key: string): Promise<void> {
    if (keyPattern.test(key)) await rm(join(this.dir, key), { force: true });
  }

  async sweep(): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    const now = Date.now();
    for (const name of names) {
      // A temporary file is named after its key: it is past its time too once the key would be.
      const m = keyPattern.exec(name.replace(/^\.(.*)\.tmp$/, '$1'));
      if (m && Number(m[1]) < now) await rm(join(this.dir, name), { force: true });
    }
  }
}

/** `results` of startWorker and RemoteSpawner: the same on every producer and worker of a queue. */
export interface ResultsOptions {
  /** Where inputs and results larger than `inlineLimit` go. Without one, such a run fails with ERR_RESULT_STORE. */
  store?: ResultStore;
  /** Bytes at most of a run's Arrow inputs (together) and of its result that travel inside Redis. @default 1 MiB */
  inlineLimit?: number;
  /** Bytes at most of a run's arguments, Thrift-encoded (they always travel inside Redis). @default 1 MiB */
  maxArgsBytes?: number;
  /** ms that a queued request, an input and a result not yet read are kept (in Redis and in the store). @default 24 hours */
  ttl?: number;
}

export interface ResolvedResults {
  store: ResultStore | null;
  inlineLimit: number;
  maxArgsBytes: number;
  ttl: number;
}

function positiveInteger(name: string, v: unknown, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) throw expected(name, 'a positive integer', v);
  return v;
}

export function resolveResults(o: ResultsOptions = {}): ResolvedResults {
  if (typeof o !== 'object' || o === null) throw expected('results', 'an object', o);
  const store = o.store ?? null;
  if (store !== null && !['put', 'get', 'delete'].every((m) => typeof (store as unknown as Record<string, unknown>)[m] === 'function')) {
    throw expected('results.store', 'a ResultStore (put, get, delete)', store);
  }
  return {
    store,
    inlineLimit: positiveInteger('results.inlineLimit', o.inlineLimit, 2 ** 20),
    maxArgsBytes: positiveInteger('results.maxArgsBytes', o.maxArgsBytes, 2 ** 20),
    ttl: positiveInteger('results.ttl', o.ttl, 24 * 3600 * 1000),
  };
}

/** Places bytes inline while `budget` (the inline bytes left) allows, else in the store. */
export async function putBlob(r: ResolvedResults, bytes: Uint8Array, budget: { left: number }, what: string): Promise<Blob> {
  if (bytes.byteLength <= budget.left) {
    budget.left -= bytes.byteLength;
    return { bytes: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) };
  }
  if (!r.store)
    throw new ResultStoreError(`${what} takes ${bytes.byteLength} bytes, over results.inlineLimit (${r.inlineLimit}), and no results.store is configured`);
  try {
    return { storeKey: await r.store.put(bytes, r.ttl) };
  } catch (e) {
    throw new ResultStoreError(`cannot store ${what} (${bytes.byteLength} bytes): ${(e as Error).message}`, e);
  }
}

/** Reads a blob's bytes (a stored one stays until dropBlob: a retried run reads its inputs again). */
export async function readBlob(r: ResolvedResults, blob: Blob, what: string): Promise<Uint8Array> {
  if (blob.bytes != null) return blob.bytes;
  if (blob.storeKey == null) throw new ResultStoreError(`${what}: a blob with neither bytes nor a store key`);
  if (!r.store) throw new ResultStoreError(`${what} lies in a result store, and no results.store is configured here`);
  let bytes: Uint8Array | null;
  try {
    bytes = await r.store.get(blob.storeKey);
  } catch (e) {
    throw new ResultStoreError(`cannot read ${what} from the result store: ${(e as Error).message}`, e);
  }
  if (!bytes) throw new ResultStoreError(`${what} is no longer in the result store (past results.ttl, or read already)`);
  return bytes;
}

/** Deletes a blob's stored object, if it has one: once read for the last time, or when nobody will. */
export async function dropBlob(r: ResolvedResults, blob: Blob | null | undefined): Promise<void> {
  if (blob?.storeKey != null) await r.store?.delete(blob.storeKey);
}
