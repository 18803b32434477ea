import {
  ForbiddenError,
  GatewayError,
  IdempotencyConflictError,
  InvalidStateError,
  NotFoundError,
  RateLimitedError,
  StoreUnavailableError,
  ValidationError,
  type FieldError,
} from '../../errors';
import { builder } from '../builder';

export const ErrorInterface = builder.interfaceRef<GatewayError>('Error').implement({
  description: 'Something the caller can act on. `code` is the same code the legacy REST layer answers by name.',
  fields: (t) => ({
    message: t.exposeString('message'),
    code: t.string({ resolve: (error) => error.code }),
  }),
});

const FieldErrorRef = builder.objectRef<FieldError>('FieldError').implement({
  fields: (t) => ({
    path: t.exposeString('path', { description: 'Dotted path of the input field, e.g. `to.1`' }),
    message: t.exposeString('message'),
  }),
});

builder.objectType(ValidationError, {
  name: 'ValidationError',
  description: 'The input was refused; nothing was recorded.',
  interfaces: [ErrorInterface],
  fields: (t) => ({
    fieldErrors: t.field({ type: [FieldErrorRef], resolve: (error) => error.fieldErrors }),
  }),
});

builder.objectType(RateLimitedError, {
  name: 'RateLimitedError',
  description: 'Too many messages to this recipient; nothing was recorded.',
  interfaces: [ErrorInterface],
  fields: (t) => ({
    retryAfterSeconds: t.exposeInt('retryAfterSeconds'),
  }),
});

builder.objectType(StoreUnavailableError, {
  name: 'StoreUnavailableError',
  description:
    'The gateway cannot use its database for now (disk full, busy, unreachable); nothing was recorded. Send again after ' +
    '`retryAfterSeconds`, with the same idempotency key.',
  interfaces: [ErrorInterface],
  fields: (t) => ({
    retryAfterSeconds: t.exposeInt('retryAfterSeconds'),
  }),
});

builder.objectType(IdempotencyConflictError, {
  name: 'IdempotencyConflictError',
  description: 'The idempotency key was used before with a different payload.',
  interfaces: [ErrorInterface],
  fields: (t) => ({
    idempotencyKey: t.exposeString('idempotencyKey'),
  }),
});

for (const [ErrorClass, description] of [
  [ForbiddenError, 'The token may not do this.'],
  [NotFoundError, 'No such delivery or token, or not one this token may read.'],
  [InvalidStateError, 'The delivery or token is not in a state that allows this.'],
] as const) {
  builder.objectType(ErrorClass, { name: ErrorClass.name, description, interfaces: [ErrorInterface], fields: () => ({}) });
}

export const sendErrorTypes = [ValidationError, RateLimitedError, IdempotencyConflictError, ForbiddenError, StoreUnavailableError];
export const manageErrorTypes = [NotFoundError, InvalidStateError, ForbiddenError];
export const createTokenErrorTypes = [ForbiddenError, ValidationError];
export const revokeTokenErrorTypes = [ForbiddenError, NotFoundError, InvalidStateError];
export const eraseRecipientErrorTypes = [ForbiddenError, ValidationError];
