import type { IncomingMessage } from 'node:http';
import { GatewayError } from '../errors';
import { decodeForm, MalformedParameterError } from './form-decoding';

/** Bodies past this are refused with PAYLOAD_TOO_LARGE (the email route accepts up to about 1 MB of content). */
export const legacyBodyLimitBytes = 1024 * 1024;

type BodyValue = unknown;

/**
 * The parameters of one legacy request, as the servlet's getParameter saw them: the query string first, then the
 * body; within one source the first occurrence of a name wins.
 */
export class LegacyParams {
  constructor(
    private readonly query: ReadonlyMap<string, string>,
    private readonly body: ReadonlyMap<string, BodyValue>,
    /** Set when a body was sent in a type the gateway does not read (text/plain…): named in "is required" answers. */
    readonly ignoredBodyType?: string,
  ) {}

  private raw(name: string): BodyValue {
    if (this.query.has(name)) return this.query.get(name);
    return this.body.get(name) ?? undefined;
  }

  has(name: string): boolean {
    return this.raw(name) !== undefined;
  }

  /** A single text parameter; JSON numbers and booleans are taken as their text. */
  text(name: string): string | undefined {
    const value = this.raw(name);
    if (value === undefined) return undefined;
    if (typeof value === 'string') return value;
    if (typeof value === 'number' || typeof value === 'boolean') return String(value);
    throw new MalformedParameterError(name, 'must be a string');
  }

  /** A list: items separated by commas or semicolons, or (JSON) an array of such strings. Empty items are dropped. */
  list(name: string): string[] | undefined {
    const value = this.raw(name);
    if (value === undefined) return undefined;
    const items = Array.isArray(value) ? value : [value];
    return items.flatMap((item) => {
      if (typeof item === 'number') return [String(item)];
      if (typeof item !== 'string') throw new MalformedParameterError(name, 'must be a string or a list of strings');
      return item
        .split(/[,;]/)
        .map((part) => part.trim())
        .filter(Boolean);
    });
  }

  /** true/false (also 1/0); other text goes on as is for the service to refuse. Empty counts as absent. */
  flag(name: string): boolean | string | undefined {
    const value = this.raw(name);
    if (value === undefined || value === '') return undefined;
    if (typeof value === 'boolean') return value;
    if (typeof value === 'string') {
      const normalized = value.trim().toLowerCase();
      if (normalized === 'true' || normalized === '1') return true;
      if (normalized === 'false' || normalized === '0') return false;
      return value;
    }
    throw new MalformedParameterError(name, 'must be true or false');
  }
}

/** How a legacy parameter is read: one text, a list (commas, semicolons, or a JSON array), or true/false. */
export type ParamKind = 'text' | 'list' | 'flag';

/** One parameter of a legacy route, declared once: the route reads it by name and kind, the OpenAPI document lists it. */
export interface ParamDeclaration {
  readonly kind: ParamKind;
  readonly required?: boolean;
  readonly description: string;
  /** A value a valid request may send (the document's example). */
  readonly example?: string | boolean | readonly string[];
  /**
   * The service input field it becomes, when named otherwise: that field's validation errors name this parameter, and
   * its limits are the ones the document shows.
   */
  readonly field?: string;
  /** The only values taken, when there are few. */
  readonly values?: readonly string[];
}

export type ParamDeclarations = Readonly<Record<string, ParamDeclaration>>;

interface ValueOfKind {
  text: string | undefined;
  list: string[] | undefined;
  flag: boolean | string | undefined;
}

/** The declared parameters of one request, by name, each read as its kind says. */
export type DeclaredParams<P extends ParamDeclarations> = { readonly [N in keyof P]: ValueOfKind[P[N]['kind']] };

/**
 * Reads a parameter when the route reads it (so the first one it cannot read is the one reported). A name that is not
 * declared throws: a route cannot take a parameter its description does not list.
 */
export function declaredParams<P extends ParamDeclarations>(declarations: P, params: LegacyParams): DeclaredParams<P> {
  return new Proxy({} as DeclaredParams<P>, {
    get(_target, name) {
      if (typeof name !== 'string' || !Object.hasOwn(declarations, name)) {
        throw new Error(`legacy parameter "${String(name)}" is read but not declared`);
      }
      return params[declarations[name]!.kind](name);
    },
  });
}

function firstWins(pairs: Iterable<[string, BodyValue]>): Map<string, BodyValue> {
  const map = new Map<string, BodyValue>();
  for (const [name, value] of pairs) if (!map.has(name)) map.set(name, value);
  return map;
}

export function payloadTooLarge(limit: number): GatewayError {
  return new GatewayError('PAYLOAD_TOO_LARGE', `body: larger than ${limit} bytes`);
}

/**
 * A legacy request as both entries present it to the routes: node:http's IncomingMessage (the listener) and fetch's
 * Request (app.fetch).
 */
export interface LegacyRequest {
  method: string;
  pathname: string;
  /** The query string, without its `?`. */
  query: string;
  header(name: string): string | undefined;
  /** The raw body, rejecting with PAYLOAD_TOO_LARGE past `limit` bytes. */
  body(limit: number): Promise<Buffer>;
}

const noBody = Buffer.alloc(0);

