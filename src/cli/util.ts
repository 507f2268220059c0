// Shared CLI plumbing: option parsers with precise messages, and the one-line error exit.
import { InvalidArgumentError } from 'commander';
import { CtsError } from '../base/errors.js';
import { GraphError } from '../graph/index.js';

/** commander parser for a non-negative integer option. */
export function nonNegInt(name: string) {
  return (v: string): number => {
    if (!/^\d+$/.test(v)) throw new InvalidArgumentError(`${name} expects a non-negative integer, got '${v}'`);
    if (!Number.isSafeInteger(Number(v))) throw new InvalidArgumentError(`${name} expects a non-negative integer below 2^53, got '${v}'`);
    return Number(v);
  };
}

/** commander parser for a positive integer option. */
export function posInt(name: string) {
  return (v: string): number => {
    if (!/^\d+$/.test(v) || Number(v) === 0) throw new InvalidArgumentError(`${name} expects a positive integer, got '${v}'`);
    if (!Number.isSafeInteger(Number(v))) throw new InvalidArgumentError(`${name} expects a positive integer below 2^53, got '${v}'`);
    return Number(v);
  };
}

/**
 * Reports an expected failure (bad input, impossible budgets, missing files) as one line
 * `cts-seg: error: ...` with exit code 1 and returns true; anything else is a bug: false, and the
 * caller rethrows it with its stack trace.
 */
export function reportError(e: unknown): boolean {
  if (!(e instanceof CtsError || e instanceof GraphError)) return false;
  process.stderr.write(`cts-seg: error: ${e.message.split('\n')[0]}\n`);
  process.exitCode = 1;
  return true;
}

/** Runs a command action, reporting expected failures with reportError. */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<void>) {
  return async (...args: A): Promise<void> => {
    try {
      await fn(...args);
    } catch (e) {
      if (!reportError(e)) throw e;
    }
  };
}
