// What every contender of the round-trip benchmark provides.
import type { RunOne } from '../util.js';

export interface Instance {
  /** One job: arguments in (Thrift), 1,000-row table out, decoded in this process and checked. */
  run: RunOne;
  close(): Promise<void>;
}

export interface Contender {
  key: string;
  label: string;
  /** What separates the job from the app. */
  isolation: string;
  /** A process started per job (slow: measured with --cold-iterations). */
  processPerJob: boolean;
  /** Ready to run jobs, or why this contender cannot run here (reported, not an error). */
  open(): Promise<Instance | { skipped: string }>;
  /** Printed under the results table (the exact command, what was installed...). */
  notes: string[];
}
