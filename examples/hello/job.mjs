// A job module: its default export runs in a fresh sandboxed child, forked from the warm zygote.
// `args` is what the app passed to run(); the return value comes back as `r.value`.
import { hostname } from 'node:os';

export default function hello({ name }) {
  console.log(`hello from inside the sandbox, ${name}`); // captured: r.stdout
  return {
    greeting: `Hello, ${name}!`,
    pid: process.pid, // 1: the job is PID 1 of its own PID namespace
    uid: process.getuid(), // 1000 inside its user namespace
    hostname: hostname(), // sandbox.hostname
  };
}
