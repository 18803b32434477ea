import { afterAll, beforeAll, expect, it } from 'vitest';
import type { TokenScopes } from '../../src/auth';
import type { NewDeliveryRow } from '../../src/db/schema';
import { describeOnStores, insertScopedToken, startGatewayOn, type AnyGateway } from '../support/db';
import { deliveryRow } from '../support/stores';

const queueQuery = '{ deliveryQueue { depth byChannel { channel count } oldestPendingAt oldestPendingAgeSeconds } }';

describeOnStores('deliveryQueue', (kind) => {
  let gateway: AnyGateway;

  const storedToken = (name: string, scopes: TokenScopes) => insertScopedToken(gateway, name, scopes);

  const queue = async (token?: string) => {
    const { status, body } = await gateway.graphql(queueQuery, {}, token ? { token } : undefined);
    expect(status).toBe(200);
    return body;
  };

  beforeAll(async () => {
    // Nothing is sent: the seeded rows stay as they are.
    gateway = await startGatewayOn(kind, { noDispatch: true });
  });
  afterAll(() => gateway.close());

  it('is empty on a new database: every channel at zero, no oldest', async () => {
    expect((await queue()).data.deliveryQueue).toEqual({
      depth: 0,
      byChannel: [
        { channel: 'DING', count: 0 },
        { channel: 'EMAIL', count: 0 },
        { channel: 'SMS', count: 0 },
        { channel: 'FEISHU', count: 0 },
        { channel: 'WECOM', count: 0 },
        { channel: 'WEBHOOK', count: 0 },
      ],
      oldestPendingAt: null,
      oldestPendingAgeSeconds: null,
    });
  });

  it('counts deliveries not yet final (QUEUED, RETRYING, SENDING) by channel, and the oldest of them', async () => {
    const now = Date.now();
    const sms = { channel: 'SMS', provider: 'log', recipient: '+8613800138000' } as const;
    const ding = { channel: 'DING', provider: 'dingtalk', recipient: 'robot:7c43ef5ae21d' } as const;
    const seeds: Partial<NewDeliveryRow>[] = [
      // Final ones, older than any pending one, count for nothing.
      { createdAt: now - 3_600_000, status: 'SENT', nextAttemptAt: null },
      { createdAt: now - 3_500_000, status: 'FAILED', nextAttemptAt: null, ...sms },
      { createdAt: now - 3_400_000, status: 'CANCELLED', nextAttemptAt: null, ...ding },
      { createdAt: now - 125_000, status: 'RETRYING', ...sms, callerId: 'tok_someone' },
      { createdAt: now - 60_000, status: 'QUEUED' },
      { createdAt: now - 30_000, status: 'QUEUED', ...sms },
      { createdAt: now - 10_000, status: 'SENDING', claimedUntil: now + 60_000, ...ding },
      { createdAt: now - 5_000, status: 'RETRYING' },
    ];
    for (const seed of seeds) await gateway.store.insertDelivery(deliveryRow(seed));

    const { data, errors } = await queue();
    expect(errors).toBeUndefined();
    expect(data.deliveryQueue).toMatchObject({
      depth: 5,
      byChannel: [
        { channel: 'DING', count: 1 },
        { channel: 'EMAIL', count: 2 },
        { channel: 'SMS', count: 2 },
        { channel: 'FEISHU', count: 0 },
        { channel: 'WECOM', count: 0 },
        { channel: 'WEBHOOK', count: 0 },
      ],
      oldestPendingAt: new Date(now - 125_000).toISOString(),
    });
    expect(data.deliveryQueue.oldestPendingAgeSeconds).toBeGreaterThanOrEqual(125);
    expect(data.deliveryQueue.oldestPendingAgeSeconds).toBeLessThan(185);
  });

  it('answers a read-only token (read ALL, no channels) too', async () => {
    const auditor = await storedToken('auditor', { channels: [], read: 'all' });
    expect((await queue(auditor)).data.deliveryQueue.depth).toBe(5);
  });

  it('refuses tokens that may not read every delivery with FORBIDDEN', async () => {
    for (const [name, read] of [
      ['own-reader', 'own'],
      ['no-reader', 'none'],
    ] as const) {
      const token = await storedToken(name, { channels: ['DING', 'EMAIL', 'SMS', 'FEISHU', 'WECOM', 'WEBHOOK'], read });
      const { data, errors } = await queue(token);
      expect(data).toBeNull();
      expect(errors).toEqual([
        expect.objectContaining({
          message: 'Only a token that may read every delivery may see the queue',
          extensions: { code: 'FORBIDDEN' },
        }),
      ]);
    }
  });
});
