import { parseArgs } from 'node:util';
import { loadConfig } from '../config';
import { openStore, type Store } from '../db';
import { erasureRequest } from '../delivery/erasure';
import { ValidationError } from '../errors';
import { createLogger } from '../logger';
import { runCommand, UsageError } from './cli-errors';

const usage = `Erase one recipient from every delivery (a request under the GDPR or PIPL).

  npm run erase -- --recipient <email address | mobile number>
      Removes the content of every delivery to the address (alone or in a list of recipients, or in cc/bcc), replaces
      the address with a random marker (erased:…) in the recipient, the attempts and the last error, and cancels
      deliveries to it still waiting. Other addresses of a list stay. Prints how many deliveries it was in.

Uses the gateway's database: DATABASE_URL (default file:./data/notify.db); the gateway may keep running.`;

async function main(argv: string[]): Promise<number> {
  let store: Store | undefined;
  try {
    const { values } = parseArgs({ args: argv, options: { recipient: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
    if (values.help) {
      process.stdout.write(`${usage}\n`);
      return 0;
    }
    if (!values.recipient) throw new UsageError('--recipient is required: one email address or mobile number');
    const request = (() => {
      try {
        return erasureRequest(values.recipient, Date.now());
      } catch (error) {
        if (error instanceof ValidationError) throw new UsageError(`--recipient ${error.fieldErrors[0].message}`);
        throw error;
      }
    })();
    store = await openStore(loadConfig(process.env).database);
    const erased = await store.eraseRecipient(request);
    // The same audit line as the API's, on stderr; never the address.
    createLogger({ level: 'info', pretty: false, destination: process.stderr }).child({ component: 'audit' }).info({ erased, by: 'cli' }, 'recipient erased');
    process.stdout.write(`Erased the recipient from ${erased} ${erased === 1 ? 'delivery' : 'deliveries'}.\n`);
    return 0;
  } finally {
    await store?.close();
  }
}

process.exitCode = await runCommand('erase', usage, () => main(process.argv.slice(2)));
