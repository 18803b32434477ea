import crypto from 'node:crypto';
import type { Authenticator, Caller } from '../auth';
import type { ChannelName, DeliveryRow } from '../db/schema';
import type { DeliveryService, SendOptions } from '../delivery/service';
import {
  errorCatalog,
  GatewayError,
  RateLimitedError,
  StoreUnavailableError,
  ValidationError,
  type ErrorCode,
  type FieldError,
} from '../errors';
import { isCrossSiteBrowserRequest } from '../http-guards';
import type { Logger } from '../logger';
import { MalformedParameterError } from './form-decoding';
import { legacyBodyLimitBytes, readLegacyParams, type LegacyParams, type LegacyRequest } from './legacy-params';

export interface LegacyRouteDeps {
  service: DeliveryService;
  authenticator: Authenticator;
  logger: Logger;
  /** Largest body read (BODY_LIMIT_BYTES); defaults to 1 MiB. */
  bodyLimitBytes?: number;
  now?: () => number;
}

/** What every legacy answer looks like, always with HTTP 200: old callers read `code`, not the status line. */
export interface LegacyAnswer {
  code: number;
  data: string;
  deliveryId?: string;
}

interface LegacyRoute {
  channel: ChannelName;
  /** Parameters the original route required, in the order missing ones are reported. */
  required: string[];
  /** Service input field → legacy parameter name, for validation messages. */
  names: Record<string, string>;
  input(params: LegacyParams): Record<string, unknown>;
}

const nonEmpty = (value: string | undefined) => (value === undefined || value === '' ? undefined : value);

/** DingTalk's own spellings (text, markdown, link, actionCard) or the GraphQL enum's. */
function msgType(value: string | undefined): string | undefined {
  if (!value) return undefined;
  return value.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase();
}

const subjectLength = 60;
/** The first line with something other than white space in it. */
const firstLine = /^[^\r\n]*\S[^\r\n]*/m;

/** The original route had no subject: the first non-blank line of the content, cut to 60 characters. */
export function defaultSubject(content: string | undefined): string {
  const line = firstLine.exec(content ?? '')?.[0].trim() ?? '';
  // A line of at most 60 UTF-16 units has at most 60 characters: only a longer one is counted by character.
  if (line.length <= subjectLength) return line;
  const characters = Array.from(line);
  return characters.length > subjectLength ? `${characters.slice(0, subjectLength - 1).join('')}…` : line;
}

export const legacyRoutes: Record<string, LegacyRoute> = {
  '/api/third/ding/sendMsg': {
    channel: 'DING',
    required: ['accessToken', 'secret', 'content'],
    names: {},
    input: (params) => ({
      accessToken: params.text('accessToken'),
      secret: params.text('secret'),
      content: params.text('content'),
      msgType: msgType(params.text('msgType')),
      title: nonEmpty(params.text('title')),
      messageUrl: nonEmpty(params.text('messageUrl')),
      picUrl: nonEmpty(params.text('picUrl')),
      atMobiles: params.list('atMobiles'),
      atUserIds: params.list('atUserIds'),
      atAll: params.flag('atAll'),
    }),
  },
  '/api/third/email/sendMsg': {
    channel: 'EMAIL',
    required: ['email', 'content'],
    names: { to: 'email' },
    input: (params) => {
      const content = params.text('content');
      return {
        to: params.list('email'),
        cc: params.list('cc'),
        bcc: params.list('bcc'),
        subject: nonEmpty(params.text('subject')) ?? defaultSubject(content),
        content,
        html: nonEmpty(params.text('html')),
      };
    },
  },
  '/api/third/feishu/sendMsg': {
    channel: 'FEISHU',
    required: ['token', 'content'],
    names: {},
    input: (params) => ({
      token: params.text('token'),
      secret: nonEmpty(params.text('secret')),
      content: params.text('content'),
      msgType: msgType(params.text('msgType')),
      title: nonEmpty(params.text('title')),
      atAll: params.flag('atAll'),
    }),
  },
  '/api/third/sms/sendMsg': {
    channel: 'SMS',
    required: ['mobile', 'content'],
    names: {},
    input: (params) => ({
      mobile: params.text('mobile'),
      content: params.text('content'),
      template: nonEmpty(params.text('template')),
    }),
  },
  '/api/third/wecom/sendMsg': {
    channel: 'WECOM',
    required: ['key', 'content'],
    names: {},
    input: (params) => ({
      key: params.text('key'),
      content: params.text('content'),
      msgType: msgType(params.text('msgType')),
      mentionedList: params.list('mentionedList'),
      mentionedMobileList: params.list('mentionedMobileList'),
    }),
  },
  // For scripts: POSTs {"content": "<content>"} to `url`, signed with `secret` (Standard Webhooks).
  '/api/third/webhook/sendMsg': {
    channel: 'WEBHOOK',
    required: ['url', 'secret', 'content'],
    names: { body: 'content' },
    input: (params) => ({
      url: params.text('url'),
      secret: params.text('secret'),
      body: { content: params.text('content') },
    }),
  },
};

