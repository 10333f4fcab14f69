// ioredis connection options from the environment: REDIS_SOCKET (a unix socket) or REDIS_URL.
export function connection() {
  if (process.env.REDIS_SOCKET) return { path: process.env.REDIS_SOCKET };
  const url = new URL(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
  return {
    host: url.hostname,
    port: Number(url.port || 6379),
    username: url.username || undefined,
    password: url.password ? decodeURIComponent(url.password) : undefined,
    db: url.pathname.length > 1 ? Number(url.pathname.slice(1)) : undefined,
    tls: url.protocol === 'rediss:' ? {} : undefined,
  };
}
