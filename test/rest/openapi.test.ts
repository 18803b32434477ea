import fs from 'node:fs';
import { Validator } from '@seriousme/openapi-schema-validator';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inputSchemaByChannel } from '../../src/delivery/inputs';
import { errorCatalog } from '../../src/errors';
import { declaredParams, LegacyParams } from '../../src/rest/legacy-params';
import { legacyRoutes } from '../../src/rest/legacy-routes';
import { legacyOpenApiDocument } from '../../src/rest/openapi';
import { startDingTalkEmulator, type DingTalkEmulator } from '../peers/ding-talk-emulator';
import { startFeishuEmulator, type FeishuEmulator } from '../peers/feishu-emulator';
import { startWebhookReceiver, type WebhookReceiver } from '../peers/webhook-receiver';
import { startWeComEmulator, type WeComEmulator } from '../peers/wecom-emulator';
import { startGateway, type TestGateway } from '../support/gateway';
import { legacyRequest, type LegacyResponse } from './legacy-client';

const committed = new URL('../../openapi.json', import.meta.url);
const generated = legacyOpenApiDocument();

type Schema = Record<string, any>;
interface Parameter {
  name: string;
  in: string;
  required?: boolean;
  example?: unknown;
  schema: Schema;
}
interface Operation {
  parameters: Parameter[];
  requestBody?: { content: Record<string, { schema: Schema; example: Record<string, unknown> }> };
  responses: Record<string, { headers?: Record<string, { schema: Schema }>; content?: Record<string, { schema: Schema }> }>;
}

/** The document as a client reads it: validated, then with its $refs resolved. */
async function readDocument(document: unknown) {
  const validator = new Validator();
  const result = await validator.validate(structuredClone(document) as Parameters<Validator['validate']>[0]);
  return { result, version: validator.version, resolved: validator.resolveRefs() as Schema };
}

const ajv = new Ajv2020({ strict: true, allErrors: true });
addFormats(ajv);
ajv.addKeyword('x-enum-varnames');

function expectMatches(schema: Schema, value: unknown, what: string) {
  const validate = ajv.compile(schema);
  expect(validate(value), `${what}: ${ajv.errorsText(validate.errors)} in ${JSON.stringify(value)}`).toBe(true);
}

