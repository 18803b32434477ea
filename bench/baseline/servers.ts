// What the baselines share whatever their store: the HTTP handling of a bare server (node:http, no gateway code), the
// id, and `ready <port>` for the harness. Each baseline in bench/servers/ only says how it stores a row durably.
import crypto from 'node:crypto';
import http from 'node:http';
import { buildSchema, execute, parse, validate, type DocumentNode } from 'graphql';

/** The row's columns a baseline fills in; the rest are constants in its INSERT. */
export interface BaselineRow {
  id: string;
  recipient: string;
  payload: string;
  now: number;
}

const token = process.env.TOKEN!;

function newId(now: number): string {
  return `dlv_${now.toString(16).padStart(12, '0')}${crypto.randomBytes(8).toString('hex')}`;
}

function listen(server: http.Server): void {
  server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
    console.log(`ready ${(server.address() as { port: number }).port}`);
  });
  // BENCH_PROF: exit normally on SIGTERM so that node writes the profile.
  process.on('SIGTERM', () => process.exit(0));
}

/** The legacy email route: the same query parsing, one durable insert, the same answer. */
export function serveRestBaseline(insert: (row: BaselineRow) => Promise<unknown>): void {
  listen(
    http.createServer(async (request, response) => {
      const url = new URL(request.url!, 'http://x');
      if (request.headers['ops-token'] !== token) {
        response.end(JSON.stringify({ code: 1002, data: 'authentication failed' }));
        return;
      }
      const email = url.searchParams.get('email');
      const content = url.searchParams.get('content');
      if (!email || !content) {
        response.end(JSON.stringify({ code: 1001, data: 'missing parameter' }));
        return;
      }
      const now = Date.now();
      const id = newId(now);
      await insert({ id, recipient: email, payload: JSON.stringify({ to: [email], subject: content.slice(0, 50), text: content }), now });
      response.setHeader('content-type', 'application/json; charset=utf-8');
      response.end(JSON.stringify({ code: 1000, data: 'queued', deliveryId: id }));
    }),
  );
}

const schema = buildSchema(`
  input SendEmailInput { to: [String!]! subject: String content: String! wait: Boolean }
  type Delivery { id: ID! status: String! recipient: String! createdAt: String! }
  type Query { ok: Boolean }
  type Mutation { sendEmail(input: SendEmailInput!): Delivery! }
`);

/** sendEmail over GraphQL: graphql-js execute with a parsed-and-validated document cache; `insert` returns the row. */
export function serveGraphqlBaseline(insert: (row: BaselineRow) => Promise<Record<string, unknown>>): void {
  const rootValue = {
    sendEmail: async ({ input }: { input: { to: string[]; subject?: string; content: string } }) => {
      const now = Date.now();
      const row = await insert({ id: newId(now), recipient: input.to.join(', '), payload: JSON.stringify(input), now });
      return { id: row.id, status: row.status, recipient: row.recipient, createdAt: new Date(now).toISOString() };
    },
  };
  const documents = new Map<string, DocumentNode>();
  listen(
    http.createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk) => chunks.push(chunk));
      request.on('end', async () => {
        response.setHeader('content-type', 'application/json; charset=utf-8');
        if (request.headers['ops-token'] !== token) {
          response.statusCode = 401;
          response.end(JSON.stringify({ errors: [{ message: 'unauthenticated' }] }));
          return;
        }
        const { query, variables } = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        let document = documents.get(query);
        if (!document) {
          document = parse(query);
          const errors = validate(schema, document);
          if (errors.length > 0) {
            response.end(JSON.stringify({ errors }));
            return;
          }
          documents.set(query, document);
        }
        const result = await execute({ schema, document, rootValue, variableValues: variables });
        response.end(JSON.stringify(result));
      });
    }),
  );
}
