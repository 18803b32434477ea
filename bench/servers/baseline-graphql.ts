// Baseline for sendEmail over GraphQL: node:http, graphql-js execute with a parsed-and-validated document cache,
// and the same row in the same migrated SQLite schema, group-committed and synced as the gateway does
// (bench/baseline/sqlite-group-commit.ts).
import crypto from 'node:crypto';
import http from 'node:http';
import { buildSchema, execute, parse, validate, type DocumentNode } from 'graphql';
import { openDatabase } from '../../src/db/sqlite-client';
import { groupCommitter } from '../baseline/sqlite-group-commit';

const db = openDatabase(process.env.DB_PATH!).$client;
const durably = groupCommitter(db);
const insert = db.prepare(
  `insert into deliveries (id, channel, status, provider, recipient, payload, caller_id, attempts, next_attempt_at, created_at, updated_at)
   values (?, 'EMAIL', 'QUEUED', 'smtp', ?, ?, 'env:1', 0, ?, ?, ?) returning *`,
);
const token = process.env.TOKEN!;
const schema = buildSchema(`
  input SendEmailInput { to: [String!]! subject: String content: String! wait: Boolean }
  type Delivery { id: ID! status: String! recipient: String! createdAt: String! }
  type Query { ok: Boolean }
  type Mutation { sendEmail(input: SendEmailInput!): Delivery! }
`);
const rootValue = {
  sendEmail: async ({ input }: { input: { to: string[]; subject?: string; content: string } }) => {
    const now = Date.now();
    const id = `dlv_${now.toString(16).padStart(12, '0')}${crypto.randomBytes(8).toString('hex')}`;
    const row = (await durably(() => insert.get(id, input.to.join(', '), JSON.stringify(input), now, now, now))) as Record<string, unknown>;
    return { id: row.id, status: row.status, recipient: row.recipient, createdAt: new Date(now).toISOString() };
  },
};
const documents = new Map<string, DocumentNode>();

const server = http.createServer((request, response) => {
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
});
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  console.log(`ready ${(server.address() as { port: number }).port}`);
});
// BENCH_PROF: exit normally on SIGTERM so that node writes the profile.
process.on('SIGTERM', () => process.exit(0));