describe('openapi.json', () => {
  it('is the document the generator writes (run `npm run schema:print` and commit openapi.json when this fails)', () => {
    const onDisk = fs.existsSync(committed) ? fs.readFileSync(committed, 'utf8') : '';
    const printed = `${JSON.stringify(generated, null, 2)}\n`;
    expect(onDisk, 'openapi.json is stale: run `npm run schema:print` and commit it').toBe(printed);
  });

  it('is a valid OpenAPI 3.1 document', async () => {
    const { result, version } = await readDocument(generated);
    expect(result.errors).toBeUndefined();
    expect(result.valid).toBe(true);
    expect(version).toBe('3.1');
    expect(generated.openapi).toMatch(/^3\.1\./);
    expect(generated.servers).toEqual([{ url: '/' }]);
  });

  it('lists exactly the routes the router serves, each for GET and POST, behind the OPS-Token header', async () => {
    const { resolved } = await readDocument(generated);
    expect(Object.keys(resolved.paths).sort()).toEqual(Object.keys(legacyRoutes).sort());
    for (const operations of Object.values<Schema>(resolved.paths)) {
      expect(Object.keys(operations).sort()).toEqual(['get', 'post']);
    }
    expect(resolved.security).toEqual([{ opsToken: [] }]);
    expect(resolved.components.securitySchemes.opsToken).toMatchObject({ type: 'apiKey', in: 'header', name: 'OPS-Token' });
  });

  it('has the code table of the one error catalog', async () => {
    const { resolved } = await readDocument(generated);
    const code = resolved.components.schemas.LegacyAnswer.properties.code;
    expect(code.enum).toEqual(Object.values(errorCatalog).map((entry) => entry.restCode));
    expect(code['x-enum-varnames']).toEqual(Object.keys(errorCatalog));
    for (const [name, entry] of Object.entries(errorCatalog)) {
      expect(code.description).toContain(`| ${entry.restCode} | \`${name}\` |`);
    }
  });

  it('has examples that match their own schemas, and one for every required parameter', async () => {
    const { resolved } = await readDocument(generated);
    for (const [path, operations] of Object.entries<Record<string, Operation>>(resolved.paths)) {
      for (const { name, required, schema, example } of operations.get!.parameters) {
        if (required) expect(example, `${path} ${name}`).toBeDefined();
        if (example !== undefined) expectMatches(schema, example, `${path} ${name}`);
      }
      for (const [type, media] of Object.entries(operations.post!.requestBody!.content)) {
        expectMatches(media.schema, media.example, `${path} ${type}`);
      }
    }
  });

  it('takes the limits from the service input each parameter feeds, of the same kind', () => {
    const typeOfKind = { text: 'string', list: 'array', flag: 'boolean' };
    for (const [path, route] of Object.entries(legacyRoutes)) {
      const input = z.toJSONSchema(inputSchemaByChannel[route.channel], { io: 'input', unrepresentable: 'any' }) as Schema;
      const fields = input.properties;
      for (const [name, param] of Object.entries(route.params)) {
        const field = fields[param.field ?? name];
        expect(field, `${path} ${name} feeds no field of the ${route.channel} input`).toBeDefined();
        const types = [field.type, ...(field.anyOf ?? []).map((branch: Schema) => branch.type)].flat().filter(Boolean);
        // A field of any JSON (the webhook body) takes any kind.
        if (types.length > 0) expect(types, `${path} ${name}`).toContain(typeOfKind[param.kind]);
      }
    }
  });

  it('a route reads every parameter it declares (the document lists none it ignores)', () => {
    for (const [path, route] of Object.entries(legacyRoutes)) {
      const read = new Set<string>();
      const recording = new Proxy({}, { get: (_target, name) => void read.add(String(name)) });
      route.input(recording as Parameters<typeof route.input>[0]);
      expect([...read].sort(), path).toEqual(Object.keys(route.params).sort());
    }
  });

  it('a route reads only declared parameters', () => {
    const request = new LegacyParams(new Map([['extra', 'y']]), new Map());
    const params = declaredParams({ content: { kind: 'text', description: 'x' } }, request);
    expect(params.content).toBeUndefined();
    const undeclared = () => (params as unknown as Record<string, unknown>).extra;
    expect(undeclared).toThrow('legacy parameter "extra" is read but not declared');
  });
});

/** The way the document says a value travels: lists joined by commas (`style: form, explode: false`), the rest as text. */
const text = (value: unknown) => (Array.isArray(value) ? value.join(',') : String(value));

interface Call {
  label: string;
  path: string;
  method: 'GET' | 'POST';
  /** The parameters and their values, from the document's examples. */
  values: Record<string, unknown>;
  required: string[];
  /** Encodes `values` as this request sends them. */
  send(base: string, values: Record<string, unknown>, token?: null): Promise<LegacyResponse>;
  responses: Operation['responses'];
}

