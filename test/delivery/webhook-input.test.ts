import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { messageFromStored } from '../../src/delivery/inputs';
import { prepareWebhook, webhookBodyLimitBytes } from '../../src/delivery/webhook-input';
import { ValidationError } from '../../src/errors';

const secret = `whsec_${crypto.randomBytes(32).toString('base64')}`;

const fieldErrors = (input: unknown) => {
  try {
    prepareWebhook(input);
  } catch (error) {
    expect(error).toBeInstanceOf(ValidationError);
    return (error as ValidationError).fieldErrors;
  }
  throw new Error('accepted');
};

describe('the webhook input', () => {
  it('shows the URL without its query, and seals the full URL with the secret when there is a query', () => {
    const prepared = prepareWebhook({ url: 'https://Hooks.Example.com:8443/a/b?token=t0k3n&x=1#frag', body: { a: 1 }, secret });
    expect(prepared.recipient).toBe('https://hooks.example.com:8443/a/b');
    expect(prepared.payload).toEqual({ url: 'https://hooks.example.com:8443/a/b', body: { a: 1 } });
    expect(prepared.secrets).toEqual({ secret, url: 'https://hooks.example.com:8443/a/b?token=t0k3n&x=1' });
    expect(prepared.message).toEqual({ url: 'https://hooks.example.com:8443/a/b?token=t0k3n&x=1', body: { a: 1 }, secret });
    // What the dispatcher rebuilds from the stored row is the message itself.
    expect(messageFromStored(prepared.payload, prepared.secrets)).toEqual(prepared.message);
    expect(JSON.stringify([prepared.recipient, prepared.payload])).not.toContain('t0k3n');
  });

  it('without a query only the secret is sealed; a bare "?" and the fragment are dropped', () => {
    const prepared = prepareWebhook({ url: 'http://hooks.example.com/in?#x', body: 'text', secret });
    expect(prepared.message.url).toBe('http://hooks.example.com/in');
    expect(prepared.secrets).toEqual({ secret });
    expect(messageFromStored(prepared.payload, prepared.secrets)).toEqual(prepared.message);
  });

  it.each([[{ a: [1, 'two', null, true, { b: 2.5 }] }], ['a string'], [0], [false], [null], [[]]])('takes any JSON value: %j', (body) => {
    expect(prepareWebhook({ url: 'https://h.example/', body, secret }).message.body).toEqual(body);
  });

  it('a body of exactly the limit is taken, one byte more is not', () => {
    const overhead = JSON.stringify({ s: '' }).length;
    const fits = { s: 'x'.repeat(webhookBodyLimitBytes - overhead) };
    expect(() => prepareWebhook({ url: 'https://h.example/', body: fits, secret })).not.toThrow();
    expect(fieldErrors({ url: 'https://h.example/', body: { s: `${fits.s}x` }, secret })).toEqual([
      { path: 'body', message: `makes a body of ${webhookBodyLimitBytes + 1} bytes; a webhook body may have at most ${webhookBodyLimitBytes}` },
    ]);
  });

  it.each([
    ['no url', { body: {}, secret }, 'url'],
    ['a javascript: url', { url: 'javascript:alert(1)', body: {}, secret }, 'url'],
    ['a url with a user', { url: 'https://u@h.example/', body: {}, secret }, 'url'],
    ['a url with a line break', { url: 'https://h.example/\n', body: {}, secret }, 'url'],
    ['no body', { url: 'https://h.example/', secret }, 'body'],
    ['no secret', { url: 'https://h.example/', body: {} }, 'secret'],
    ['a 23-byte secret', { url: 'https://h.example/', body: {}, secret: `whsec_${crypto.randomBytes(23).toString('base64')}` }, 'secret'],
    ['a Base64url secret', { url: 'https://h.example/', body: {}, secret: `whsec_${'-_'.repeat(16)}` }, 'secret'],
    ['a secret with a space', { url: 'https://h.example/', body: {}, secret: `${secret} ` }, 'secret'],
  ])('refuses %s on that field', (_label, input, path) => {
    expect(fieldErrors(input).map((error) => error.path)).toEqual([path]);
  });

  it('takes secrets of 24 and 64 bytes', () => {
    for (const bytes of [24, 64]) {
      expect(() => prepareWebhook({ url: 'https://h.example/', body: {}, secret: `whsec_${crypto.randomBytes(bytes).toString('base64')}` })).not.toThrow();
    }
  });
});
