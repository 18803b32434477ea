import crypto from 'node:crypto';
import type { Authenticator, Caller } from '../auth';
import { dingMsgTypes, feishuMsgTypes, weComMsgTypes } from '../channels/channel';
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
import { crossSiteRefusal, isCrossSiteBrowserRequest } from '../http-guards';
import type { Logger } from '../logger';
import { MalformedParameterError } from './form-decoding';
import {
  declaredParams,
  legacyBodyLimitBytes,
  readLegacyParams,
  type DeclaredParams,
  type LegacyRequest,
  type ParamDeclarations,
} from './legacy-params';

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

interface LegacyRoute<P extends ParamDeclarations = ParamDeclarations> {
  channel: ChannelName;
  /** What the route does, in a line (its OpenAPI summary). */
  summary: string;
  /** Its parameters: required ones missing are reported in this order. */
  params: P;
  input(params: DeclaredParams<P>): Record<string, unknown>;
}

/** A route whose `input` can read only the parameters it declares, each as its declared kind. */
const legacyRoute = <const P extends ParamDeclarations>(route: LegacyRoute<P>): LegacyRoute => route;

/** Parameters every route takes besides its own. */
export const commonParams = {
  idempotencyKey: {
    kind: 'text',
    description:
      'Makes repeating the request safe: the same key with the same parameters from the same token answers the ' +
      'first delivery and sends nothing new; with other parameters it is refused ' +
      `(${errorCatalog.IDEMPOTENCY_CONFLICT.restCode}). Wins over the \`Idempotency-Key\` header`,
  },
} as const satisfies ParamDeclarations;

const mentionOnly = '(text and markdown only)';

const nonEmpty = (value: string | undefined) => (value === undefined || value === '' ? undefined : value);

/** DingTalk's own spellings (text, markdown, link, actionCard) or the GraphQL enum's. */
function msgType(value: string | undefined): string | undefined {
  if (!value) return undefined;
  return value.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase();
}

/** The spellings `msgType` documents: the provider's own (actionCard), then the GraphQL enum's (ACTION_CARD). */
const msgTypeSpellings = (types: readonly string[]) => [
  ...types.map((type) => type.toLowerCase().replace(/_([a-z])/g, (_match, letter: string) => letter.toUpperCase())),
  ...types,
];

const msgTypeParam = (types: readonly string[], example: string) =>
  ({ kind: 'text', description: 'The message type; `text` if absent', values: msgTypeSpellings(types), example }) as const;

