import { afterEach, describe, expect, it } from 'vitest';
import { startGateway, testToken, type TestGateway } from '../support/gateway';

const quietMs = 5000;

describe("the gateway's caller activity (the retention pass rests less while it is quiet)", () => {
  let gateway: TestGateway | undefined;
  afterEach(async () => {
    await gateway?.close();
    gateway = undefined;
  });

  it('probes, metrics and the console leave it quiet; a GraphQL query does not', async () => {
    gateway = await startGateway({ noDispatch: true });
    const { activity } = gateway.app;
    for (const path of ['/healthz', '/readyz', '/metrics', '/']) await gateway.fetch(path);
    expect(activity.quietFor(quietMs)).toBe(true);
    const { status } = await gateway.graphql('{ deliveries(first: 1) { totalCount } }');
    expect(status).toBe(200);
    expect(activity.quietFor(quietMs)).toBe(false);
    expect(activity.quietFor(0)).toBe(true);
  });

  it('a legacy REST call over the listener is a caller served, even one refused', async () => {
    gateway = await startGateway({ noDispatch: true });
    const base = await gateway.listen();
    expect(gateway.app.activity.quietFor(quietMs)).toBe(true);
    const response = await fetch(`${base}/api/third/email/sendMsg?email=not-an-address&content=disk`, { headers: { 'OPS-Token': testToken } });
    expect(await response.json()).not.toMatchObject({ code: 1000 });
    expect(gateway.app.activity.quietFor(quietMs)).toBe(false);
  });
});
