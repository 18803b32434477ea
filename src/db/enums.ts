/** Stored as text (no database enum): a new channel needs no migration. Append only; the order is the API's order. */
export const channels = ['DING', 'EMAIL', 'SMS', 'FEISHU', 'WECOM', 'WEBHOOK'] as const;
export type ChannelName = (typeof channels)[number];

export const deliveryStatuses = ['QUEUED', 'SENDING', 'SENT', 'RETRYING', 'FAILED', 'CANCELLED'] as const;
export type DeliveryStatus = (typeof deliveryStatuses)[number];

/** Not final yet: waiting for an attempt, or in one. */
export const pendingStatuses = ['QUEUED', 'RETRYING', 'SENDING'] as const satisfies readonly DeliveryStatus[];

export const attemptOutcomes = ['SENT', 'RETRYABLE', 'PERMANENT', 'RATE_LIMITED', 'INTERRUPTED'] as const;
export type AttemptOutcome = (typeof attemptOutcomes)[number];
