import { ConfigError } from '../config';

/** A mistake in how the command was called: exit status 2, with the message. */
export class UsageError extends Error {}

/**
 * Runs a command's work and turns the errors a user can act on into a line on stderr and an exit status: 2 for how it
 * was called, 1 for the configuration. Anything else is a bug and is thrown.
 */
export async function runCommand(name: string, usage: string, work: () => Promise<number> | number): Promise<number> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof UsageError || error instanceof ConfigError) {
      process.stderr.write(`${name}: ${error.message}\n`);
      return error instanceof UsageError ? 2 : 1;
    }
    if (error instanceof TypeError && (error as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`${name}: ${error.message}\n\n${usage}\n`);
      return 2;
    }
    throw error;
  }
}
