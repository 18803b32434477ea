import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorCatalog } from '../../src/errors';
import { startGateway, testToken, type TestGateway } from '../support/gateway';

/**
 * Random and hostile input at every mutation and every legacy route. Whatever comes in: no HTTP 500, no crash, a
 * Delivery or a documented error, and rows only for what was accepted (nothing half-written).
 */

const hostile = fc.constantFrom(
  '',
  ' ',
  '\u0000',
  'a\u0000b',
  '\u0007\u001b[31m',
  '\r\nBcc: victim@example.com',
  'ops@example.com\r\nBcc: victim@example.com',
  'ops@example.com\nSubject: injected',
  '"ops"@example.com',
  'Ops <ops@example.com>',
  '__proto__',
  'constructor',
  "'; drop table deliveries; --",
  '${jndi:ldap://127.0.0.1/x}',
  '<script>alert(1)</script>',
  '%00',
  '%zz',
  '../../etc/passwd',
  '\u202egnp.exe',
  '\ud800',
  '\ufeff',
  '😀'.repeat(50),
  'x'.repeat(300),
  'y'.repeat(21_000),
  '13800138000',
  '+8613800138000',
  '010-12345678',
  '1380013800\n0',
  'ops@example.com',
  'https://example.com/x',
  'javascript:alert(1)',
  'TEXT',
  'MARKDOWN',
  'LINK',
  'SECabc',
);
const text = fc.oneof(hostile, fc.string({ unit: 'binary', maxLength: 40 }), fc.string({ unit: 'grapheme', maxLength: 20 }));
const json: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: text },
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(text, { maxLength: 4 }),
  fc.dictionary(text, text, { maxKeys: 3 }),
);
const hex = (length: number) => fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: length, maxLength: length });
const mobile = fc.constantFrom('13800138000', '+8613912345678', '15012345678', '+16502530000', '12345');
const email = fc.constantFrom('ops@example.com', 'dev+tag@example.org', 'a@b');

/**
 * A valid input with up to three of its fields replaced by anything (or dropped): a third of the runs are valid
 * and get recorded, the rest probe one rule at a time and in combination.
 */
function spoiled(valid: Record<string, fc.Arbitrary<unknown>>) {
  const names = Object.keys(valid);
  return fc
    .tuple(fc.record(valid), fc.dictionary(fc.constantFrom(...names), fc.option(json, { nil: undefined }), { maxKeys: 3 }))
    .map(([input, changes]) => ({ ...input, ...changes, wait: false }));
}

const inputs = {
  sendDing: spoiled({
    accessToken: hex(64),
    secret: hex(64).map((value) => `SEC${value}`),
    content: fc.constantFrom('disk full', '**markdown** @13800138000'),
    msgType: fc.constantFrom('TEXT', 'MARKDOWN'),
    title: fc.constant('alert'),
    messageUrl: fc.constant('https://example.com/a'),
    atMobiles: fc.array(fc.constant('13800138000'), { maxLength: 2 }),
    atAll: fc.boolean(),
    idempotencyKey: fc.uuid(),
  }),
  sendEmail: spoiled({
    to: fc.array(email.filter((value) => value !== 'a@b'), { minLength: 1, maxLength: 3 }),
    cc: fc.array(fc.constant('cc@example.com'), { maxLength: 2 }),
    subject: fc.constant('report'),
    content: fc.constant('body'),
    html: fc.constant('<p>body</p>'),
    idempotencyKey: fc.uuid(),
  }),
  sendSms: spoiled({
    mobile,
    content: fc.constantFrom('482913', '1234'),
    template: fc.constant('SMS_154950909'),
    params: fc.dictionary(fc.constantFrom('code', 'product', '1'), fc.oneof(fc.string({ maxLength: 8 }), fc.integer()), { maxKeys: 2 }),
    idempotencyKey: fc.uuid(),
  }),
};
const inputTypes = { sendDing: 'SendDingInput', sendEmail: 'SendEmailInput', sendSms: 'SendSmsInput' };
const sendErrors = new Set(['ValidationError', 'RateLimitedError', 'IdempotencyConflictError', 'ForbiddenError']);
const manageErrors = new Set(['NotFoundError', 'InvalidStateError', 'ForbiddenError']);
const codes = new Set(Object.keys(errorCatalog));
const restCodes = new Set(Object.values(errorCatalog).map((entry) => entry.restCode));

