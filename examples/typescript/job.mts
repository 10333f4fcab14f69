// A job module in TypeScript: Node 24 (and 22.18+) strips its types, in the zygote's child as
// anywhere else. Its argument and result types are exported for the app.
import { tableFromArrays, type Table } from 'apache-arrow';
import type { JobContext } from 'nodespawner';

export interface Args {
  /** Multiply every amount by this. */
  rate: number;
}

export interface Totals {
  rows: number;
  total: number;
}

export default function totals(args: Args, ctx: JobContext): Totals | Table {
  const amounts = ctx.inputs.sales.getChild('amount')!.toArray() as Float64Array;
  const scaled = Float64Array.from(amounts, (a: number) => a * args.rate);
  if (scaled.length > 3) return tableFromArrays({ scaled });
  return { rows: scaled.length, total: scaled.reduce((a: number, b: number) => a + b, 0) };
}
