import { attemptOutcomes, channels, deliveryStatuses, type AttemptRow, type DeliveryRow } from '../../db/schema';
import { builder } from '../builder';

export const ChannelEnum = builder.enumType('Channel', { values: channels });

export const DeliveryStatusEnum = builder.enumType('DeliveryStatus', {
  values: {
    QUEUED: { description: 'Recorded, waiting for its turn' },
    SENDING: { description: 'An attempt is under way' },
    SENT: { description: 'The provider accepted it' },
    RETRYING: { description: 'An attempt failed in a way worth retrying; see nextAttemptAt' },
    FAILED: { description: 'Given up: a permanent error, or out of attempts or time' },
    CANCELLED: { description: 'Cancelled before it was sent' },
  } satisfies Record<(typeof deliveryStatuses)[number], unknown>,
});

const AttemptOutcomeEnum = builder.enumType('AttemptOutcome', { values: attemptOutcomes });

interface DeliveryErrorShape {
  code: string;
  message: string;
}

const DeliveryErrorRef = builder.objectRef<DeliveryErrorShape>('DeliveryError').implement({
  description: "The last failure, in the provider's own code and words",
  fields: (t) => ({
    code: t.exposeString('code'),
    message: t.exposeString('message'),
  }),
});

const DeliveryAttemptRef = builder.objectRef<AttemptRow>('DeliveryAttempt').implement({
  fields: (t) => ({
    number: t.exposeInt('number'),
    startedAt: t.field({ type: 'DateTime', resolve: (attempt) => new Date(attempt.startedAt) }),
    durationMs: t.exposeInt('durationMs'),
    outcome: t.field({ type: AttemptOutcomeEnum, resolve: (attempt) => attempt.outcome }),
    providerCode: t.exposeString('providerCode', { nullable: true }),
    providerMessage: t.exposeString('providerMessage', { nullable: true }),
  }),
});

const optionalDate = (value: number | null) => (value == null ? null : new Date(value));

export const DeliveryRef = builder.objectRef<DeliveryRow>('Delivery');

builder.node(DeliveryRef, {
  id: { resolve: (delivery) => delivery.id },
  loadMany: (ids, context) => context.service.getDeliveries(ids, context.caller),
  description: 'One message handed to the gateway, and what became of it',
  fields: (t) => ({
    channel: t.field({ type: ChannelEnum, resolve: (delivery) => delivery.channel }),
    status: t.field({ type: DeliveryStatusEnum, resolve: (delivery) => delivery.status }),
    provider: t.exposeString('provider', { description: 'Transport that handles it: dingtalk, smtp, file-outbox, aliyun, tencent, log' }),
    recipient: t.exposeString('recipient', {
      description: 'Email addresses, an E.164 mobile number, or for DingTalk a non-secret robot label',
    }),
    attempts: t.exposeInt('attempts'),
    attemptLog: t.field({
      type: [DeliveryAttemptRef],
      description: 'Every attempt, oldest first',
      resolve: (delivery, _args, context) => context.service.listAttempts(delivery.id),
    }),
    lastError: t.field({
      type: DeliveryErrorRef,
      nullable: true,
      resolve: (delivery) =>
        delivery.lastErrorCode == null ? null : { code: delivery.lastErrorCode, message: delivery.lastErrorMessage ?? '' },
    }),
    providerMessageId: t.exposeString('providerMessageId', { nullable: true }),
    idempotencyKey: t.exposeString('idempotencyKey', { nullable: true }),
    nextAttemptAt: t.field({ type: 'DateTime', nullable: true, resolve: (delivery) => optionalDate(delivery.nextAttemptAt) }),
    createdAt: t.field({ type: 'DateTime', resolve: (delivery) => new Date(delivery.createdAt) }),
    updatedAt: t.field({ type: 'DateTime', resolve: (delivery) => new Date(delivery.updatedAt) }),
    sentAt: t.field({ type: 'DateTime', nullable: true, resolve: (delivery) => optionalDate(delivery.sentAt) }),
    redactedAt: t.field({
      type: 'DateTime',
      nullable: true,
      description:
        'When the message content (subject, bodies, text, parameters, payload) was removed: CONTENT_RETENTION_DAYS after it was created, or by eraseRecipient. The delivery itself stays until DELIVERY_RETENTION_DAYS; such a delivery cannot be retried. Null while the content is kept',
      resolve: (delivery) => optionalDate(delivery.contentRedactedAt),
    }),
    digest: t.field({
      type: DeliveryRef,
      nullable: true,
      description:
        'The delivery whose message carried this one in an alert-storm digest (itself for the carrier); null when it was not folded, or when this token may not read the carrier. A folded delivery is SENT when its digest was, without attempts of its own',
      resolve: (delivery, _args, context) => (delivery.digestId ? context.service.getDelivery(delivery.digestId, context.caller) : null),
    }),
    foldedDeliveries: t.field({
      type: [DeliveryRef],
      description: 'For the carrier of a digest: every delivery the digest carried, itself included, oldest first (those this token may read); empty otherwise',
      resolve: (delivery, _args, context) => (delivery.digestId === delivery.id ? context.service.listFolded(delivery.id, context.caller) : []),
    }),
    viewerCanRetry: t.boolean({
      description:
        'retryDelivery would accept it from this token now: it is FAILED, still has what it needs to be sent (DingTalk and SMS lose their credentials or code when they fail; no channel keeps its content past redactedAt), and the token may send on its channel',
      resolve: (delivery, _args, context) => context.service.canRetry(delivery, context.caller),
    }),
    viewerCanCancel: t.boolean({
      description: 'cancelDelivery would accept it from this token now: it is QUEUED or RETRYING and the token may send on its channel',
      resolve: (delivery, _args, context) => context.service.canCancel(delivery, context.caller),
    }),
  }),
});