describe('hostile input changes nothing it should not', () => {
  let gateway: TestGateway;
  const accepted = new Set<string>();

  beforeAll(async () => {
    gateway = await startGateway({ noDispatch: true, env: { SEND_WAIT_MS: '0' } });
  });
  afterAll(() => gateway.close());

  /** Rows exist for exactly the accepted sends, and no attempt belongs to no delivery. */
  function expectNothingHalfWritten() {
    const db = gateway.store.db.$client;
    const rows = (db.prepare('select id from deliveries').all() as { id: string }[]).map((row) => row.id).sort();
    expect(rows).toEqual([...accepted].sort());
    const orphans = db.prepare('select count(*) as n from delivery_attempts where delivery_id not in (select id from deliveries)').get() as {
      n: number;
    };
    expect(orphans.n).toBe(0);
  }

  /** A GraphQL answer that is not a success must be a documented error, never a masked internal one. */
  function expectDocumentedErrors(status: number, body: { errors?: { message: string; extensions?: Record<string, unknown> }[] }) {
    expect([200, 400]).toContain(status);
    for (const error of body.errors ?? []) {
      expect(error.message).not.toBe('Unexpected error.');
      expect(error.extensions?.code).not.toBe('INTERNAL_SERVER_ERROR');
    }
  }

  for (const mutation of ['sendDing', 'sendEmail', 'sendSms'] as const) {
    it(`${mutation}: a Delivery or a documented error, and a row only when accepted`, async () => {
      const query = `mutation($input: ${inputTypes[mutation]}!) { ${mutation}(input: $input) {
        __typename ... on Delivery { id status } ... on Error { code message } } }`;
      const before = accepted.size;
      await fc.assert(
        fc.asyncProperty(fc.oneof({ weight: 9, arbitrary: inputs[mutation] as fc.Arbitrary<unknown> }, { weight: 1, arbitrary: json }), async (input) => {
          const { status, body } = await gateway.graphql(query, { input });
          expectDocumentedErrors(status, body);
          const result = body.data?.[mutation];
          if (result?.__typename === 'Delivery') {
            expect(result.status).toBe('QUEUED');
            accepted.add(result.id);
          } else if (result) {
            expect(sendErrors).toContain(result.__typename);
            expect(codes).toContain(result.code);
          } else {
            expect(body.errors?.length).toBeGreaterThan(0);
          }
          expectNothingHalfWritten();
        }),
        { numRuns: 60 },
      );
      // The generators do reach the database: some sends are accepted.
      expect(accepted.size).toBeGreaterThan(before);
    });
  }

  it('cancelDelivery and retryDelivery: any id, never an internal error', async () => {
    const known = [...accepted];
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('cancelDelivery', 'retryDelivery'),
        fc.oneof(fc.constantFrom(...known), text, fc.constantFrom('dlv_', 'dlv_000000000000', `${known[0]}'--`)),
        async (mutation, id) => {
          const { status, body } = await gateway.graphql(
            `mutation($id: ID!) { ${mutation}(id: $id) { __typename ... on Delivery { id status } ... on Error { code } } }`,
            { id },
          );
          expectDocumentedErrors(status, body);
          const result = body.data?.[mutation];
          if (result && result.__typename !== 'Delivery') expect(manageErrors).toContain(result.__typename);
          expectNothingHalfWritten();
        },
      ),
      { numRuns: 40 },
    );
  });

  it('deliveries: hostile filters and cursors are refused cleanly', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record(
          {
            first: fc.oneof(fc.integer({ min: -5, max: 500 }), json),
            after: fc.oneof(text, fc.constant(Buffer.from("1:dlv_' or 1=1").toString('base64url'))),
            recipient: json,
            createdAfter: fc.oneof(text, fc.constant('2024-01-01T00:00:00Z')),
            channel: json,
          },
          { requiredKeys: [] },
        ),
        async (variables) => {
          const { status, body } = await gateway.graphql(
            `query($first: Int, $after: String, $recipient: String, $createdAfter: DateTime, $channel: Channel) {
              deliveries(first: $first, after: $after, recipient: $recipient, createdAfter: $createdAfter, channel: $channel) {
                edges { node { id } } } }`,
            variables,
          );
          expectDocumentedErrors(status, body);
        },
      ),
      { numRuns: 40 },
    );
  });

  const routes: Record<string, Record<string, fc.Arbitrary<string>>> = {
    '/api/third/ding/sendMsg': { accessToken: hex(64), secret: hex(64).map((value) => `SEC${value}`), content: fc.constant('disk full') },
    '/api/third/email/sendMsg': { email: email.filter((value) => value !== 'a@b'), content: fc.constant('body') },
    '/api/third/sms/sendMsg': { mobile, content: fc.constant('482913') },
  };
  const extraNames = ['msgType', 'title', 'messageUrl', 'atMobiles', 'atAll', 'cc', 'bcc', 'subject', 'html', 'template', 'idempotencyKey'];
  /** The route's required parameters, valid, then up to three of them (or others) replaced, emptied or dropped. */
  const request = fc.constantFrom(...Object.keys(routes)).chain((route) =>
    fc
      .tuple(
        fc.record(routes[route]),
        fc.dictionary(fc.constantFrom(...Object.keys(routes[route]), ...extraNames), fc.option(text, { nil: undefined }), { maxKeys: 3 }),
      )
      .map(([valid, changes]) => ({
        route,
        pairs: Object.entries({ ...valid, ...changes }).filter((pair): pair is [string, string] => pair[1] !== undefined),
      })),
  );
  /** Percent-encodes like a form, then sometimes damages the encoding on purpose. */
  const encode = (pairs: [string, string][], damage: string) => new URLSearchParams(pairs).toString() + damage;

  it('legacy REST routes: always HTTP 200 with a catalogued code, a row exactly when code is 1000', async () => {
    await fc.assert(
      fc.asyncProperty(
        request,
        fc.constantFrom('query', 'json', 'form', 'junk'),
        fc.constantFrom('', '', '', '&%', '&content=%E4%B8', '&%zz=1', '&mobile=%00', '&&&='),
        async ({ route, pairs }, style, damage) => {
          const init: RequestInit = { method: style === 'query' ? 'GET' : 'POST', headers: { 'OPS-Token': testToken } };
          let target = route;
          if (style === 'query') target = `${route}?${encode(pairs, damage)}`;
          if (style === 'json') {
            init.headers = { ...init.headers, 'content-type': 'application/json' };
            init.body = JSON.stringify(Object.fromEntries(pairs));
          }
          if (style === 'form') {
            init.headers = { ...init.headers, 'content-type': 'application/x-www-form-urlencoded' };
            init.body = encode(pairs, damage);
          }
          if (style === 'junk') {
            init.headers = { ...init.headers, 'content-type': 'application/json' };
            init.body = `{"content": ${JSON.stringify(pairs[0]?.[1] ?? '')}`;
          }
          const response = await gateway.fetch(target, init);
          expect(response.status).toBe(200);
          const answer = (await response.json()) as { code: number; data: string; deliveryId?: string };
          expect(restCodes).toContain(answer.code);
          expect(answer.code).not.toBe(errorCatalog.INTERNAL_ERROR.restCode);
          expect(typeof answer.data).toBe('string');
          if (answer.code === errorCatalog.OK.restCode) {
            expect(answer.deliveryId).toMatch(/^dlv_/);
            accepted.add(answer.deliveryId!);
          } else if (answer.deliveryId) {
            // Recorded and then refused by the provider or cancelled: still a real row.
            accepted.add(answer.deliveryId);
          }
          expectNothingHalfWritten();
        },
      ),
      { numRuns: 100 },
    );
  });
});
