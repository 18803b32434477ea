import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSmtpSink, type SmtpSink } from '../peers/smtp-sink';
import { startGateway, testToken, type TestGateway } from '../support/gateway';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const exampleDir = path.join(root, 'examples/typed-client');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(args: string[], { env = {}, timeout = 50_000 }: { env?: Record<string, string>; timeout?: number } = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, args, { cwd: root, env: { ...process.env, ...env }, timeout }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, stdout, stderr });
    });
  });
}

const runExample = (env: Record<string, string>) => run(['--import', 'tsx', 'examples/typed-client/send-and-follow.ts'], { env });

// Four child processes (a tsc, three tsx runs): slow to start on a busy machine.
describe('examples/typed-client', { timeout: 60_000 }, () => {
  let sink: SmtpSink;
  let gateway: TestGateway;
  let url: string;
  // Started at once so that it overlaps the runs against the gateway.
  let typeCheck: Promise<Run>;

  beforeAll(async () => {
    typeCheck = run(['node_modules/typescript/bin/tsc', '-p', 'examples/typed-client']);
    sink = await startSmtpSink();
    gateway = await startGateway({ env: { SMTP_URL: sink.url } });
    url = await gateway.listen();
  });
  afterAll(async () => {
    await gateway?.close();
    await sink?.close();
  });

  it('sends an email, prints its id and each status up to SENT, and exits 0; the SMTP server got that delivery', async () => {
    const { code, stdout, stderr } = await runExample({ GATEWAY_URL: url, OPS_TOKEN: testToken, TO: 'ops@example.com' });
    expect(code, stderr).toBe(0);
    const [accepted, ...lines] = stdout.trim().split('\n');
    const id = /^accepted (dlv_[0-9a-f]+)$/.exec(accepted)?.[1];
    expect(id, stdout).toBeDefined();
    const statuses = lines.map((line) => {
      expect(line.startsWith(`${id} `), line).toBe(true);
      return line.slice(`${id} `.length);
    });
    // QUEUED can be gone by the time the subscription starts when the dispatcher is quick.
    expect(statuses).toEqual(['QUEUED', 'SENDING', 'SENT'].filter((status) => statuses.includes(status)));
    expect(statuses.at(-1)).toBe('SENT');

    const received = sink.messagesFor(id!);
    expect(received).toHaveLength(1);
    expect(received[0].envelope.rcptTo).toEqual(['ops@example.com']);
    expect(received[0].parsed.subject).toBe('Hello from the typed client example');
  });

  it('with a wrong token: one error line, nothing sent, exit 1', async () => {
    const before = sink.messages.length;
    const { code, stdout, stderr } = await runExample({ GATEWAY_URL: url, OPS_TOKEN: 'wrong-token-0123456789', TO: 'ops@example.com' });
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toBe('error: OPS-Token missing, unknown or revoked (HTTP 401)\n');
    expect(sink.messages).toHaveLength(before);
  });

  it('with addresses the gateway refuses: one line per field error, exit 1', async () => {
    const { code, stdout, stderr } = await runExample({ GATEWAY_URL: url, OPS_TOKEN: testToken, TO: 'not-an-address,ops@example.com,@x' });
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toBe('error: sendEmail refused (INVALID_ARGUMENT):\n  to.0: must be an email address\n  to.2: must be an email address\n');
  });

  it('type-checks (tsc -p examples/typed-client)', async () => {
    const { code, stdout, stderr } = await typeCheck;
    expect(code, `${stdout}${stderr}`).toBe(0);
  });

  it('types that bite: misuse of the generated documents and of the subscription helper does not compile', () => {
    const header = `import { request } from 'graphql-request';
import { createClient } from 'graphql-ws';
import { FollowDeliveryDocument, SendEmailDocument } from './generated';
import { subscribe } from './send-and-follow';
const client = createClient({ url: 'ws://localhost:4000/graphql' });
`;
    // Each probe but the first has one mistake; the first is the same code done right, so the probes fail for that
    // mistake and not for a broken import.
    const probes: Record<string, { code: string; error?: string }> = {
      'right.ts': {
        code: `export async function probe() {
  const { sendEmail } = await request('http://localhost:4000/graphql', SendEmailDocument, { input: { to: ['a@example.com'], content: 'x' } });
  if (sendEmail.__typename === 'Delivery') sendEmail.id.toUpperCase();
  for await (const { deliveryUpdated } of subscribe(client, FollowDeliveryDocument, { id: 'dlv_1' })) deliveryUpdated.status.toLowerCase();
}`,
      },
      'unselected-field.ts': {
        code: `export async function probe() {
  for await (const { deliveryUpdated } of subscribe(client, FollowDeliveryDocument, { id: 'dlv_1' })) deliveryUpdated.recipient;
}`,
        error: "Property 'recipient' does not exist on type '{ id: string; status: DeliveryStatus;",
      },
      'wrong-subscription-variable.ts': {
        code: `export function probe() {
  return subscribe(client, FollowDeliveryDocument, { deliveryId: 'dlv_1' });
}`,
        error: "Object literal may only specify known properties, and 'deliveryId' does not exist",
      },
      'wrong-mutation-variable.ts': {
        code: `export function probe() {
  return request('http://localhost:4000/graphql', SendEmailDocument, { input: { to: 'a@example.com', content: 'x' } });
}`,
        error: "Type 'string' is not assignable to type 'string[]'",
      },
      'union-not-narrowed.ts': {
        code: `export async function probe() {
  const { sendEmail } = await request('http://localhost:4000/graphql', SendEmailDocument, { input: { to: ['a@example.com'], content: 'x' } });
  return sendEmail.id;
}`,
        error: "Property 'id' does not exist on type '{ __typename: \"ForbiddenError\";",
      },
    };
    const sources = new Map(Object.entries(probes).map(([name, probe]) => [path.join(exampleDir, name), header + probe.code]));
    const config = ts.getParsedCommandLineOfConfigFile(path.join(exampleDir, 'tsconfig.json'), {}, {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (diagnostic) => {
        throw new Error(ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'));
      },
    })!;
    const host = ts.createCompilerHost(config.options);
    const { getSourceFile, fileExists, readFile } = host;
    host.getSourceFile = (name, language, ...rest) => {
      const text = sources.get(path.resolve(name));
      return text === undefined ? getSourceFile(name, language, ...rest) : ts.createSourceFile(name, text, language);
    };
    host.fileExists = (name) => sources.has(path.resolve(name)) || fileExists(name);
    host.readFile = (name) => sources.get(path.resolve(name)) ?? readFile(name);
    const program = ts.createProgram([...sources.keys()], config.options, host);

    const errors = Object.fromEntries(
      Object.keys(probes).map((name) => [
        name,
        ts.getPreEmitDiagnostics(program, program.getSourceFile(path.join(exampleDir, name))).map((diagnostic) =>
          ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'),
        ),
      ]),
    );
    for (const [name, probe] of Object.entries(probes)) {
      if (probe.error === undefined) expect(errors[name], name).toEqual([]);
      else expect(errors[name], name).toEqual([expect.stringContaining(probe.error)]);
    }
  });
});
