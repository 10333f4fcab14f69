// An HTTP service that runs user-submitted JavaScript, one sandboxed job per request.
//
//   node examples/http-server/index.mjs            # prints the URL it listens on
//   curl --data-binary 'export default () => 6 * 7' http://127.0.0.1:<port>/run
//   {"value":42,"stdout":"","durationMs":9.7}
//
// The POST body is the source of an ES module whose default export is the job. Each request's
// module goes to a fresh temp directory, runs with a time and memory limit, and the directory is
// removed afterwards. The answer is JSON: {value, stdout, durationMs} when the job returned, or
// {error: {code, message}} with the NodespawnerError's code when it did not.
//
// Import it to embed it: `const { url, close } = await start({ port: 0 })`.
// Where this user cannot create cgroups, run with NODESPAWNER_LIMITS=rlimit (see docs/deploy.md).
import http from 'node:http';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Spawner, NodespawnerError } from 'nodespawner';

/** HTTP status for each way a job can fail; anything else the job did is the client's problem (422). */
const statusFor = {
  ERR_QUEUE_FULL: 503,
  ERR_ZYGOTE_GONE: 503,
  ERR_CLOSED: 503,
  ERR_ABORTED: 499,
};

/** JSON for what a job returned: bigints as strings, bytes as base64, Arrow tables as row objects. */
function toJson(x) {
  return JSON.stringify(x, (_key, v) => {
    if (typeof v === 'bigint') return v.toString();
    if (v instanceof Uint8Array) return { base64: Buffer.from(v).toString('base64') };
    return v;
  });
}

function send(res, status, body) {
  const text = toJson(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** The request body as text, or null once it went over `limit` bytes. */
async function readBody(req, limit) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > limit) return null;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Starts the service. Resolves with its `url` (http://127.0.0.1:<port>), the `spawner`, and
 * `close()`, which stops accepting requests, ends running jobs and the zygote.
 */
export async function start({
  host = '127.0.0.1',
  port = 0,
  timeout = 2_000, // ms per job
  memoryLimit = 128 * 2 ** 20, // bytes per job
  concurrency = 4,
  maxQueue = 100,
  maxBodyBytes = 256 * 1024,
  spawner: spawnerOptions = {},
} = {}) {
  const spawner = await Spawner.start({ concurrency, maxQueue, timeout, ...spawnerOptions, sandbox: { memoryLimit, ...spawnerOptions.sandbox } });

  async function runSource(source, signal) {
    // A fresh directory per request: the job's directory is bound into its root, so it must hold
    // nothing but this job. When the app runs as root, jobs run as uid 65534 (nobody): the
    // directory must be world-traversable and the file world-readable.
    const dir = await mkdtemp(join(tmpdir(), 'nodespawner-http-'));
    try {
      await chmod(dir, 0o755);
      const file = join(dir, 'job.mjs');
      await writeFile(file, source, { mode: 0o644 });
      await chmod(file, 0o644); // whatever the umask
      return await spawner.run(file, {}, { signal });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  const server = http.createServer(async (req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (path !== '/run') return send(res, 404, { error: { code: 'NOT_FOUND', message: 'POST the job module to /run' } });
    if (req.method !== 'POST') return send(res, 405, { error: { code: 'METHOD_NOT_ALLOWED', message: 'POST the job module to /run' } });
    const source = await readBody(req, maxBodyBytes);
    if (source === null) {
      send(res, 413, { error: { code: 'BODY_TOO_LARGE', message: `the job module may have at most ${maxBodyBytes} bytes` } });
      return req.destroy();
    }
    // A client that hangs up does not keep its job running.
    const gone = new AbortController();
    res.on('close', () => {
      if (!res.writableEnded) gone.abort(new Error('the client went away'));
    });
    try {
      const r = await runSource(source, gone.signal);
      const value = r.table ? r.table.toArray().map((row) => row.toJSON()) : r.value;
      send(res, 200, { value, stdout: r.stdout, durationMs: r.durationMs });
    } catch (e) {
      if (!(e instanceof NodespawnerError)) {
        console.error(e);
        return send(res, 500, { error: { code: 'INTERNAL', message: 'internal error' } });
      }
      // `remote.code` is the job's own error code (ENOENT, say) when it threw one.
      send(res, statusFor[e.code] ?? 422, { error: { code: e.code, message: e.message, remoteCode: e.remote?.code ?? null } });
    }
  });

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const address = server.address();
  let closing;
  return {
    url: `http://${address.address}:${address.port}`,
    spawner,
    close() {
      closing ??= (async () => {
        const stopped = new Promise((resolve) => server.close(resolve));
        server.closeIdleConnections();
        await spawner.close(); // in-flight jobs end with ERR_CLOSED, which their clients receive
        server.closeAllConnections();
        await stopped;
      })();
      return closing;
    },
  };
}

// Run directly: serve until SIGINT or SIGTERM.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const service = await start({ port: Number(process.env.PORT ?? 0) });
  console.log(`listening on ${service.url}`);
  console.log(`try: curl --data-binary 'export default () => 6 * 7' ${service.url}/run`);
  for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => void service.close());
}
