import fs from 'node:fs';
import {
  GraphQLEnumType,
  GraphQLInputObjectType,
  GraphQLInterfaceType,
  GraphQLObjectType,
  GraphQLUnionType,
  printSchema,
  type GraphQLField,
} from 'graphql';
import { describe, expect, it } from 'vitest';
import { schema } from '../src/graphql/schema';

const committed = new URL('../schema.graphql', import.meta.url);

describe('schema.graphql', () => {
  it('is the schema the builder prints (run `npm run schema:print` and commit it when this fails)', () => {
    const printed = `${printSchema(schema)}\n`;
    const onDisk = fs.existsSync(committed) ? fs.readFileSync(committed, 'utf8') : '';
    expect(onDisk, 'schema.graphql is stale: run `npm run schema:print` and commit schema.graphql').toBe(printed);
  });
});

describe('the GraphQL contract of issue 2', () => {
  const type = <T>(name: string, kind: new (...args: never[]) => T): T => {
    const found = schema.getType(name);
    expect(found, `type ${name}`).toBeInstanceOf(kind);
    return found as T;
  };
  const fieldType = (field: GraphQLField<unknown, unknown> | undefined) => String(field?.type);

  it('has the fixed enums', () => {
    expect(type('Channel', GraphQLEnumType).getValues().map((value) => value.name)).toEqual(['DING', 'EMAIL', 'FEISHU', 'SMS', 'WEBHOOK', 'WECOM']); // the printed schema sorts enum values
    expect(type('DeliveryStatus', GraphQLEnumType).getValues().map((value) => value.name)).toEqual(
      expect.arrayContaining(['QUEUED', 'SENDING', 'SENT', 'RETRYING', 'FAILED']),
    );
  });

  it('has Delivery as a Relay node with the fixed fields, and no field that could carry a secret', () => {
    const delivery = type('Delivery', GraphQLObjectType);
    expect(delivery.getInterfaces().map((node) => node.name)).toContain('Node');
    const fields = delivery.getFields();
    expect({
      id: fieldType(fields.id),
      channel: fieldType(fields.channel),
      status: fieldType(fields.status),
      recipient: fieldType(fields.recipient),
      attempts: fieldType(fields.attempts),
      lastError: fieldType(fields.lastError),
      providerMessageId: fieldType(fields.providerMessageId),
      createdAt: fieldType(fields.createdAt),
      updatedAt: fieldType(fields.updatedAt),
      sentAt: fieldType(fields.sentAt),
      redactedAt: fieldType(fields.redactedAt),
    }).toEqual({
      id: 'ID!',
      channel: 'Channel!',
      status: 'DeliveryStatus!',
      recipient: 'String!',
      attempts: 'Int!',
      lastError: 'DeliveryError',
      providerMessageId: 'String',
      createdAt: 'DateTime!',
      updatedAt: 'DateTime!',
      sentAt: 'DateTime',
      redactedAt: 'DateTime',
    });
    expect(Object.keys(type('DeliveryError', GraphQLObjectType).getFields())).toEqual(['code', 'message']);
    expect(Object.keys(fields).filter((name) => /token|secret|sealed|payload|content/i.test(name))).toEqual([]);
  });

  it('has the fixed send inputs', () => {
    const fieldsOf = (name: string) =>
      Object.fromEntries(
        Object.values(type(name, GraphQLInputObjectType).getFields()).map((field) => [field.name, String(field.type)]),
      );
    expect(fieldsOf('SendDingInput')).toMatchObject({
      accessToken: 'String!',
      secret: 'String!',
      content: 'String!',
      msgType: 'DingMsgType',
      title: 'String',
      messageUrl: 'String',
      picUrl: 'String',
      atMobiles: '[String!]',
      atUserIds: '[String!]',
      atAll: 'Boolean',
      idempotencyKey: 'String',
      wait: 'Boolean',
    });
    expect(type('SendDingInput', GraphQLInputObjectType).getFields().msgType.defaultValue).toBe('TEXT');
    expect(type('DingMsgType', GraphQLEnumType).getValues().map((value) => value.name)).toEqual([
      'ACTION_CARD',
      'LINK',
      'MARKDOWN',
      'TEXT',
    ]);
    expect(fieldsOf('SendEmailInput')).toMatchObject({
      to: '[String!]!',
      cc: '[String!]',
      bcc: '[String!]',
      subject: 'String',
      content: 'String!',
      html: 'String',
      idempotencyKey: 'String',
      wait: 'Boolean',
    });
    expect(fieldsOf('SendSmsInput')).toMatchObject({
      mobile: 'String!',
      content: 'String!',
      template: 'String',
      params: 'JSON',
      idempotencyKey: 'String',
      wait: 'Boolean',
    });
  });

  it('answers each send mutation with a union of Delivery and errors implementing Error', () => {
    const error = type('Error', GraphQLInterfaceType);
    expect(fieldType(error.getFields().message)).toBe('String!');
    const validation = type('ValidationError', GraphQLObjectType);
    expect(validation.getInterfaces()).toContain(error);
    expect(fieldType(validation.getFields().fieldErrors)).toMatch(/^\[\w+!\]!$/);
    const fieldError = schema.getType(fieldType(validation.getFields().fieldErrors).replace(/[[\]!]/g, '')) as GraphQLObjectType;
    expect(Object.keys(fieldError.getFields())).toEqual(expect.arrayContaining(['path', 'message']));

    const mutations = schema.getMutationType()!.getFields();
    for (const [name, input] of [
      ['sendDing', 'SendDingInput!'],
      ['sendEmail', 'SendEmailInput!'],
      ['sendSms', 'SendSmsInput!'],
    ]) {
      const field = mutations[name];
      expect(field.args.map((arg) => [arg.name, String(arg.type)])).toEqual([['input', input]]);
      const union = schema.getType(fieldType(field).replace(/!$/, ''));
      expect(union).toBeInstanceOf(GraphQLUnionType);
      const members = (union as GraphQLUnionType).getTypes();
      expect(members.map((member) => member.name)).toEqual(expect.arrayContaining(['Delivery', 'ValidationError']));
      for (const member of members.filter((member) => member.name !== 'Delivery')) {
        expect(member.getInterfaces(), `${member.name} implements Error`).toContain(error);
      }
    }
  });

  it('has the deliveries connection with String cursors and its filters, delivery(id) and node(id)', () => {
    const query = schema.getQueryType()!.getFields();
    expect(Object.fromEntries(query.deliveries.args.map((arg) => [arg.name, String(arg.type)]))).toEqual({
      first: 'Int',
      after: 'String',
      last: 'Int',
      before: 'String',
      channel: 'Channel',
      status: 'DeliveryStatus',
      recipient: 'String',
      createdAfter: 'DateTime',
      createdBefore: 'DateTime',
    });
    const connection = type(fieldType(query.deliveries).replace(/!$/, ''), GraphQLObjectType);
    const edge = type(fieldType(connection.getFields().edges).replace(/[[\]!]/g, ''), GraphQLObjectType);
    expect(fieldType(edge.getFields().cursor)).toBe('String!');
    expect(fieldType(edge.getFields().node)).toBe('Delivery!');
    expect(Object.keys(type('PageInfo', GraphQLObjectType).getFields())).toEqual(
      expect.arrayContaining(['hasNextPage', 'hasPreviousPage', 'startCursor', 'endCursor']),
    );
    expect(query.delivery.args.map((arg) => [arg.name, String(arg.type)])).toEqual([['id', 'ID!']]);
    expect(fieldType(query.delivery)).toBe('Delivery');
    expect(query.node.args.map((arg) => [arg.name, String(arg.type)])).toEqual([['id', 'ID!']]);
  });
});
