// Groups the `sales` input table by region: one row per region with the number of sales, their
// total and their mean. `apache-arrow` here is the zygote's already-loaded instance.
import { tableFromArrays } from 'apache-arrow';

export default function aggregate({ minAmount = 0 }, ctx) {
  const sales = ctx.inputs.sales;
  const regions = sales.getChild('region');
  const amounts = sales.getChild('amount');
  const groups = new Map();
  for (let i = 0; i < sales.numRows; i++) {
    const amount = amounts.get(i);
    if (amount < minAmount) continue;
    const region = regions.get(i);
    const g = groups.get(region) ?? { count: 0, total: 0 };
    g.count++;
    g.total += amount;
    groups.set(region, g);
  }
  const names = [...groups.keys()].sort();
  return tableFromArrays({
    region: names,
    count: Int32Array.from(names, (n) => groups.get(n).count),
    total: Float64Array.from(names, (n) => groups.get(n).total),
    mean: Float64Array.from(names, (n) => groups.get(n).total / groups.get(n).count),
  });
}
