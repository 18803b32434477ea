import { eventually } from './gateway';
import { spawnGateway, type GatewayProcess } from './gateway-process';
import { withDatabase, type TestDatabase } from './postgres';

/**
 * Gateway processes on one PostgreSQL database, started at the same moment from the bundle `npm start` runs (so they
 * also race to migrate it). `env` applies to all; `each[i]` to replica i alone.
 */
export async function startReplicas(
  count: number,
  database: TestDatabase,
  env: Record<string, string> = {},
  each: Record<string, string>[] = [],
): Promise<GatewayProcess[]> {
  const started = await Promise.allSettled(
    Array.from({ length: count }, (_, index) =>
      spawnGateway({ bundle: true, database, env: { ...env, ...each[index] }, readyTimeoutMs: 60_000 }),
    ),
  );
  const replicas = started.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
  const failed = started.find((result) => result.status === 'rejected');
  if (failed) {
    for (const replica of replicas) replica.kill('SIGKILL');
    throw (failed as PromiseRejectedResult).reason;
  }
  return replicas;
}

/**
 * Deliveries per status (of `ids`, or all), once every one is SENT or `timeoutMs` has passed: a provider holds a
 * message a moment before the gateway records it, so what arrived there is not yet what the database says.
 */
export async function statusesOnceSent(database: TestDatabase, ids?: readonly string[], timeoutMs = 60_000) {
  let statuses: { status: string; n: number }[] = [];
  const allSent = async () => {
    statuses = await withDatabase(database, async (client) => {
      const { rows } = await client.query(
        'select status, count(*)::int as n from deliveries where $1::text[] is null or id = any($1) group by status order by status',
        [ids ?? null],
      );
      return rows;
    });
    return statuses.length === 1 && statuses[0].status === 'SENT';
  };
  // The caller asserts on what is there at the end, so a timeout shows as the statuses rather than as a bare timeout.
  await eventually(allSent, timeoutMs).catch(() => undefined);
  return statuses;
}

export const sendEmailMutation = `mutation($input: SendEmailInput!) {
  sendEmail(input: $input) {
    __typename
    ... on Delivery { id status attempts }
    ... on Error { message }
  }
}`;

export const sendSmsMutation = `mutation($input: SendSmsInput!) {
  sendSms(input: $input) {
    __typename
    ... on Delivery { id status attempts }
    ... on RateLimitedError { message retryAfterSeconds }
    ... on Error { message }
  }
}`;
