// Counters and latency histograms for spawner.stats(): what production monitoring reads.

/** Percentiles of the most recent samples (a window, so a long-running app sees current figures). */
export interface Histogram {
  count: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export interface SpawnerStats {
  /** Jobs waiting for a slot, and running now. */
  queued: number;
  running: number;
  /** Jobs that resolved, and that rejected (by error code). */
  completed: number;
  failed: Record<string, number>;
  zygoteRestarts: number;
  /** Time in the queue and from request to settlement, in ms, over the last `window` jobs. */
  wait: Histogram;
  run: Histogram;
  /** Each phase of r.timings (ms) over the same window. */
  phases: Record<PhaseName, Histogram>;
  /**
   * Preforked children waiting for a run now, those of them ready (set up, module imported), and
   * runs that went to one (spawner option `prefork`).
   */
  preforked: { waiting: number; ready: number; runs: number };
}

export const phaseNames = ['requestMs', 'forkMs', 'cloneMs', 'runMs', 'specializeMs', 'importMs', 'jobMs', 'resultMs', 'reapMs'] as const;
export type PhaseName = (typeof phaseNames)[number];

/** A fixed-size ring of samples. */
export class Window {
  private readonly samples: Float64Array;
  private next = 0;
  private filled = 0;
  private total = 0;

  constructor(size = 1024) {
    this.samples = new Float64Array(size);
  }

  add(v: number): void {
    this.samples[this.next] = v;
    this.next = (this.next + 1) % this.samples.length;
    this.filled = Math.min(this.filled + 1, this.samples.length);
    this.total++;
  }

  /** Samples ever added (not only those in the window). */
  get count(): number {
    return this.total;
  }

  mean(): number {
    if (this.filled === 0) return 0;
    let sum = 0;
    for (let i = 0; i < this.filled; i++) sum += this.samples[i];
    return sum / this.filled;
  }

  histogram(): Histogram {
    const sorted = Array.from(this.samples.subarray(0, this.filled)).sort((a, b) => a - b);
    const at = (q: number) => (sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]);
    return { count: this.total, mean: this.mean(), p50: at(0.5), p90: at(0.9), p99: at(0.99), max: sorted.length ? sorted[sorted.length - 1] : 0 };
  }
}
