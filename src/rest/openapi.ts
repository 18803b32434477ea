import { z } from 'zod';
import { version } from '../../package.json';
import { idempotencyKey, inputSchemaByChannel } from '../delivery/inputs';
import { errorCatalog, type ErrorCode } from '../errors';
import { legacyCodesMarkdown } from './legacy-codes';
import type { ParamDeclaration, ParamDeclarations } from './legacy-params';
import { commonParams, legacyOpenApiPath, legacyRoutes, type LegacyReply, type LegacyRouter } from './legacy-routes';

type JsonSchema = Record<string, unknown>;

/** Where a parameter travels: the query string, a JSON body, or a form body (urlencoded or multipart: all text). */
type Place = 'query' | 'json' | 'form';

const stringLimits = ['minLength', 'maxLength', 'pattern'];
const listLimits = ['minItems', 'maxItems'];

function pick(schema: JsonSchema | undefined, keywords: string[]): JsonSchema {
  const present = keywords.filter((keyword) => schema?.[keyword] !== undefined);
  return Object.fromEntries(present.map((keyword) => [keyword, schema![keyword]]));
}

/** An optional field is `anyOf: [its schema, null]`: its schema. */
const nonNull = (schema: JsonSchema | undefined): JsonSchema | undefined =>
  (schema?.anyOf as JsonSchema[] | undefined)?.find((branch) => branch.type !== 'null') ?? schema;

type ObjectSchema = JsonSchema & { properties?: Record<string, JsonSchema> };
/** A zod schema as JSON Schema: the limits the document shows are the ones the service enforces. */
const jsonSchemaOf = (schema: z.ZodType) => z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as ObjectSchema;

function valueSchema(param: ParamDeclaration, field: JsonSchema | undefined, place: Place): JsonSchema {
  const text = (schema: JsonSchema | undefined) => ({ type: 'string', ...pick(schema, stringLimits) });
  switch (param.kind) {
    case 'text':
      return { ...text(field), ...(param.values ? { enum: [...param.values] } : {}) };
    case 'flag':
      return { type: 'boolean' };
    case 'list':
      if (place === 'form') return { type: 'string' };
      return { type: 'array', items: text(nonNull(field?.items as JsonSchema)), ...pick(field, listLimits) };
  }
}

function description(param: ParamDeclaration, field: JsonSchema | undefined, place: Place): string {
  if (param.kind === 'flag' && place !== 'json') return `${param.description} (\`true\` or \`false\`; \`1\` or \`0\`)`;
  if (param.kind !== 'list') return param.description;
  const separated = 'values separated by `,` or `;`';
  const written = place === 'json' ? `an array, or one string of ${separated}` : separated;
  return `${param.description} (${written}${field?.maxItems === undefined ? '' : `; at most ${field.maxItems}`})`;
}

/** How a list is written in a form body: one value, separated by commas (a repeated name would give its first only). */
const formValue = (value: ParamDeclaration['example']) => (Array.isArray(value) ? value.join(',') : value);

interface RouteParam {
  name: string;
  param: ParamDeclaration;
  /** The service field's schema, for its limits. */
  field: JsonSchema | undefined;
}

function routeParams(params: ParamDeclarations, fields: Record<string, JsonSchema>): RouteParam[] {
  return Object.entries(params).map(([name, param]) => ({ name, param, field: nonNull(fields[param.field ?? name]) }));
}

function queryParameter({ name, param, field }: RouteParam): JsonSchema {
  return {
    name,
    in: 'query',
    ...(param.required ? { required: true } : {}),
    description: description(param, field, 'query'),
    schema: valueSchema(param, field, 'query'),
    ...(param.kind === 'list' ? { style: 'form', explode: false } : {}),
    ...(param.example !== undefined ? { example: param.example } : {}),
  };
}

function bodySchema(params: RouteParam[], place: 'json' | 'form'): JsonSchema {
  const properties = params.map(({ name, param, field }) => [
    name,
    { ...valueSchema(param, field, place), description: description(param, field, place) },
  ]);
  const required = params.filter(({ param }) => param.required).map(({ name }) => name);
  return { type: 'object', properties: Object.fromEntries(properties), required };
}

function bodyExample(params: RouteParam[], place: 'json' | 'form'): JsonSchema {
  const examples = params.filter(({ param }) => param.example !== undefined);
  return Object.fromEntries(
    examples.map(({ name, param }) => [name, place === 'form' ? formValue(param.example) : param.example]),
  );
}

const ref = (kind: string, name: string) => ({ $ref: `#/components/${kind}/${name}` });
const capitalised = (word: string) => word[0]!.toUpperCase() + word.slice(1);

const restCode = (code: ErrorCode) => errorCatalog[code].restCode;

const rules = `The routes of the original notification service, kept for its callers: change the host and nothing
else. They call the same delivery service as the GraphQL API (\`/graphql\`), and their deliveries show there like any
other.

- **Methods:** GET with the parameters in the query string; POST with them in the query string or a body: a JSON
  object (numbers and booleans are taken as text), \`application/x-www-form-urlencoded\` (honouring its \`charset\`) or
  \`multipart/form-data\`. A body of another type is ignored. Other methods answer code ${restCode('NOT_FOUND')}.
- **Which value wins:** the query string, then the body; within one source, the first occurrence of a name.
- **Query strings** are UTF-8 with form rules (\`+\` is a space, \`%XX\` a byte). A \`%\` not followed by two hex
  digits, or bytes that are not UTF-8, answer ${restCode('INVALID_ARGUMENT')} naming the parameter: nothing is silently replaced.
- **Validation:** the routes check that each required parameter is present; the rest is the GraphQL API's validation,
  reported in \`data\` under these parameter names (\`email (item 2): must be an email address\`).
- **Answers:** HTTP 200 with \`{"code", "data", "deliveryId"}\` for every outcome, refusals included: code
  ${restCode('OK')} means accepted, any other code means nothing will be sent. Paths under \`/api/third/\` that are no
  route answer ${restCode('NOT_FOUND')}, bodies over \`BODY_LIMIT_BYTES\` (1 MiB by default) ${restCode('PAYLOAD_TOO_LARGE')}.`;

