import { errorCatalog, type ErrorCode } from '../errors';

/** When the legacy REST layer answers each code of the catalog (a new catalog entry fails to compile until described). */
export const legacyCodeUse: Record<ErrorCode, string> = {
  OK: 'Accepted. `data` is `sent`, or `queued for retry: <reason>` (first attempt failed, retried with backoff), or `queued: …` (not attempted yet). `deliveryId` is set',
  INVALID_ARGUMENT:
    'A parameter is missing, empty or invalid, badly percent-encoded, or the JSON body is malformed; `data` names each one, e.g. `content: must not be empty`. Nothing is recorded',
  UNAUTHENTICATED: 'The `OPS-Token` header is missing, unknown or revoked',
  FORBIDDEN: 'The token may not send on this channel',
  RATE_LIMITED:
    'Too many SMS to this number, or too many requests from this token; `data` ends with `try again in <n> s` (also in the `Retry-After` header)',
  PROVIDER_REJECTED:
    "The first attempt failed for good (the delivery is FAILED): `data` is the provider's reason and code, `deliveryId` is set",
  IDEMPOTENCY_CONFLICT: 'The `Idempotency-Key` header (or `idempotencyKey` parameter) was used before with other parameters',
  NOT_FOUND: 'No such route under `/api/third/`, or a method other than GET and POST',
  PAYLOAD_TOO_LARGE: 'The body is larger than `BODY_LIMIT_BYTES` (1 MiB by default)',
  INVALID_STATE: 'Only when an idempotent repeat finds its delivery cancelled: nothing will be sent',
  STORE_UNAVAILABLE:
    'The gateway cannot use its database for now (disk full, database busy or unreachable): nothing is recorded. Send again after the `Retry-After` header\'s seconds, with the same `Idempotency-Key`',
  INTERNAL_ERROR: 'Unexpected failure; `data` is `internal error (reference err_…)`, the details are in the gateway log under that reference',
};

/** The README table of legacy codes, written from the catalog. */
export function legacyCodesMarkdown(): string {
  const rows = (Object.keys(errorCatalog) as ErrorCode[]).map(
    (code) => `| ${errorCatalog[code].restCode} | \`${code}\` | ${legacyCodeUse[code]} |`,
  );
  return ['| code | name (GraphQL `code`) | meaning |', '| --- | --- | --- |', ...rows].join('\n');
}
