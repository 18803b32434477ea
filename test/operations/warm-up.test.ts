import { afterEach, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from '../support/gateway';

describe('warm-up at start', () => {
  let gateway: TestGateway | undefined;
  afterEach(async () => {
    await gateway?.close();
    gateway = undefined;
  });

  it('runs the first query in-process without a request log line or an operation counted, and callers are served as before', async () => {
    gateway = await startGateway({ noDispatch: true });
    expect(await gateway.app.warmUp()).toBe(true);
    const requestLines = () => gateway!.logs.filter((line) => line.msg === 'request');
    expect(requestLines()).toEqual([]);
    const metrics = await (await gateway.fetch('/metrics')).text();
    expect(metrics).not.toMatch(/graphql_operations_total\{[^}]*\} [1-9]/);

    const sent = await gateway.graphql(`mutation { sendEmail(input: {to: ["warm@example.com"], content: "hi", wait: false}) { __typename } }`);
    expect(sent.body.data?.sendEmail.__typename).toBe('Delivery');
    const read = await gateway.graphql(`{ deliveries(first: 50) { edges { node { recipient } } } }`);
    expect(read.body.data.deliveries.edges).toEqual([{ node: { recipient: 'warm@example.com' } }]);
    expect(requestLines().filter((line) => line.route === '/graphql').map((line) => line.operation)).toEqual(['mutation sendEmail', 'query deliveries']);
    expect(await (await gateway.fetch('/metrics')).text()).toMatch(/graphql_operations_total\{[^}]*operation="deliveries"[^}]*\} 1\n/);
    expect(await (await gateway.fetch('/metrics')).text()).not.toContain('operation="(multiple)"');
  });
});
