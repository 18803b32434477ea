import { afterAll, describe, expect, it } from 'vitest';
import { startSmtpSink, type SmtpSink } from '../peers/smtp-sink';
import { eventually, startGateway, type TestGateway } from '../support/gateway';

const sendEmail = `mutation($input: SendEmailInput!) { sendEmail(input: $input) { __typename ... on Delivery { id status } } }`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('the SMTP server stops in the middle of a run and comes back', { timeout: 60_000 }, () => {
  let sink: SmtpSink;
  let gateway: TestGateway;
  afterAll(async () => {
    await gateway?.close();
    await sink?.close();
  });

  it('every message arrives once it is back; the outage shows as retried attempts', async () => {
    sink = await startSmtpSink();
    const concurrency = 8;
    gateway = await startGateway({
      env: {
        SMTP_URL: sink.url,
        DISPATCH_CONCURRENCY: String(concurrency),
        SMTP_POOL_SIZE: '4',
        RETRY_MAX_ATTEMPTS: '100',
        RETRY_BASE_DELAY_MS: '100',
        RETRY_MAX_DELAY_MS: '400',
        LOG_LEVEL: 'info',
      },
    });
    const total = 150;
    const ids: string[] = [];
    const submit = async (from: number, to: number) => {
      for (let n = from; n < to; n++) {
        const { body } = await gateway.graphql(sendEmail, { input: { to: [`team${n % 5}@example.com`], subject: `outage #${n}`, content: `message ${n}`, wait: false } });
        expect(body.data.sendEmail.__typename).toBe('Delivery');
        ids.push(body.data.sendEmail.id);
      }
    };
    await submit(0, 100);
    await eventually(() => sink.messages.length >= 30);
    await sink.stop();
    const stoppedWith = sink.messages.length;
    // Messages keep coming in while the server is away.
    await submit(100, total);
    await eventually(async () => (await gateway.store.countByStatus()).some((row) => row.status === 'RETRYING' && row.count > 0));
    await sleep(1000);
    expect(sink.messages.length).toBe(stoppedWith);
    const during = await gateway.store.countByStatus();
    expect(during.find((row) => row.status === 'FAILED')).toBeUndefined();
    await sink.start();

    await eventually(() => ids.every((id) => sink.messagesFor(id).length > 0), 30_000);
    await eventually(async () => (await gateway.store.getDeliveries(ids)).every((row) => row.status === 'SENT'), 10_000);

    const rows = await gateway.store.getDeliveries(ids);
    const retried = rows.filter((row) => row.attempts > 1);
    expect(retried.length).toBeGreaterThan(0);
    const sample = await gateway.store.listAttempts(retried[0].id);
    expect(sample.at(-1)?.outcome).toBe('SENT');
    expect(sample.slice(0, -1).every((attempt) => attempt.outcome === 'RETRYABLE' && attempt.providerCode)).toBe(true);

    // A duplicate needs a message the server took whose reply the gateway never read (connections cut at the stop):
    // only attempts under way at that moment, so at most DISPATCH_CONCURRENCY.
    const counts = ids.map((id) => sink.messagesFor(id).length);
    const duplicates = counts.reduce((sum, count) => sum + count - 1, 0);
    expect(duplicates).toBeLessThanOrEqual(concurrency);
    for (const [index, count] of counts.entries()) {
      if (count > 1) expect((await gateway.store.listAttempts(ids[index]))[0].outcome).toBe('RETRYABLE');
    }
    expect(sink.messages.length).toBe(total + duplicates);
    console.log(JSON.stringify({ total, arrivedBeforeStop: stoppedWith, retried: retried.length, maxAttempts: Math.max(...rows.map((row) => row.attempts)), duplicates }));
  });
});
