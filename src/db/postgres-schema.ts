import { sql } from 'drizzle-orm';
import { bigint, index, integer, pgTable, text, uniqueIndex } from 'drizzle-orm/pg-core';
import { attemptOutcomes, channels, deliveryStatuses } from './enums';

// The same tables as sqlite-schema.ts, column for column: times are epoch milliseconds (bigint read as a JS number),
// so both stores hand out identical rows (checked at compile time in schema.ts).
const epochMs = () => bigint({ mode: 'number' });

export const deliveries = pgTable(
  'deliveries',
  {
    id: text().primaryKey(),
    channel: text({ enum: channels }).notNull(),
    status: text({ enum: deliveryStatuses }).notNull(),
    provider: text().notNull(),
    recipient: text().notNull(),
    payload: text().notNull(),
    sealedSecrets: text(),
    callerId: text().notNull(),
    idempotencyKey: text(),
    requestHash: text(),
    attempts: integer().notNull().default(0),
    lastErrorCode: text(),
    lastErrorMessage: text(),
    providerMessageId: text(),
    nextAttemptAt: epochMs(),
    claimedUntil: epochMs(),
    createdAt: epochMs().notNull(),
    updatedAt: epochMs().notNull(),
    sentAt: epochMs(),
    digestId: text(),
    contentRedactedAt: epochMs(),
  },
  (table) => [
    index('deliveries_created_idx').on(table.createdAt, table.id),
    index('deliveries_channel_created_idx').on(table.channel, table.createdAt, table.id),
    index('deliveries_status_created_idx').on(table.status, table.createdAt, table.id),
    index('deliveries_recipient_created_idx').on(table.recipient, table.createdAt, table.id),
    index('deliveries_caller_created_idx').on(table.callerId, table.createdAt, table.id),
    index('deliveries_due_idx')
      .on(table.nextAttemptAt)
      .where(sql`${table.status} in ('QUEUED', 'RETRYING')`),
    // The waiting deliveries of one recipient: the turns a paced channel has given out.
    index('deliveries_pending_recipient_idx')
      .on(table.recipient, table.nextAttemptAt)
      .where(sql`${table.status} in ('QUEUED', 'RETRYING')`),
    index('deliveries_claimed_idx')
      .on(table.claimedUntil)
      .where(sql`${table.status} = 'SENDING'`),
    uniqueIndex('deliveries_idempotency_idx').on(table.callerId, table.idempotencyKey),
    // What a digest carried, and what a failed digest hands back.
    index('deliveries_digest_idx').on(table.digestId),
    // What the retention pass has yet to redact, oldest first, without reading what it already did.
    index('deliveries_unredacted_created_idx')
      .on(table.createdAt)
      .where(sql`${table.contentRedactedAt} is null`),
  ],
);

export const deliveryAttempts = pgTable(
  'delivery_attempts',
  {
    id: bigint({ mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    deliveryId: text()
      .notNull()
      .references(() => deliveries.id, { onDelete: 'cascade' }),
    number: integer().notNull(),
    channel: text({ enum: channels }).notNull(),
    recipient: text().notNull(),
    provider: text().notNull(),
    startedAt: epochMs().notNull(),
    durationMs: integer().notNull(),
    outcome: text({ enum: attemptOutcomes }).notNull(),
    providerCode: text(),
    providerMessage: text(),
  },
  (table) => [
    uniqueIndex('delivery_attempts_delivery_number_idx').on(table.deliveryId, table.number),
    index('delivery_attempts_recipient_started_idx').on(table.channel, table.recipient, table.startedAt),
  ],
);

export const apiTokens = pgTable(
  'api_tokens',
  {
    id: text().primaryKey(),
    name: text().notNull(),
    tokenHash: text().notNull(),
    scopes: text().notNull(),
    createdAt: epochMs().notNull(),
    revokedAt: epochMs(),
    lastUsedAt: epochMs(),
  },
  (table) => [uniqueIndex('api_tokens_hash_idx').on(table.tokenHash), uniqueIndex('api_tokens_name_idx').on(table.name)],
);

export const pacingReservations = pgTable(
  'pacing_reservations',
  {
    id: text().primaryKey(),
    channel: text({ enum: channels }).notNull(),
    recipient: text().notNull(),
    reservedAt: epochMs().notNull(),
    expiresAt: epochMs().notNull(),
  },
  (table) => [index('pacing_reservations_recipient_idx').on(table.channel, table.recipient)],
);

export const gatewaySettings = pgTable('gateway_settings', {
  name: text().primaryKey(),
  value: text().notNull(),
});