/** Resolves with the body, or rejects with PAYLOAD_TOO_LARGE past `limit` bytes (the rest is drained, not read). */
function readNodeBody(request: IncomingMessage, limit: number): Promise<Buffer> {
  // Without Content-Length or Transfer-Encoding an HTTP/1.1 request has no body: nothing to wait for.
  const declared = request.headers['content-length'];
  if ((declared === undefined || declared === '0') && request.headers['transfer-encoding'] === undefined) return Promise.resolve(noBody);
  const closed = () => new Error('the caller closed the connection before the body ended');
  if (request.destroyed) return Promise.reject(closed());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const settle = (error?: unknown) => {
      if (settled) return;
      settled = true;
      if (error) reject(error);
      else resolve(Buffer.concat(chunks));
    };
    // Keeps flowing past the limit so that the caller can finish sending and read the answer.
    request.on('data', (chunk: Buffer) => {
      if (settled) return;
      size += chunk.length;
      if (size > limit) {
        chunks.length = 0;
        settle(payloadTooLarge(limit));
      } else {
        chunks.push(chunk);
      }
    });
    request.once('end', () => settle());
    request.once('error', (error) => settle(error));
    request.once('close', () => settle(closed()));
  });
}

async function readWebBody(request: Request, limit: number): Promise<Buffer> {
  if (!request.body) return noBody;
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return Buffer.concat(chunks);
    size += value.byteLength;
    if (size > limit) {
      void (async () => {
        while (!(await reader.read()).done);
      })().catch(() => {});
      throw payloadTooLarge(limit);
    }
    chunks.push(value);
  }
}

/** The node:http request (the listener's entry), with the path and query string of its target. */
export function nodeLegacyRequest(request: IncomingMessage, pathname: string, query: string): LegacyRequest {
  return {
    method: request.method ?? 'GET',
    pathname,
    query,
    header(name) {
      const value = request.headers[name];
      return Array.isArray(value) ? value.join(', ') : value;
    },
    body: (limit) => readNodeBody(request, limit),
  };
}

/** fetch's Request (app.fetch's entry). Its GET requests have no body. */
export function fetchLegacyRequest(request: Request, url: URL): LegacyRequest {
  return {
    method: request.method,
    pathname: url.pathname,
    query: url.search.slice(1),
    header: (name) => request.headers.get(name) ?? undefined,
    body: (limit) => readWebBody(request, limit),
  };
}

async function readBody(request: LegacyRequest, limit: number): Promise<Buffer> {
  const declared = Number(request.header('content-length'));
  if (Number.isFinite(declared) && declared > limit) throw payloadTooLarge(limit);
  return request.body(limit);
}

interface MediaType {
  type: string;
  charset?: string;
}

function mediaType(header: string | undefined): MediaType | undefined {
  if (!header) return undefined;
  const [type, ...parameters] = header.split(';');
  const charset = parameters
    .map((parameter) => parameter.trim().match(/^charset\s*=\s*"?([^";\s]+)"?$/i)?.[1])
    .find(Boolean);
  return { type: type!.trim().toLowerCase(), charset };
}

function decoderFor(charset: string | undefined): TextDecoder {
  try {
    return new TextDecoder(charset ?? 'utf-8', { fatal: true });
  } catch {
    throw new MalformedParameterError('Content-Type', `unsupported charset "${charset}"`);
  }
}

function parseJsonBody(body: Buffer, charset: string | undefined): Map<string, BodyValue> {
  let text: string;
  try {
    text = decoderFor(charset).decode(body);
  } catch (error) {
    if (error instanceof MalformedParameterError) throw error;
    throw new MalformedParameterError('body', `is not valid ${(charset ?? 'utf-8').toUpperCase()}`);
  }
  if (text.trim() === '') return new Map();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    // Only the position: the parser's message quotes the body, which may hold robot secrets.
    const position = /position (\d+)/.exec((error as Error).message)?.[1];
    throw new MalformedParameterError('body', `is not valid JSON${position ? ` (at position ${position})` : ''}`);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new MalformedParameterError('body', 'must be a JSON object');
  }
  return new Map(Object.entries(parsed).filter(([, value]) => value !== null));
}

async function parseMultipartBody(body: Buffer, contentType: string): Promise<Map<string, BodyValue>> {
  let form: FormData;
  try {
    form = await new Response(new Uint8Array(body), { headers: { 'content-type': contentType } }).formData();
  } catch {
    throw new MalformedParameterError('body', 'is not valid multipart/form-data');
  }
  const pairs: [string, BodyValue][] = [];
  form.forEach((value, name) => {
    if (typeof value === 'string') pairs.push([name, value]);
  });
  return firstWins(pairs);
}

function isJson(type: string): boolean {
  return type === 'application/json' || (type.startsWith('application/') && type.endsWith('+json'));
}

/**
 * Reads every parameter of a legacy request. Query strings are always UTF-8 (as the servlet container decoded them);
 * form and JSON bodies honour the charset of their Content-Type, UTF-8 by default.
 */
export async function readLegacyParams(request: LegacyRequest, limit = legacyBodyLimitBytes): Promise<LegacyParams> {
  const query = firstWins(decodeForm(request.query, 'query string')) as Map<string, string>;
  const body = await readBody(request, limit);
  if (body.length === 0) return new LegacyParams(query, new Map());
  const header = request.header('content-type');
  const type = mediaType(header);
  if (type && isJson(type.type)) return new LegacyParams(query, parseJsonBody(body, type.charset));
  if (type?.type === 'application/x-www-form-urlencoded') {
    decoderFor(type.charset);
    return new LegacyParams(query, firstWins(decodeForm(body, 'form body', type.charset ?? 'utf-8')));
  }
  if (type?.type === 'multipart/form-data') return new LegacyParams(query, await parseMultipartBody(body, header!));
  // The servlet ignored bodies it could not parse; so does the gateway, and says so if a parameter is then missing.
  return new LegacyParams(query, new Map(), type?.type ?? 'untyped');
}
