// Shared CLI plumbing: option parsers with precise messages, and the one-line error exit.
import { InvalidArgumentError } from 'commander';
import { CtsError } from '../base/errors.js';
import { GraphError } from '../graph/index.js';

/** commander parser for a non-negative integer option. */
export function nonNegInt(name: string) {
  return (v: string): number => {
    if (!/^\d+$/.test(v)) throw new InvalidArgumentError(`${name} expects a non-negative integer, got '${v}'`);
    return Number(v);
  };
}

/** commander parser for a positive integer option. */
export function posInt(name: string) {
  return (v: string): number => {
    if (!/^\d+$/.test(v) || Number(v) === 0) throw new InvalidArgumentError(`${name} expects a positive integer, got '${v}'`);
    return Number(v);
  };
}

/**
 * Runs a command action: expected failures (bad input, impossible budgets, missing files) print
 * one line `cts-seg: error: ...` and exit 1; anything else is a bug and keeps its stack trace.
 */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<void>) {
  return async (...args: A): Promise<void> => {
    try {
      await fn(...args);
    } catch (e) {
      if (e instanceof CtsError || e instanceof GraphError) {
        process.stderr.write(`cts-seg: error: ${e.message.split('\n')[0]}\n`);
        process.exitCode = 1;
        return;
      }
      throw e;
    }
  };
}
