import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import { gql, UnauthorizedError } from '../api';
import {
  SendDingDocument,
  SendEmailDocument,
  SendFeishuDocument,
  SendSmsDocument,
  SendWeComDocument,
  SendWebhookDocument,
  type Channel,
  type DeliveryRowFragment,
  type DingMsgType,
  type FeishuMsgType,
  type SendDingMutation,
  type WeComMsgType,
} from '../graphql/generated';
import { useI18n, type MessageKey } from '../i18n';
import { base, followLink } from '../router';
import { channels, ErrorMessage, PageHeading, StatusBadge } from './common';

type Result = SendDingMutation['sendDing'];
type FieldName =
  | 'accessToken'
  | 'token'
  | 'secret'
  | 'msgType'
  | 'title'
  | 'messageUrl'
  | 'content'
  | 'to'
  | 'subject'
  | 'html'
  | 'mobile'
  | 'key'
  | 'mentionedList'
  | 'mentionedMobileList'
  | 'url'
  | 'body';

/** The form of each channel the console can send on; a channel without one is not offered. */
const fieldsOf: Partial<Record<Channel, FieldName[]>> = {
  DING: ['accessToken', 'secret', 'msgType', 'title', 'messageUrl', 'content'],
  EMAIL: ['to', 'subject', 'content', 'html'],
  SMS: ['mobile', 'content'],
  FEISHU: ['token', 'secret', 'msgType', 'title', 'content'],
  WECOM: ['key', 'msgType', 'content', 'mentionedList', 'mentionedMobileList'],
  WEBHOOK: ['url', 'secret', 'body'],
};
const labels: Record<FieldName, MessageKey> = {
  accessToken: 'send.accessToken',
  token: 'send.token',
  secret: 'send.secret',
  msgType: 'send.msgType',
  title: 'send.title',
  messageUrl: 'send.messageUrl',
  content: 'send.content',
  to: 'send.to',
  subject: 'send.subject',
  html: 'send.html',
  mobile: 'send.mobile',
  key: 'send.key',
  mentionedList: 'send.mentionedList',
  mentionedMobileList: 'send.mentionedMobileList',
  url: 'send.url',
  body: 'send.body',
};
/** Labels that differ by channel: a webhook's secret is a Standard Webhooks whsec_ key, not DingTalk's 加签 secret. */
const labelOf = (channel: Channel, name: FieldName): MessageKey =>
  channel === 'WEBHOOK' && name === 'secret' ? 'send.webhookSecret' : labels[name];
const sendable = channels.filter((channel) => fieldsOf[channel] !== undefined);
const msgTypes: DingMsgType[] = ['TEXT', 'MARKDOWN', 'LINK', 'ACTION_CARD'];
const feishuMsgTypes: FeishuMsgType[] = ['TEXT', 'POST', 'CARD'];
const weComMsgTypes: WeComMsgType[] = ['TEXT', 'MARKDOWN'];
const multiline = new Set<FieldName>(['content', 'html', 'body']);

type Values = Record<FieldName, string>;
const empty: Values = {
  accessToken: '',
  token: '',
  secret: '',
  msgType: 'TEXT',
  title: '',
  messageUrl: '',
  content: '',
  to: '',
  subject: '',
  html: '',
  mobile: '',
  key: '',
  mentionedList: '',
  mentionedMobileList: '',
  url: '',
  body: '',
};

const orUndefined = (value: string) => (value.trim() === '' ? undefined : value);
const list = (value: string) =>
  value
    .split(/[,;]/)
    .map((item) => item.trim())
    .filter(Boolean);

