// Works for `ms` milliseconds (sleeping, or spinning when `busy`), then returns how long it took.
export default async function slow({ ms, busy = false }) {
  const t0 = Date.now();
  if (busy) {
    while (Date.now() - t0 < ms) {
      // a job that never yields is killed just the same
    }
  } else {
    await new Promise((resolve) => setTimeout(resolve, ms));
  }
  return { tookMs: Date.now() - t0 };
}