const requiredText = (description: string, example: string) =>
  ({ kind: 'text', required: true, description, example }) as const;

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
  '/api/third/ding/sendMsg': legacyRoute({
    channel: 'DING',
    summary: 'Send a DingTalk group robot message',
    params: {
      accessToken: requiredText(
        "The robot's `access_token`, from its webhook URL",
        'b5c1f2d3e4a5968778695a4b3c2d1e0ff0e1d2c3b4a5968778695a4b3c2d1e0f',
      ),
      secret: requiredText(
        "The robot's signing secret (`SEC…`); the gateway signs each request with it",
        'SEC7c4f0b8e2d1a6c9f3e5b7a9d1c3e5f7a9b1d3f5e7c9a1b3d5f7e9c1a3b5d7f9e',
      ),
      content: requiredText('The message (markdown for `markdown` and `actionCard`)', 'Disk /var on db-1 is 97% full'),
      msgType: msgTypeParam(dingMsgTypes, 'markdown'),
      title: { kind: 'text', description: 'The title; required for every type but `text`', example: 'Disk full' },
      messageUrl: { kind: 'text', description: 'The http(s) link of a `link` or `actionCard` message; required there' },
      picUrl: { kind: 'text', description: "The http(s) URL of a `link` message's picture" },
      atMobiles: { kind: 'list', description: `Mobile numbers to @mention ${mentionOnly}`, example: ['13800138000'] },
      atUserIds: { kind: 'list', description: `DingTalk user ids to @mention ${mentionOnly}` },
      atAll: { kind: 'flag', description: `@mention everyone in the group ${mentionOnly}`, example: false },
    },
    input: (params) => ({
      accessToken: params.accessToken,
      secret: params.secret,
      content: params.content,
      msgType: msgType(params.msgType),
      title: nonEmpty(params.title),
      messageUrl: nonEmpty(params.messageUrl),
      picUrl: nonEmpty(params.picUrl),
      atMobiles: params.atMobiles,
      atUserIds: params.atUserIds,
      atAll: params.atAll,
    }),
  }),
  '/api/third/email/sendMsg': legacyRoute({
    channel: 'EMAIL',
    summary: 'Send an email',
    params: {
      email: {
        kind: 'list',
        required: true,
        field: 'to',
        description: 'The recipients: addresses without display names',
        example: ['ops@example.com', 'dba@example.com'],
      },
      content: requiredText('The text of the message', 'Backup of db-1 failed at 03:00'),
      cc: { kind: 'list', description: 'Copies to these addresses', example: ['oncall@example.com'] },
      bcc: { kind: 'list', description: 'Blind copies to these addresses' },
      subject: {
        kind: 'text',
        description: 'The subject; when absent or empty, the first non-blank line of `content`, cut to 60 characters',
        example: 'Backup failed',
      },
      html: {
        kind: 'text',
        description: 'An HTML version of the message, sent beside the text',
        example: '<p>Backup of <b>db-1</b> failed at 03:00</p>',
      },
    },
    input: (params) => {
      const content = params.content;
      return {
        to: params.email,
        cc: params.cc,
        bcc: params.bcc,
        subject: nonEmpty(params.subject) ?? defaultSubject(content),
        content,
        html: nonEmpty(params.html),
      };
    },
  }),
  '/api/third/feishu/sendMsg': legacyRoute({
    channel: 'FEISHU',
    summary: 'Send a Feishu (Lark) group bot message',
    params: {
      token: requiredText(
        "The part of the bot's webhook URL after `/open-apis/bot/v2/hook/`",
        '6f1b2c3d-4e5f-4a7b-8c9d-0e1f2a3b4c5d',
      ),
      secret: { kind: 'text', description: "The bot's signing secret, when it signs", example: 'qN3xYv8RkT2mWb6LpZ4sHd' },
      content: requiredText('The message (markdown for `card`)', 'Deploy of api 2.4.1 finished'),
      msgType: msgTypeParam(feishuMsgTypes, 'post'),
      title: { kind: 'text', description: 'The title; required for `post` and `card`', example: 'Deploy finished' },
      atAll: { kind: 'flag', description: '@mention everyone in the group', example: false },
    },
    input: (params) => ({
      token: params.token,
      secret: nonEmpty(params.secret),
      content: params.content,
      msgType: msgType(params.msgType),
      title: nonEmpty(params.title),
      atAll: params.atAll,
    }),
  }),
  '/api/third/sms/sendMsg': legacyRoute({
    channel: 'SMS',
    summary: 'Send an SMS',
    params: {
      mobile: requiredText('The number: E.164 (`+8613800138000`), or 11 digits for mainland China', '13800138000'),
      content: requiredText("The value of the template's parameter `SMS_TEMPLATE_PARAM` (a verification code)", '482913'),
      template: { kind: 'text', description: "The provider's template instead of the configured one", example: 'SMS_000001' },
    },
    input: (params) => ({
      mobile: params.mobile,
      content: params.content,
      template: nonEmpty(params.template),
    }),
  }),
  '/api/third/wecom/sendMsg': legacyRoute({
    channel: 'WECOM',
    summary: 'Send a WeCom group robot message',
    params: {
      key: requiredText(
        'The robot key: the UUID after `key=` in its webhook URL (the whole URL is taken too)',
        '0f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a',
      ),
      content: requiredText('The message; WeCom counts its length in UTF-8 bytes', 'Queue depth over 10000'),
      msgType: msgTypeParam(weComMsgTypes, 'text'),
      mentionedList: { kind: 'list', description: 'WeCom userids to @mention, or `@all` (text only)', example: ['zhangsan'] },
      mentionedMobileList: {
        kind: 'list',
        description: 'Mobile numbers to @mention, or `@all` (text only)',
        example: ['13800138000'],
      },
    },
    input: (params) => ({
      key: params.key,
      content: params.content,
      msgType: msgType(params.msgType),
      mentionedList: params.mentionedList,
      mentionedMobileList: params.mentionedMobileList,
    }),
  }),
  // For scripts: POSTs {"content": "<content>"} to `url`, signed with `secret` (Standard Webhooks).
  '/api/third/webhook/sendMsg': legacyRoute({
    channel: 'WEBHOOK',
    summary: 'POST a signed webhook (Standard Webhooks)',
    params: {
      url: requiredText('Where to POST: an http(s) URL without `user:password@`', 'https://hooks.example.com/notify'),
      secret: requiredText(
        'The signing secret: `whsec_` and the Base64 of a 24- to 64-byte key',
        'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
      ),
      content: { ...requiredText('Posted as the JSON body `{"content": <content>}`', 'nightly build failed'), field: 'body' },
    },
    input: (params) => ({
      url: params.url,
      secret: params.secret,
      body: { content: params.content },
    }),
  }),
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
  const parameter = Object.keys(route.params).find((name) => route.params[name]!.field === field) ?? field;
  const name = field === 'idempotencyKey' && !keyFromParameter ? 'Idempotency-Key' : parameter;
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

export type LegacyRouter = (request: LegacyRequest) => Promise<LegacyReply>;

const routePrefix = /^\/api\/third(\/|$)/;
const allowedMethods = new Set(['GET', 'POST']);

/** True for the paths the legacy routes own (answering "no such route" for the unknown ones). */
export const isLegacyPath = (pathname: string) => routePrefix.test(pathname);

/** Where the routes' OpenAPI description is served (rest/openapi.ts). */
export const legacyOpenApiPath = '/api/third/openapi.json';

/** The original `/api/third/*` routes, for requests of the paths `isLegacyPath` accepts. */
export function createLegacyRoutes(deps: LegacyRouteDeps): LegacyRouter {
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
    const missing = Object.keys(route.params).filter((name) => route.params[name]!.required && !params.has(name));
    if (missing.length > 0) {
      const hint = params.ignoredBodyType
        ? ` (a ${params.ignoredBodyType} body is not read: send the parameters in the query string, as JSON or as a form)`
        : '';
      return answer('INVALID_ARGUMENT', `${describe(missing.map((name) => ({ path: name, message: 'is required' })))}${hint}`);
    }
    const keyParameter = nonEmpty(declaredParams(commonParams, params).idempotencyKey);
    state.keyFromParameter = keyParameter !== undefined;
    const fields = route.input(declaredParams(route.params, params));
    const input = { ...fields, ...(keyParameter !== undefined ? { idempotencyKey: keyParameter } : {}) };
    const options: SendOptions = { idempotencyKey: request.header('idempotency-key') };
    const delivery = await service.send(route.channel, input, caller, options);
    return deliveryAnswer(delivery, now());
  }

  return async (request) => {
    const headers: Record<string, string> = { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' };
    // CSRF: a page of another site may never make the browser call these routes.
    if (isCrossSiteBrowserRequest(request.header('sec-fetch-site'))) {
      return { status: 403, headers, body: JSON.stringify(answer('FORBIDDEN', crossSiteRefusal)) };
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
