import { sql } from 'drizzle-orm';
import { index, integer, sqliteTable, text, uniqueIndex } from 'drizzle-orm/sqlite-core';
import { attemptOutcomes, channels, deliveryStatuses } from './enums';

export const deliveries = sqliteTable(
  'deliveries',
  {
    id: text().primaryKey(),
    channel: text({ enum: channels }).notNull(),
    status: text({ enum: deliveryStatuses }).notNull(),
    provider: text().notNull(),
    recipient: text().notNull(),
    /** Non-secret message fields as JSON (what the API may show). */
    payload: text().notNull(),
    /** Encrypted secret fields (robot credentials, verification codes); erased once the delivery is final. */
    sealedSecrets: text(),
    callerId: text().notNull(),
    idempotencyKey: text(),
    requestHash: text(),
    attempts: integer().notNull().default(0),
    lastErrorCode: text(),
    lastErrorMessage: text(),
    providerMessageId: text(),
    nextAttemptAt: integer(),
    claimedUntil: integer(),
    createdAt: integer().notNull(),
    updatedAt: integer().notNull(),
    sentAt: integer(),
    /** The delivery whose digest carried this one (itself for the carrier); null unless folded into an alert-storm digest. */
    digestId: text(),
    /** When the message content was replaced by the redaction marker (retention or erasure); null while it is kept. */
    contentRedactedAt: integer(),
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

export const deliveryAttempts = sqliteTable(
  'delivery_attempts',
  {
    id: integer().primaryKey({ autoIncrement: true }),
    deliveryId: text()
      .notNull()
      .references(() => deliveries.id, { onDelete: 'cascade' }),
    number: integer().notNull(),
    channel: text({ enum: channels }).notNull(),
    recipient: text().notNull(),
    provider: text().notNull(),
    startedAt: integer().notNull(),
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

export const apiTokens = sqliteTable(
  'api_tokens',
  {
    id: text().primaryKey(),
    name: text().notNull(),
    tokenHash: text().notNull(),
    /** JSON: { channels: ChannelName[], read: 'none' | 'own' | 'all' } */
    scopes: text().notNull(),
    createdAt: integer().notNull(),
    revokedAt: integer(),
    lastUsedAt: integer(),
  },
  (table) => [uniqueIndex('api_tokens_hash_idx').on(table.tokenHash), uniqueIndex('api_tokens_name_idx').on(table.name)],
);

/** DingTalk-style pacing: a slot taken for an attempt about to start, until the attempt is recorded or the claim lapses. */
export const pacingReservations = sqliteTable(
  'pacing_reservations',
  {
    /** `<delivery id>#<attempt number>` */
    id: text().primaryKey(),
    channel: text({ enum: channels }).notNull(),
    recipient: text().notNull(),
    reservedAt: integer().notNull(),
    expiresAt: integer().notNull(),
  },
  (table) => [index('pacing_reservations_recipient_idx').on(table.channel, table.recipient)],
);

/** Facts about the installation every process must agree on (the secret key's check value). */
export const gatewaySettings = sqliteTable('gateway_settings', {
  name: text().primaryKey(),
  value: text().notNull(),
});