const answer = (code: ErrorCode, data: string, deliveryId?: string): LegacyAnswer => ({
  code: errorCatalog[code].restCode,
  data,
  ...(deliveryId ? { deliveryId } : {}),
});

function reason(delivery: DeliveryRow): string {
  const message = delivery.lastErrorMessage ?? '';
  const code = delivery.lastErrorCode ?? '';
  if (!message) return code || 'no reason given';
  return code && !message.includes(code) ? `${message} (${code})` : message;
}

/** The answer for a recorded delivery, after the first attempt (or the wait for it) is over. */
export function deliveryAnswer(delivery: DeliveryRow, now: number): LegacyAnswer {
  const id = delivery.id;
  switch (delivery.status) {
    case 'SENT':
      return answer('OK', delivery.lastErrorCode === 'PARTIALLY_REJECTED' ? `sent; ${delivery.lastErrorMessage}` : 'sent', id);
    case 'RETRYING':
      return answer('OK', `queued for retry: ${reason(delivery)}`, id);
    case 'QUEUED':
    case 'SENDING':
      if (delivery.nextAttemptAt != null && delivery.nextAttemptAt > now) {
        return answer('OK', `queued: to be sent at ${new Date(delivery.nextAttemptAt).toISOString()}`, id);
      }
      return answer('OK', 'queued: the first attempt is still under way', id);
    case 'FAILED':
      return answer('PROVIDER_REJECTED', reason(delivery), id);
    case 'CANCELLED':
      return answer('INVALID_STATE', 'cancelled: it will not be sent', id);
  }
}

/** `to.1` → `email (item 2)`: service field paths in the names the legacy caller used. */
function legacyPath(path: string, route: LegacyRoute, keyFromParameter: boolean): string {
  const [field = path, ...rest] = path.split('.');
  const name = field === 'idempotencyKey' && !keyFromParameter ? 'Idempotency-Key' : (route.names[field] ?? field);
  const index = rest.length === 1 && /^\d+$/.test(rest[0]!) ? Number(rest[0]) : undefined;
  return index === undefined ? [name, ...rest].join('.') : `${name} (item ${index + 1})`;
}

const describe = (errors: FieldError[]) => errors.map((error) => `${error.path}: ${error.message}`).join('; ');

function errorAnswer(error: unknown, route: LegacyRoute | undefined, keyFromParameter: boolean): LegacyAnswer | undefined {
  if (error instanceof MalformedParameterError) return answer('INVALID_ARGUMENT', `${error.parameter}: ${error.message}`);
  if (error instanceof ValidationError) {
    const fieldErrors = route
      ? error.fieldErrors.map((fieldError) => ({ ...fieldError, path: legacyPath(fieldError.path, route, keyFromParameter) }))
      : error.fieldErrors;
    // One reason per parameter (the first): "content: must not be empty", not every rule an empty value breaks.
    const firstPerParameter = fieldErrors.filter((fieldError, index) => fieldErrors.findIndex((other) => other.path === fieldError.path) === index);
    return answer('INVALID_ARGUMENT', describe(firstPerParameter));
  }
  if (error instanceof GatewayError) return answer(error.code, error.message);
  return undefined;
}

/** What the routes answer, for either entry to write out. */
export interface LegacyReply {
  status: number;
  headers: Record<string, string>;
  body: string;
}