/** The OpenAPI 3.1 description of the legacy routes, written from their parameter declarations and the error catalog. */
export function legacyOpenApiDocument(): JsonSchema {
  const codes = Object.keys(errorCatalog) as ErrorCode[];
  const keyField = jsonSchemaOf(idempotencyKey);
  const paths: Record<string, JsonSchema> = {};
  const schemas: Record<string, JsonSchema> = {
    LegacyAnswer: {
      type: 'object',
      required: ['code', 'data'],
      additionalProperties: false,
      properties: {
        code: {
          type: 'integer',
          enum: codes.map(restCode),
          'x-enum-varnames': codes,
          description: `What happened; the name is the GraphQL error \`code\`.\n\n${legacyCodesMarkdown()}`,
        },
        data: { type: 'string', description: '`sent`, `queued…`, or why the request was refused, naming each parameter' },
        deliveryId: { type: 'string', pattern: '^dlv_', description: 'Set whenever a delivery was recorded: its GraphQL id' },
      },
    },
  };

  for (const [path, route] of Object.entries(legacyRoutes)) {
    const name = path.split('/')[3]!;
    const fields = { ...jsonSchemaOf(inputSchemaByChannel[route.channel]).properties, idempotencyKey: keyField };
    const params = routeParams({ ...route.params, ...commonParams }, fields);
    const bodyName = `${capitalised(name)}Params`;
    const formName = `${capitalised(name)}FormParams`;
    schemas[bodyName] = bodySchema(params, 'json');
    schemas[formName] = bodySchema(params, 'form');
    const form = { schema: ref('schemas', formName), example: bodyExample(params, 'form') };
    const operation = (method: string, details: JsonSchema) => ({
      operationId: `send${capitalised(name)}${method}`,
      summary: route.summary,
      ...details,
      responses: {
        200: ref('responses', 'LegacyAnswer'),
        403: ref('responses', 'CrossSiteRefused'),
        431: ref('responses', 'RequestTooLarge'),
      },
    });
    paths[path] = {
      get: operation('ByQuery', {
        description: 'The parameters in the query string.',
        parameters: [...params.map(queryParameter), ref('parameters', 'IdempotencyKey')],
      }),
      post: operation('', {
        description: 'The parameters in a body; any of them may be in the query string instead, which wins.',
        parameters: [ref('parameters', 'IdempotencyKey')],
        requestBody: {
          required: true,
          content: {
            'application/json': { schema: ref('schemas', bodyName), example: bodyExample(params, 'json') },
            'application/x-www-form-urlencoded': form,
            'multipart/form-data': form,
          },
        },
      }),
    };
  }

  const answer = { schema: ref('schemas', 'LegacyAnswer') };
  return {
    openapi: '3.1.0',
    info: { title: 'notify-gateway legacy REST API', version, description: rules },
    servers: [{ url: '/' }],
    security: [{ opsToken: [] }],
    paths,
    components: {
      securitySchemes: {
        opsToken: {
          type: 'apiKey',
          in: 'header',
          name: 'OPS-Token',
          description: 'An API token of the gateway that may send on the channel',
        },
      },
      parameters: {
        IdempotencyKey: {
          name: 'Idempotency-Key',
          in: 'header',
          description: 'As the `idempotencyKey` parameter, which wins over it',
          schema: { type: 'string', ...pick(keyField, stringLimits) },
        },
      },
      responses: {
        LegacyAnswer: {
          description: 'Every answer but a cross-site refusal, whatever `code` says',
          headers: {
            'Retry-After': {
              description: `With code ${restCode('RATE_LIMITED')} (\`RATE_LIMITED\`): seconds to wait`,
              schema: { type: 'integer', minimum: 1 },
            },
          },
          content: { 'application/json': answer },
        },
        CrossSiteRefused: {
          description:
            'A browser request for a page of another site (`Sec-Fetch-Site: cross-site` or `same-site`), refused with ' +
            `code ${restCode('FORBIDDEN')} before anything else`,
          content: { 'application/json': answer },
        },
        RequestTooLarge: {
          description: "Node's HTTP server refuses a request line and headers over 16 KiB: send long content in a body",
        },
      },
      schemas,
    },
  };
}

/**
 * The legacy routes, and their description at `legacyOpenApiPath`: for anyone, as it holds no data (no token, and no
 * cross-site refusal, as reading it changes nothing).
 */
export function withOpenApiDocument(routes: LegacyRouter): LegacyRouter {
  let document: string | undefined;
  const headers = () => ({ 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-cache' });
  return async (request): Promise<LegacyReply> => {
    if (request.pathname !== legacyOpenApiPath) return routes(request);
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      const data = `no route for ${request.method.slice(0, 20)} ${legacyOpenApiPath}: use GET`;
      return { status: 200, headers: headers(), body: JSON.stringify({ code: restCode('NOT_FOUND'), data }) };
    }
    document ??= JSON.stringify(legacyOpenApiDocument());
    return { status: 200, headers: headers(), body: document };
  };
}
