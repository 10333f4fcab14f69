// What the running Node offers that nodespawner uses. The app and its zygote run the same binary
// (process.execPath), so the app can decide for both.
import module from 'node:module';

/** Synchronous in-thread module hooks (`module.registerHooks()`, Node 22.15+ and 24). */
export const hasSyncHooks = typeof (module as unknown as { registerHooks?: unknown }).registerHooks === 'function';

/** Whether Node runs TypeScript modules by stripping their types (Node 22.18+ and 24 by default). */
export const stripsTypes = Boolean((process.features as { typescript?: unknown }).typescript);

/** A job module written in TypeScript, by its extension. */
export const isTypeScriptPath = (path: string): boolean => /\.(ts|mts|cts)$/.test(path);