/** Every request the document describes: GET with the query string, POST with each body type. */
function calls(resolved: Schema, webhookUrl: string): Call[] {
  const result: Call[] = [];
  // The one value the document cannot know: where this test's webhook receiver listens.
  const withReceiver = (path: string, values: Record<string, unknown>) =>
    path === '/api/third/webhook/sendMsg' ? { ...values, url: webhookUrl } : values;
  for (const [path, operations] of Object.entries<Record<string, Operation>>(resolved.paths)) {
    const { get, post } = operations;
    const query = get!.parameters.filter((parameter) => parameter.in === 'query');
    const examples = query.filter(({ example }) => example !== undefined).map(({ name, example }) => [name, example]);
    result.push({
      label: `GET ${path}`,
      path,
      method: 'GET',
      values: withReceiver(path, Object.fromEntries(examples)),
      required: query.filter((parameter) => parameter.required).map((parameter) => parameter.name),
      send: (base, values, token) => {
        const encoded = new URLSearchParams(Object.entries(values).map(([name, value]) => [name, text(value)]));
        return legacyRequest(base, `${path}?${encoded}`, { token });
      },
      responses: get!.responses,
    });
    for (const [type, media] of Object.entries(post!.requestBody!.content)) {
      const encode = async (values: Record<string, unknown>) => {
        if (type === 'application/json') return { body: JSON.stringify(values), contentType: type };
        const entries = Object.entries(values).map(([name, value]) => [name, text(value)]);
        const form = type === 'multipart/form-data' ? new FormData() : new URLSearchParams();
        for (const [name, value] of entries) form.append(name!, value!);
        const request = new Request('http://encoder.invalid', { method: 'POST', body: form });
        return { body: Buffer.from(await request.arrayBuffer()), contentType: request.headers.get('content-type')! };
      };
      result.push({
        label: `POST ${path} ${type}`,
        path,
        method: 'POST',
        values: withReceiver(path, media.example),
        required: media.schema.required,
        send: async (base, values, token) => {
          const { body, contentType } = await encode(values);
          return legacyRequest(base, path, { method: 'POST', token, headers: { 'content-type': contentType }, body });
        },
        responses: post!.responses,
      });
    }
  }
  return result;
}