export function SendPage() {
  const { t } = useI18n();
  const [channel, setChannel] = useState<Channel>('EMAIL');
  const [values, setValues] = useState<Values>(empty);
  const [fieldErrors, setFieldErrors] = useState<Partial<Record<FieldName, string[]>>>({});
  const [error, setError] = useState<string | null>(null);
  const [sent, setSent] = useState<DeliveryRowFragment | null>(null);
  const [busy, setBusy] = useState(false);

  const set = (name: FieldName, value: string) => setValues((current) => ({ ...current, [name]: value }));

  const send = (): Promise<Result> => {
    if (channel === 'WEBHOOK') {
      return gql(SendWebhookDocument, {
        input: { url: values.url.trim(), secret: values.secret.trim(), body: JSON.parse(values.body) as unknown, wait: false },
      }).then((data) => data.sendWebhook);
    }
    if (channel === 'DING') {
      return gql(SendDingDocument, {
        input: {
          accessToken: values.accessToken,
          secret: values.secret,
          msgType: values.msgType as DingMsgType,
          title: orUndefined(values.title),
          messageUrl: orUndefined(values.messageUrl),
          content: values.content,
          wait: false,
        },
      }).then((data) => data.sendDing);
    }
    if (channel === 'FEISHU') {
      return gql(SendFeishuDocument, {
        input: {
          token: values.token.trim(),
          secret: orUndefined(values.secret),
          msgType: values.msgType as FeishuMsgType,
          title: orUndefined(values.title),
          content: values.content,
          wait: false,
        },
      }).then((data) => data.sendFeishu);
    }
    if (channel === 'EMAIL') {
      return gql(SendEmailDocument, {
        input: { to: list(values.to), subject: orUndefined(values.subject), content: values.content, html: orUndefined(values.html), wait: false },
      }).then((data) => data.sendEmail);
    }
    if (channel === 'WECOM') {
      const text = values.msgType !== 'MARKDOWN';
      return gql(SendWeComDocument, {
        input: {
          key: values.key.trim(),
          msgType: text ? 'TEXT' : 'MARKDOWN',
          content: values.content,
          // Mentions exist on TEXT only: the fields are hidden for MARKDOWN, so what they held is not sent.
          mentionedList: text ? list(values.mentionedList) : [],
          mentionedMobileList: text ? list(values.mentionedMobileList) : [],
          wait: false,
        },
      }).then((data) => data.sendWeCom);
    }
    return gql(SendSmsDocument, { input: { mobile: values.mobile.trim(), content: values.content, wait: false } }).then((data) => data.sendSms);
  };

  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    setFieldErrors({});
    setSent(null);
    if (channel === 'WEBHOOK') {
      // The body is sent as JSON: text that does not parse is the field's error, before anything is sent.
      try {
        JSON.parse(values.body);
      } catch (invalid) {
        setFieldErrors({ body: [t('send.invalidJson', { message: (invalid as Error).message })] });
        setBusy(false);
        document.getElementById('send-body')?.focus();
        return;
      }
    }
    try {
      const result = await send();
      if (result.__typename === 'Delivery') {
        setSent(result);
      } else if (result.__typename === 'ValidationError') {
        const byField: Partial<Record<FieldName, string[]>> = {};
        const elsewhere: string[] = [];
        const shown = fieldsOf[channel] ?? [];
        for (const fieldError of result.fieldErrors) {
          const name = fieldError.path.replace(/^input\./, '').split('.')[0] as FieldName;
          if (shown.includes(name)) (byField[name] ??= []).push(fieldError.message);
          else elsewhere.push(`${fieldError.path}: ${fieldError.message}`);
        }
        setFieldErrors(byField);
        setError(elsewhere.length > 0 ? `${result.message} ${elsewhere.join('; ')}` : null);
        const first = shown.find((name) => byField[name]);
        if (first) document.getElementById(`send-${first}`)?.focus();
      } else {
        setError(result.message);
      }
    } catch (failure) {
      if (!(failure instanceof UnauthorizedError)) setError(t('app.error', { message: (failure as Error).message }));
    } finally {
      setBusy(false);
    }
  };

  const field = (name: FieldName, input: ComponentChildren, hint?: string) => {
    const errors = fieldErrors[name];
    return (
      <div class={`field${errors ? ' field-invalid' : ''}`}>
        <label for={`send-${name}`}>{t(labelOf(channel, name))}</label>
        {input}
        {hint && (
          <span id={`send-${name}-hint`} class="hint">
            {hint}
          </span>
        )}
        {errors && (
          <p id={`send-${name}-error`} class="field-error">
            {errors.map((message) => (
              <span class="field-error-item">{message}</span>
            ))}
          </p>
        )}
      </div>
    );
  };
  const describedBy = (name: FieldName, hint = false) =>
    [hint ? `send-${name}-hint` : '', fieldErrors[name] ? `send-${name}-error` : ''].filter(Boolean).join(' ') || undefined;
  const common = (name: FieldName, hint = false) => ({
    id: `send-${name}`,
    name,
    value: values[name],
    'aria-invalid': fieldErrors[name] ? true : undefined,
    'aria-describedby': describedBy(name, hint),
    onInput: (event: Event) => set(name, (event.currentTarget as HTMLInputElement).value),
  });
  const textInput = (name: FieldName, type: 'text' | 'password' | 'url' | 'tel' = 'text', hint?: string) =>
    field(name, multiline.has(name) ? <textarea rows={name === 'html' ? 4 : 5} {...common(name)} /> : <input type={type as 'text'} autocomplete="off" spellcheck={false} {...common(name, !!hint)} />, hint);

  return (
    <section>
      <PageHeading>{t('send.heading')}</PageHeading>
      <form class="send stack" onSubmit={submit} noValidate>
        <div class="field">
          <label for="send-channel">{t('send.channel')}</label>
          <select
            id="send-channel"
            value={channel}
            onChange={(event) => {
              setChannel(event.currentTarget.value as Channel);
              // Each channel has its own message types (DingTalk's LINK is not WeCom's): start again from TEXT, the one they share.
              set('msgType', 'TEXT');
              setFieldErrors({});
              setError(null);
              setSent(null);
            }}
          >
            {sendable.map((option) => (
              <option value={option}>{t(`channelName.${option}`)}</option>
            ))}
          </select>
        </div>
        {channel === 'DING' && (
          <>
            {textInput('accessToken')}
            {textInput('secret', 'password')}
            {field(
              'msgType',
              <select {...common('msgType')} onChange={(event) => set('msgType', event.currentTarget.value)}>
                {msgTypes.map((type) => (
                  <option value={type}>{type}</option>
                ))}
              </select>,
            )}
            {textInput('title')}
            {(values.msgType === 'LINK' || values.msgType === 'ACTION_CARD') && textInput('messageUrl', 'url')}
            {textInput('content')}
          </>
        )}
        {channel === 'FEISHU' && (
          <>
            {textInput('token')}
            {textInput('secret', 'password')}
            {field(
              'msgType',
              <select {...common('msgType')} onChange={(event) => set('msgType', event.currentTarget.value)}>
                {feishuMsgTypes.map((type) => (
                  <option value={type}>{type}</option>
                ))}
              </select>,
            )}
            {values.msgType !== 'TEXT' && textInput('title')}
            {textInput('content')}
          </>
        )}
        {channel === 'EMAIL' && (
          <>
            {textInput('to', 'text', t('send.toHint'))}
            {textInput('subject')}
            {textInput('content')}
            {textInput('html')}
          </>
        )}
        {channel === 'WECOM' && (
          <>
            {textInput('key', 'password', t('send.keyHint'))}
            {field(
              'msgType',
              <select {...common('msgType')} onChange={(event) => set('msgType', event.currentTarget.value)}>
                {weComMsgTypes.map((type) => (
                  <option value={type}>{type}</option>
                ))}
              </select>,
            )}
            {textInput('content')}
            {values.msgType !== 'MARKDOWN' && (
              <>
                {textInput('mentionedList', 'text', t('send.mentionedListHint'))}
                {textInput('mentionedMobileList', 'text', t('send.mentionedMobileListHint'))}
              </>
            )}
          </>
        )}
        {channel === 'WEBHOOK' && (
          <>
            {textInput('url', 'url', t('send.urlHint'))}
            {textInput('secret', 'password')}
            {textInput('body')}
          </>
        )}
        {channel === 'SMS' && (
          <>
            {textInput('mobile', 'tel')}
            {textInput('content')}
          </>
        )}
        <ErrorMessage error={error} />
        <div>
          <button type="submit" class="button-primary" disabled={busy}>
            {t('send.submit')}
          </button>
        </div>
      </form>
      {sent && (
        <div class="result" role="status">
          <p>
            {t('send.accepted', { status: t(`status.${sent.status}`) })} <StatusBadge status={sent.status} />
          </p>
          <p>
            <a href={`${base}/deliveries/${encodeURIComponent(sent.id)}`} onClick={followLink}>
              {t('send.open', { id: sent.id })}
            </a>
          </p>
        </div>
      )}
    </section>
  );
}
