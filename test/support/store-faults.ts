import crypto from 'node:crypto';
import { expect } from 'vitest';
import type { SmtpSink } from '../peers/smtp-sink';
import { legacyRequest } from '../rest/legacy-client';
import { eventually } from './gateway';
import type { AnyGateway } from './db';

export const sendEmail = `mutation($input: SendEmailInput!) {
  sendEmail(input: $input) {
    __typename
    ... on Delivery { id }
    ... on Error { code message }
    ... on StoreUnavailableError { retryAfterSeconds }
  }
}`;

/** A send as a caller makes it: its own idempotency key, so a refused one can be sent again as the same send. */
export interface Send {
  key: string;
  input: Record<string, unknown>;
}

export function newSend(label: string, n: number): Send {
  const key = `${label}-${n}-${crypto.randomBytes(4).toString('hex')}`;
  // About 2 KB, like the emails that filled the disk in the issue.
  return { key, input: { to: [`ops${n % 7}@example.com`], subject: `${label} #${n}`, content: `${key} `.repeat(60), wait: false, idempotencyKey: key } };
}

export type SendAnswer = { accepted: true; id: string } | { accepted: false; retryAfterSeconds: number; message: string };

/** One send over GraphQL: accepted (a Delivery), or told to retry; anything else fails the test. */
export async function sendOverGraphql(gateway: AnyGateway, send: Send): Promise<SendAnswer> {
  const { status, body } = await gateway.graphql(sendEmail, { input: send.input });
  expect(status, JSON.stringify(body)).toBe(200);
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  const result = body.data.sendEmail;
  if (result.__typename === 'Delivery') return { accepted: true, id: result.id };
  expect(result).toMatchObject({ __typename: 'StoreUnavailableError', code: 'STORE_UNAVAILABLE' });
  expect(result.retryAfterSeconds).toBeGreaterThan(0);
  return { accepted: false, retryAfterSeconds: result.retryAfterSeconds, message: result.message };
}

/** One send over the legacy REST route: code 1000, or 1010 with Retry-After; anything else fails the test. */
export async function sendOverRest(base: string, send: Send): Promise<SendAnswer> {
  const input = send.input as { to: string[]; subject: string; content: string };
  const body = JSON.stringify({ email: input.to.join(','), subject: input.subject, content: input.content, idempotencyKey: send.key });
  const answer = await legacyRequest(base, '/api/third/email/sendMsg', { method: 'POST', body, headers: { 'content-type': 'application/json' } });
  expect(answer.status).toBe(200);
  if (answer.body.code === 1000) return { accepted: true, id: answer.body.deliveryId! };
  expect(answer.body.code, answer.text).toBe(1010);
  expect(Number(answer.headers['retry-after'])).toBeGreaterThan(0);
  return { accepted: false, retryAfterSeconds: Number(answer.headers['retry-after']), message: answer.body.data };
}

/** What a caller learns from /readyz. */
export async function readiness(gateway: AnyGateway): Promise<{ status: number; checks: Record<string, string> }> {
  const response = await gateway.fetch('/readyz');
  return { status: response.status, checks: ((await response.json()) as { checks: Record<string, string> }).checks };
}

/** The message says what happened in general words: no file, no SQL, no server. */
export function expectGeneralWords(message: string): void {
  expect(message).toMatch(/database/);
  expect(message).not.toMatch(/SQLITE|sqlite|\.db|\/tmp|select|insert|update |127\.0\.0\.1|postgres:/i);
}

/**
 * Every accepted send, and every refused one sent again with its key once the store healed, reaches the SMTP sink
 * exactly once.
 */
export async function expectEachDeliveredOnce(gateway: AnyGateway, sink: SmtpSink, accepted: string[], refused: Send[]): Promise<void> {
  const ids = [...accepted];
  for (const send of refused) {
    const again = await sendOverGraphql(gateway, send);
    expect(again.accepted).toBe(true);
    if (again.accepted) ids.push(again.id);
  }
  expect(new Set(ids).size).toBe(ids.length);
  await eventually(() => ids.every((id) => sink.messagesFor(id).length > 0), 30_000);
  await new Promise((resolve) => setTimeout(resolve, 300));
  const counts = ids.map((id) => sink.messagesFor(id).length);
  expect(counts.filter((count) => count !== 1)).toEqual([]);
}

/** The metric's value for one kind (0 when absent). */
export async function storeFaultCount(gateway: AnyGateway, kind: string): Promise<number> {
  const text = await (await gateway.fetch('/metrics')).text();
  const line = text.split('\n').find((row) => row.startsWith(`notify_gateway_store_faults_total{kind="${kind}"}`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

/**
 * After a fault episode: each send delivered once (`expectEachDeliveredOnce`), no delivery FAILED by it, the fault
 * counted under `kind`, and the episode logged once at its start and once at its end (`episodes`: how many it may look
 * like), not once per refused request.
 */
export async function expectRecovered(
  gateway: AnyGateway,
  sink: SmtpSink,
  sends: { accepted: string[]; refused: Send[] },
  kind: string,
  episodes: { min: number; max: number } = { min: 1, max: 1 },
): Promise<void> {
  await expectEachDeliveredOnce(gateway, sink, sends.accepted, sends.refused);
  expect((await gateway.store.countByStatus()).filter((row) => row.status === 'FAILED')).toEqual([]);
  expect(await storeFaultCount(gateway, kind)).toBeGreaterThan(0);
  const starts = gateway.logs.filter((line) => line.msg === 'the database cannot take writes; refusing sends until it does');
  const ends = gateway.logs.filter((line) => line.msg === 'the database takes writes again');
  expect(starts.length).toBeGreaterThanOrEqual(episodes.min);
  expect(starts.length).toBeLessThanOrEqual(episodes.max);
  expect(ends).toHaveLength(starts.length);
}
