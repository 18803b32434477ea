/**
 * The one catalog of error codes. GraphQL error types carry `code`, the legacy REST layer answers `restCode`,
 * and the README's table is written from this list.
 */
export const errorCatalog = {
  OK: { restCode: 1000, description: 'Accepted: sent, or stored and going to be retried' },
  INVALID_ARGUMENT: { restCode: 1001, description: 'A parameter is missing or invalid; `data` names it' },
  UNAUTHENTICATED: { restCode: 1002, description: 'OPS-Token missing, unknown or revoked' },
  FORBIDDEN: { restCode: 1003, description: 'The token may not use this channel or read this delivery' },
  RATE_LIMITED: { restCode: 1004, description: 'Too many messages to this recipient; `data` says when to try again' },
  PROVIDER_REJECTED: { restCode: 1005, description: 'The provider refused the message for good; `data` carries its reason' },
  IDEMPOTENCY_CONFLICT: { restCode: 1006, description: 'The idempotency key was used before with a different payload' },
  NOT_FOUND: { restCode: 1007, description: 'No such route or delivery' },
  PAYLOAD_TOO_LARGE: { restCode: 1008, description: 'The request body is larger than the gateway accepts' },
  INVALID_STATE: { restCode: 1009, description: 'The delivery is not in a state that allows this operation' },
  STORE_UNAVAILABLE: {
    restCode: 1010,
    description: 'The gateway cannot use its database for now (disk full, busy, unreachable); retry after `retryAfterSeconds`',
  },
  INTERNAL_ERROR: { restCode: 1099, description: 'Unexpected error; details are in the gateway log, not in the answer' },
} as const;

export type ErrorCode = keyof typeof errorCatalog;

export class GatewayError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = new.target.name;
  }

  get restCode(): number {
    return errorCatalog[this.code].restCode;
  }
}

export interface FieldError {
  path: string;
  message: string;
}

export class ValidationError extends GatewayError {
  constructor(readonly fieldErrors: FieldError[]) {
    super('INVALID_ARGUMENT', fieldErrors.map((error) => `${error.path}: ${error.message}`).join('; '));
  }
}

export class RateLimitedError extends GatewayError {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super('RATE_LIMITED', message);
  }
}

export class IdempotencyConflictError extends GatewayError {
  constructor(readonly idempotencyKey: string) {
    super('IDEMPOTENCY_CONFLICT', `Idempotency key "${idempotencyKey}" was already used with a different payload`);
  }
}

export class ForbiddenError extends GatewayError {
  constructor(message: string) {
    super('FORBIDDEN', message);
  }
}

export class NotFoundError extends GatewayError {
  constructor(message: string) {
    super('NOT_FOUND', message);
  }
}

export class InvalidStateError extends GatewayError {
  constructor(message: string) {
    super('INVALID_STATE', message);
  }
}

export class UnauthenticatedError extends GatewayError {
  constructor(message = 'A valid OPS-Token header is required') {
    super('UNAUTHENTICATED', message);
  }
}

/** The database cannot take writes (or answer) for now: a fault of the gateway's own that a retry later gets past. */
export class StoreUnavailableError extends GatewayError {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super('STORE_UNAVAILABLE', message);
  }
}
