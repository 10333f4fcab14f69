// The job: totals of the `sales` input by region, as an Arrow table.
import { tableFromArrays } from 'apache-arrow';

export default function totals({ day }, ctx) {
  const sales = ctx.inputs.sales;
  const sums = new Map();
  const region = sales.getChild('region');
  const amount = sales.getChild('amount');
  for (let i = 0; i < sales.numRows; i++) sums.set(region.get(i), (sums.get(region.get(i)) ?? 0) + amount.get(i));
  const names = [...sums.keys()].sort();
  console.log(`${sales.numRows} sales`);
  return tableFromArrays({ region: names, total: Float64Array.from(names, (n) => sums.get(n)) });
}