const routePrefix = /^\/api\/third(\/|$)/;
const allowedMethods = new Set(['GET', 'POST']);

/** True for the paths the legacy routes own (answering "no such route" for the unknown ones). */
export const isLegacyPath = (pathname: string) => routePrefix.test(pathname);

/** The original `/api/third/*` routes, for requests of the paths `isLegacyPath` accepts. */
export function createLegacyRoutes(deps: LegacyRouteDeps): (request: LegacyRequest) => Promise<LegacyReply> {
  const { service, authenticator } = deps;
  const logger = deps.logger.child({ component: 'legacy-rest' });
  const now = deps.now ?? Date.now;
  const limit = deps.bodyLimitBytes ?? legacyBodyLimitBytes;

  async function handle(request: LegacyRequest, state: { route?: LegacyRoute; caller?: Caller; keyFromParameter: boolean }): Promise<LegacyAnswer> {
    const path = request.pathname.length > 1 ? request.pathname.replace(/\/$/, '') : request.pathname;
    const route = legacyRoutes[path];
    if (!route) {
      return answer('NOT_FOUND', `no such route: ${path.slice(0, 200)}; the routes are ${Object.keys(legacyRoutes).join(', ')}`);
    }
    state.route = route;
    if (!allowedMethods.has(request.method)) {
      return answer('NOT_FOUND', `no route for ${request.method.slice(0, 20)} ${path}: use GET or POST`);
    }
    const caller = await authenticator.authenticate(request.header('ops-token'));
    if (!caller) return answer('UNAUTHENTICATED', errorCatalog.UNAUTHENTICATED.description);
    state.caller = caller;

    const params = await readLegacyParams(request, limit);
    const missing = route.required.filter((name) => !params.has(name));
    if (missing.length > 0) {
      const hint = params.ignoredBodyType
        ? ` (a ${params.ignoredBodyType} body is not read: send the parameters in the query string, as JSON or as a form)`
        : '';
      return answer('INVALID_ARGUMENT', `${describe(missing.map((name) => ({ path: name, message: 'is required' })))}${hint}`);
    }
    const keyParameter = nonEmpty(params.text('idempotencyKey'));
    state.keyFromParameter = keyParameter !== undefined;
    const input = { ...route.input(params), ...(keyParameter !== undefined ? { idempotencyKey: keyParameter } : {}) };
    const options: SendOptions = { idempotencyKey: request.header('idempotency-key') };
    const delivery = await service.send(route.channel, input, caller, options);
    return deliveryAnswer(delivery, now());
  }

  return async (request) => {
    const headers: Record<string, string> = { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' };
    // CSRF: a page of another site may never make the browser call these routes.
    if (isCrossSiteBrowserRequest(request.header('sec-fetch-site'))) {
      return { status: 403, headers, body: JSON.stringify(answer('FORBIDDEN', 'Cross-site browser requests are refused')) };
    }
    const state: { route?: LegacyRoute; caller?: Caller; keyFromParameter: boolean } = { keyFromParameter: false };
    let result: LegacyAnswer;
    try {
      result = await handle(request, state);
    } catch (error) {
      const known = errorAnswer(error, state.route, state.keyFromParameter);
      if (known) {
        result = known;
        if (error instanceof RateLimitedError || error instanceof StoreUnavailableError) headers['retry-after'] = String(error.retryAfterSeconds);
      } else {
        const reference = `err_${crypto.randomBytes(6).toString('hex')}`;
        logger.error({ err: error, reference, path: request.pathname }, 'legacy request failed');
        result = answer('INTERNAL_ERROR', `internal error (reference ${reference})`);
      }
    }
    // HTTP status is always 200 here, so the legacy code is what the request log needs; never the query (credentials).
    const accepted = result.code === errorCatalog.OK.restCode;
    if (!accepted || logger.isLevelEnabled('debug')) {
      const fields = { path: request.pathname, method: request.method, callerId: state.caller?.id, code: result.code, deliveryId: result.deliveryId };
      if (accepted) logger.debug(fields, 'legacy request accepted');
      else logger.info(fields, `legacy request rejected: ${result.data}`);
    }
    return { status: 200, headers, body: JSON.stringify(result) };
  };
}
