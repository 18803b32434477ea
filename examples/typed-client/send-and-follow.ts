// Sends an email through the gateway with graphql-request and follows the delivery over graphql-ws, both typed by
// the documents in generated.ts (`npm run codegen`).
//
//   OPS_TOKEN=… TO=ops@example.com [GATEWAY_URL=http://localhost:4000] npx tsx examples/typed-client/send-and-follow.ts
import { pathToFileURL } from 'node:url';
import type { ResultOf, TypedDocumentNode } from '@graphql-typed-document-node/core';
import { print } from 'graphql';
import { ClientError, request } from 'graphql-request';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { FollowDeliveryDocument, SendEmailDocument, type SendEmailMutation } from './generated';

export type DeliveryUpdate = ResultOf<typeof FollowDeliveryDocument>['deliveryUpdated'];
type Refusal = Exclude<SendEmailMutation['sendEmail'], { __typename: 'Delivery' }>;

/** sendEmail answered with one of its error members: nothing was recorded. */
export class SendRefusedError extends Error {
  constructor(readonly refusal: Refusal) {
    // A ValidationError's message is its field errors on one line: one line each reads better.
    const detail =
      refusal.__typename === 'ValidationError'
        ? refusal.fieldErrors.map((field) => `\n  ${field.path}: ${field.message}`).join('')
        : ` ${refusal.message}`;
    super(`sendEmail refused (${refusal.code}):${detail}`);
  }
}

/** A subscription's results over graphql-ws, typed by its document; GraphQL errors are thrown. */
export async function* subscribe<TResult, TVariables extends Record<string, unknown>>(
  client: Client,
  document: TypedDocumentNode<TResult, TVariables>,
  variables: TVariables,
): AsyncGenerator<TResult> {
  for await (const result of client.iterate<TResult>({ query: print(document), variables })) {
    if (result.errors?.length) throw new Error(result.errors.map((error) => error.message).join('; '));
    if (result.data) yield result.data;
  }
}

const finished = new Set<DeliveryUpdate['status']>(['SENT', 'FAILED', 'CANCELLED']);

export interface SendAndFollowOptions {
  /** The gateway's base URL, e.g. http://localhost:4000 */
  url: string;
  token: string;
  to: string[];
  subject?: string;
  content: string;
  onAccepted?: (id: string) => void;
  /** Called each time the status changes, starting with the one the delivery has when the subscription begins. */
  onStatus?: (update: DeliveryUpdate) => void;
}

/** The delivery as it stood when it was SENT, FAILED or CANCELLED. */
export async function sendAndFollow(options: SendAndFollowOptions): Promise<DeliveryUpdate> {
  const endpoint = new URL('/graphql', options.url).href;
  const { sendEmail } = await request(
    endpoint,
    SendEmailDocument,
    { input: { to: options.to, subject: options.subject, content: options.content, wait: false } },
    { 'OPS-Token': options.token },
  );
  if (sendEmail.__typename !== 'Delivery') throw new SendRefusedError(sendEmail);
  options.onAccepted?.(sendEmail.id);

  const client = createClient({
    url: endpoint.replace(/^http/, 'ws'),
    webSocketImpl: WebSocket,
    connectionParams: { 'OPS-Token': options.token },
  });
  try {
    let last: DeliveryUpdate | undefined;
    for await (const { deliveryUpdated } of subscribe(client, FollowDeliveryDocument, { id: sendEmail.id })) {
      if (deliveryUpdated.status !== last?.status) options.onStatus?.(deliveryUpdated);
      last = deliveryUpdated;
      if (finished.has(deliveryUpdated.status)) return deliveryUpdated;
    }
    throw new Error(`the subscription ended while ${sendEmail.id} was ${last?.status ?? 'not yet seen'}`);
  } finally {
    await client.dispose();
  }
}

/** One line for what went wrong: HTTP and GraphQL errors, graphql-ws close events and error lists, network errors. */
export function describeError(error: unknown): string {
  if (error instanceof ClientError) {
    return `${error.response.errors?.[0]?.message ?? 'request failed'} (HTTP ${error.response.status})`;
  }
  if (error instanceof Error) return error.cause instanceof Error ? `${error.message}: ${error.cause.message}` : error.message;
  if (Array.isArray(error)) return error.map(describeError).join('; ');
  if (typeof error === 'object' && error !== null) {
    if ('code' in error && 'reason' in error) return `WebSocket closed: ${String(error.code)} ${String(error.reason)}`;
    if ('message' in error) return String(error.message);
  }
  return String(error);
}

async function main(): Promise<number> {
  const token = process.env.OPS_TOKEN;
  const to = process.env.TO?.split(',').map((address) => address.trim()).filter(Boolean);
  if (!token || !to?.length) {
    console.error('usage: OPS_TOKEN=… TO=a@example.com[,b@example.com] [GATEWAY_URL=http://localhost:4000] send-and-follow.ts');
    return 1;
  }
  try {
    const final = await sendAndFollow({
      url: process.env.GATEWAY_URL ?? 'http://localhost:4000',
      token,
      to,
      subject: 'Hello from the typed client example',
      content: 'Sent with graphql-request, followed over graphql-ws.',
      onAccepted: (id) => console.log(`accepted ${id}`),
      onStatus: ({ id, status, attempts, lastError }) =>
        console.log(`${id} ${status}${lastError && status !== 'SENT' ? ` after ${attempts} attempt(s): ${lastError.code} ${lastError.message}` : ''}`),
    });
    return final.status === 'SENT' ? 0 : 1;
  } catch (error) {
    console.error(`error: ${describeError(error)}`);
    return 1;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main();
}
