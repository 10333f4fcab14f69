// `npx nodespawner doctor`: placeholder until the host checks land.
export async function main(_argv: string[]): Promise<number> {
  process.stderr.write('nodespawner doctor: not implemented yet\n');
  return 1;
}
