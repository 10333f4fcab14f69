// What the running Node offers that nodespawner uses. The app and its zygote run the same binary
// (process.execPath), so the app can decide for both.
import module from 'node:module';

/**
 * Whether this Node strips TypeScript types, by default (Node 22.18+ and 24) and for the job linker
 * (`module.stripTypeScriptTypes`).
 */
export const stripsTypes =
  Boolean((process.features as { typescript?: unknown }).typescript) &&
  typeof (module as { stripTypeScriptTypes?: unknown }).stripTypeScriptTypes === 'function';

/** A job module written in TypeScript, by its extension. */
export const isTypeScriptPath = (path: string): boolean => /\.(ts|mts|cts)$/.test(path);
