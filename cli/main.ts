#!/usr/bin/env node
// `npx nodespawner <command>`: bench (speed against the alternatives) and doctor (host checks).
type Command = { main(argv: string[]): Promise<number> };

/** The benchmark is not in the npm package (nor are its dev dependencies): it runs from a checkout. */
async function loadBench(): Promise<Command> {
  const path = '../bench/roundtrip.js'; // not a literal import: the package's build leaves bench/ out
  try {
    return (await import(path)) as Command;
  } catch (e) {
    if ((e as { code?: string }).code !== 'ERR_MODULE_NOT_FOUND') throw e;
    throw new Error('the benchmark is not part of the npm package: run it from a checkout of the repository (npm install, then npm run bench)');
  }
}
const commands: Record<string, { summary: string; load: () => Promise<Command> }> = {
  bench: { summary: 'measure nodespawner against the alternatives on this machine (from a checkout of the repository)', load: loadBench },
  doctor: { summary: 'check this host for what nodespawner needs, with the fix for each gap', load: () => import('./doctor.js') },
};

async function run(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  const command = name ? commands[name] : undefined;
  if (!command) {
    const list = Object.entries(commands)
      .map(([n, c]) => `  ${n.padEnd(8)} ${c.summary}`)
      .join('\n');
    process.stderr.write(`Usage: nodespawner <command> [options]\n\n${list}\n`);
    return name && name !== 'help' && name !== '--help' ? 2 : 0;
  }
  return (await command.load()).main(rest);
}

run(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`nodespawner: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
