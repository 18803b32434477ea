import { spawnGateway, type GatewayProcess } from './gateway-process';
import type { TestDatabase } from './postgres';

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
