import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeOnStores, startGatewayOn, type AnyGateway } from '../support/db';

const byRecipient = `query($recipient: String!) { deliveries(recipient: $recipient) { edges { node { id recipient } } } }`;

describeOnStores('the recipient filter takes a recipient the way callers write it', (kind) => {
  let gateway: AnyGateway;
  const ids: Record<string, string> = {};
  beforeAll(async () => {
    gateway = await startGatewayOn(kind);
    const sms = await gateway.graphql(`mutation { sendSms(input: { mobile: "13800138000", content: "4821" }) { ... on Delivery { id recipient } } }`);
    ids.sms = sms.body.data.sendSms.id;
    const email = await gateway.graphql(
      `mutation { sendEmail(input: { to: ["Ops@Example.com", "dba@example.com"], content: "x" }) { ... on Delivery { id recipient } } }`,
    );
    ids.email = email.body.data.sendEmail.id;
  });
  afterAll(() => gateway.close());

  it.each([
    ['a bare mainland mobile', '13800138000', 'sms'],
    ['the E.164 form', '+8613800138000', 'sms'],
    ['mixed-case addresses, semicolon-separated', 'OPS@example.com;DBA@Example.com', 'email'],
  ])('finds the delivery by %s', async (_name, recipient, kind) => {
    const { body } = await gateway.graphql(byRecipient, { recipient });
    expect(body.data.deliveries.edges.map((edge: { node: { id: string } }) => edge.node.id)).toEqual([ids[kind]]);
  });

  it('finds nothing for another number', async () => {
    const { body } = await gateway.graphql(byRecipient, { recipient: '13900139000' });
    expect(body.data.deliveries.edges).toEqual([]);
  });
});