describe('each route the document lists answers as it describes', async () => {
  const { resolved } = await readDocument(generated);
  const codeSchema = resolved.components.schemas.LegacyAnswer.properties.code;
  const codeNamed = (name: string): number => codeSchema.enum[codeSchema['x-enum-varnames'].indexOf(name)];
  const example = (path: string, name: string) =>
    (resolved.paths[path].get as Operation).parameters.find((parameter) => parameter.name === name)!.example as string;

  let gateway: TestGateway;
  let base: string;
  let ding: DingTalkEmulator;
  let feishu: FeishuEmulator;
  let wecom: WeComEmulator;
  let receiver: WebhookReceiver;

  beforeAll(async () => {
    // The providers know the robots, bots and secrets of the document's examples.
    const dingToken = example('/api/third/ding/sendMsg', 'accessToken');
    ding = await startDingTalkEmulator({ robots: { [dingToken]: example('/api/third/ding/sendMsg', 'secret') } });
    const feishuToken = example('/api/third/feishu/sendMsg', 'token');
    feishu = await startFeishuEmulator({ bots: { [feishuToken]: example('/api/third/feishu/sendMsg', 'secret') } });
    wecom = await startWeComEmulator({ keys: [example('/api/third/wecom/sendMsg', 'key')] });
    receiver = await startWebhookReceiver({ secret: example('/api/third/webhook/sendMsg', 'secret') });
    gateway = await startGateway({
      env: {
        DINGTALK_BASE_URL: ding.url,
        FEISHU_BASE_URL: feishu.url,
        WECOM_BASE_URL: wecom.url,
        WEBHOOK_ALLOWED_HOSTS: '127.0.0.1',
        // The same number is sent to for every request below.
        SMS_LIMIT_PER_MINUTE: '0',
        SMS_LIMIT_PER_HOUR: '0',
        SMS_LIMIT_PER_DAY: '0',
      },
    });
    base = await gateway.listen();
  });
  afterAll(async () => {
    await gateway?.close();
    await Promise.all([ding?.close(), feishu?.close(), wecom?.close(), receiver?.close()]);
  });

  function expectDescribed(call: Call, response: LegacyResponse, code: string) {
    const described = call.responses[String(response.status)];
    expect(described, `${call.label}: HTTP ${response.status} is not described`).toBeDefined();
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    expectMatches(described!.content!['application/json']!.schema, response.body, call.label);
    expect(response.body.code, `${call.label}: ${response.body.data}`).toBe(codeNamed(code));
  }

  it('a valid request built from the examples is accepted (code OK, a delivery id)', async () => {
    const all = calls(resolved, `${receiver.url}/hooks/openapi`);
    expect(all).toHaveLength(Object.keys(legacyRoutes).length * 4);
    for (const call of all) {
      const response = await call.send(base, call.values);
      expect(response.status, call.label).toBe(200);
      expectDescribed(call, response, 'OK');
      expect(response.body.deliveryId).toMatch(/^dlv_/);
    }
    const received = [ding.messages, feishu.messages, wecom.messages, receiver.verified].map((messages) => messages.length);
    expect(received).toEqual([4, 4, 4, 4]);
  });

  it('a request without a required parameter answers INVALID_ARGUMENT naming it', async () => {
    for (const call of calls(resolved, `${receiver.url}/hooks/openapi`)) {
      expect(call.required.length, call.label).toBeGreaterThan(0);
      for (const name of call.required) {
        const { [name]: _left, ...values } = call.values;
        const response = await call.send(base, values);
        expectDescribed(call, response, 'INVALID_ARGUMENT');
        expect(response.body.data).toContain(`${name}: is required`);
      }
    }
  });

  it('a request without OPS-Token answers UNAUTHENTICATED', async () => {
    for (const call of calls(resolved, `${receiver.url}/hooks/openapi`)) {
      expectDescribed(call, await call.send(base, call.values, null), 'UNAUTHENTICATED');
    }
  });

  it('a cross-site browser request answers the documented 403 with FORBIDDEN', async () => {
    const [call] = calls(resolved, '');
    const response = await legacyRequest(base, call!.path, { headers: { 'sec-fetch-site': 'cross-site' } });
    expect(response.status).toBe(403);
    expectDescribed(call!, response, 'FORBIDDEN');
  });

  it('GET /api/third/openapi.json serves the document without a token, over node:http and app.fetch', async () => {
    for (const headers of [{}, { 'sec-fetch-site': 'cross-site' }] as Record<string, string>[]) {
      const response = await fetch(`${base}/api/third/openapi.json`, { headers });
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toMatch(/^application\/json/);
      expect(await response.json()).toEqual(generated);
    }
    const inProcess = await gateway.fetch('/api/third/openapi.json');
    expect(inProcess.status).toBe(200);
    expect(inProcess.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await inProcess.json()).toEqual(generated);
    expect(gateway.logs.some((line) => line.msg === 'request' && line.route === '/api/third/openapi.json')).toBe(true);

    const posted = await legacyRequest(base, '/api/third/openapi.json', { method: 'POST', token: null });
    const refusal = { code: codeNamed('NOT_FOUND'), data: 'no route for POST /api/third/openapi.json: use GET' };
    expect(posted.body).toEqual(refusal);
  });
});

describe('a rate-limited answer', async () => {
  const { resolved } = await readDocument(generated);
  let gateway: TestGateway;
  let base: string;

  beforeAll(async () => {
    gateway = await startGateway({ env: { SMS_LIMIT_PER_MINUTE: '1' } });
    base = await gateway.listen();
  });
  afterAll(() => gateway?.close());

  it('carries the documented Retry-After header', async () => {
    const call = calls(resolved, '').find((candidate) => candidate.label === 'GET /api/third/sms/sendMsg')!;
    expect((await call.send(base, call.values)).body.code).toBe(errorCatalog.OK.restCode);
    const limited = await call.send(base, call.values);
    expect(limited.body.code).toBe(errorCatalog.RATE_LIMITED.restCode);
    const header = call.responses['200']!.headers!['Retry-After']!;
    expectMatches(header.schema, Number(limited.headers['retry-after']), 'Retry-After');
    expectMatches(call.responses['200']!.content!['application/json']!.schema, limited.body, 'rate-limited answer');
  });
});
