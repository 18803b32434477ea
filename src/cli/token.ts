import { parseArgs } from 'node:util';
import { ApiTokens, isTokenName, parseScopes, readScopes, tokenNameRule, type ReadScope, type TokenScopes } from '../api-tokens';
import { loadConfig } from '../config';
import { channels, type ChannelName } from '../db/schema';
import { openStore, type Store } from '../db';
import { InvalidStateError, NotFoundError, ValidationError } from '../errors';
import { runCommand, UsageError } from './cli-errors';

const usage = `Manage the gateway's API tokens (the OPS-Token header).

  npm run token -- create --name <name> --channels <DING,EMAIL,SMS,FEISHU,WECOM,WEBHOOK | all | none> [--read none|own|all]
      Creates a token and prints it once (only its SHA-256 hash is kept). --read defaults to own:
      none = may not read deliveries, own = only the deliveries it sent, all = every delivery.
  npm run token -- list [--json]
      Every token: name, id, scopes, created, last used, revoked. Never the token itself.
  npm run token -- revoke <name|id>
      Revokes a token; its next request is refused.

Uses the gateway's database: DATABASE_URL (default file:./data/notify.db). Tokens in OPS_TOKENS are not listed
here: they have full rights and live in the environment.`;

function parseChannels(value: string | undefined): ChannelName[] {
  if (value === undefined) throw new UsageError('--channels is required: a list such as DING,EMAIL, or all, or none');
  const listed = value.split(',').map((item) => item.trim().toUpperCase()).filter(Boolean);
  if (listed.length === 1 && listed[0] === 'ALL') return [...channels];
  if (listed.length === 1 && listed[0] === 'NONE') return [];
  const unknown = listed.filter((item) => !(channels as readonly string[]).includes(item));
  if (unknown.length > 0 || listed.length === 0) {
    throw new UsageError(`--channels: unknown channel ${unknown.join(', ') || '(empty)'}; use ${channels.join(', ')}, all or none`);
  }
  return channels.filter((channel) => listed.includes(channel));
}

function parseRead(value: string | undefined): ReadScope {
  const read = (value ?? 'own').toLowerCase();
  if (!(readScopes as readonly string[]).includes(read)) throw new UsageError(`--read must be one of ${readScopes.join(', ')}`);
  return read as ReadScope;
}

function describeScopes(scopes: TokenScopes | undefined): { channels: string; read: string } {
  if (!scopes) return { channels: '(invalid: refused)', read: '-' };
  return { channels: scopes.channels.length > 0 ? scopes.channels.join(',') : 'none', read: scopes.read };
}

const time = (value: number | null) => (value == null ? '-' : new Date(value).toISOString().replace(/\.\d{3}Z$/, 'Z'));

async function create(store: Store, args: string[]) {
  const { values } = parseArgs({
    args,
    options: { name: { type: 'string' }, channels: { type: 'string' }, read: { type: 'string' } },
  });
  const name = values.name;
  if (!name || !isTokenName(name)) throw new UsageError(`--name is required: ${tokenNameRule}`);
  const scopes: TokenScopes = { channels: parseChannels(values.channels), read: parseRead(values.read) };
  const { token, row } = await new ApiTokens(store).create(name, scopes).catch((error: unknown) => {
    if (error instanceof ValidationError) throw new UsageError(`the name "${name}" ${error.fieldErrors[0].message}`);
    throw error;
  });
  const shown = describeScopes(scopes);
  // The explanation goes to stderr so that `TOKEN=$(npm run -s token -- create …)` captures the token alone.
  process.stderr.write(
    `Created token "${name}" (${row.id}): channels ${shown.channels}, read ${shown.read}.\n` +
      'Send it as the OPS-Token header. It is shown only this once: only its hash is stored.\n\n',
  );
  process.stdout.write(`${token}\n`);
}

async function list(store: Store, args: string[]) {
  const { values } = parseArgs({ args, options: { json: { type: 'boolean' } } });
  const rows = (await new ApiTokens(store).list()).map((row) => ({
    name: row.name,
    id: row.id,
    ...describeScopes(parseScopes(row.scopes)),
    created: row.createdAt,
    lastUsed: row.lastUsedAt,
    revoked: row.revokedAt,
  }));
  if (values.json) {
    const iso = (value: number | null) => (value == null ? null : new Date(value).toISOString());
    const json = rows.map((row) => ({ ...row, created: iso(row.created), lastUsed: iso(row.lastUsed), revoked: iso(row.revoked) }));
    process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
    return;
  }
  if (rows.length === 0) {
    process.stdout.write('No stored tokens. Create one with: npm run token -- create --name <name> --channels all\n');
    return;
  }
  const header = { name: 'NAME', id: 'ID', channels: 'CHANNELS', read: 'READ', created: 'CREATED', lastUsed: 'LAST USED', revoked: 'REVOKED' };
  const cells = rows.map((row) => ({ ...row, created: time(row.created), lastUsed: time(row.lastUsed), revoked: time(row.revoked) }));
  const columns = Object.keys(header) as (keyof typeof header)[];
  const widths = columns.map((column) => Math.max(...[header, ...cells].map((row) => row[column].length)));
  for (const row of [header, ...cells]) {
    process.stdout.write(`${columns.map((column, index) => row[column].padEnd(widths[index])).join('  ').trimEnd()}\n`);
  }
}

async function revoke(store: Store, args: string[]) {
  const { positionals } = parseArgs({ args, allowPositionals: true, options: {} });
  if (positionals.length !== 1) throw new UsageError('revoke takes one token name or id');
  const [nameOrId] = positionals;
  try {
    await new ApiTokens(store).revoke(nameOrId, { byName: true });
  } catch (error) {
    if (error instanceof NotFoundError) throw new UsageError(`no token named ${nameOrId} (see: npm run token -- list)`);
    if (error instanceof InvalidStateError) throw new UsageError(`${nameOrId} was already revoked`);
    throw error;
  }
  process.stdout.write(`Revoked ${nameOrId}: its next request is refused.\n`);
}

const commands: Record<string, (store: Store, args: string[]) => Promise<void>> = { create, list, revoke };

async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  if (!command || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(`${usage}\n`);
    return command ? 0 : 2;
  }
  const run = commands[command];
  if (!run) {
    process.stderr.write(`Unknown command "${command}".\n\n${usage}\n`);
    return 2;
  }
  return runCommand(`token ${command}`, usage, async () => {
    const store = await openStore(loadConfig(process.env).database);
    try {
      await run(store, args);
      return 0;
    } finally {
      await store.close();
    }
  });
}

process.exitCode = await main(process.argv.slice(2));
