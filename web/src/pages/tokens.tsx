import { useEffect, useRef, useState } from 'preact/hooks';
import { gql, UnauthorizedError } from '../api';
import type { Viewer } from '../app';
import { Time } from '../format';
import {
  ApiTokensDocument,
  CreateApiTokenDocument,
  RevokeApiTokenDocument,
  type ApiTokenFieldsFragment,
  type Channel,
  type ReadScope,
} from '../graphql/generated';
import { useI18n } from '../i18n';
import { channels, ErrorMessage, PageHeading } from './common';

const readScopes: ReadScope[] = ['NONE', 'OWN', 'ALL'];

export function TokensPage({ viewer }: { viewer: Viewer }) {
  const { t } = useI18n();
  if (!viewer.admin) {
    return (
      <section>
        <PageHeading>{t('tokens.heading')}</PageHeading>
        <p class="notice">{t('tokens.needsAdmin')}</p>
      </section>
    );
  }
  return <TokenAdmin />;
}

function TokenAdmin() {
  const { t } = useI18n();
  const [tokens, setTokens] = useState<ApiTokenFieldsFragment[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const [confirming, setConfirming] = useState<string | null>(null);
  const [created, setCreated] = useState<string | null>(null);

  const fail = (failure: unknown) => {
    if (failure instanceof UnauthorizedError || (failure as Error).name === 'AbortError') return;
    setError(t('app.error', { message: (failure as Error).message }));
  };

  useEffect(() => {
    const controller = new AbortController();
    gql(ApiTokensDocument, {}, { signal: controller.signal })
      .then((data) => setTokens(data.apiTokens))
      .catch(fail);
    return () => controller.abort();
  }, []);

  const revoke = async (token: ApiTokenFieldsFragment) => {
    setError(null);
    setMessage(null);
    try {
      const result = (await gql(RevokeApiTokenDocument, { id: token.id })).revokeApiToken;
      if (result.__typename === 'ApiToken') {
        setTokens((current) => current?.map((item) => (item.id === result.id ? result : item)) ?? null);
        setMessage(t('tokens.revoked', { name: result.name }));
      } else {
        setError(result.message);
      }
    } catch (failure) {
      fail(failure);
    } finally {
      setConfirming(null);
    }
  };

  return (
    <section>
      <PageHeading>{t('tokens.heading')}</PageHeading>
      <ErrorMessage error={error} />
      {message && (
        <p role="status" class="success">
          {message}
        </p>
      )}
      <h2 id="tokens-list">{t('tokens.list')}</h2>
      {tokens === null ? (
        <p class="muted">{t('app.loading')}</p>
      ) : tokens.length === 0 ? (
        <p class="muted">{t('tokens.empty')}</p>
      ) : (
        <div class="table-wrap">
          <table aria-labelledby="tokens-list">
            <thead>
              <tr>
                <th scope="col">{t('tokens.colName')}</th>
                <th scope="col">{t('tokens.colChannels')}</th>
                <th scope="col">{t('tokens.colRead')}</th>
                <th scope="col">{t('tokens.colCreated')}</th>
                <th scope="col">{t('tokens.colLastUsed')}</th>
                <th scope="col">{t('tokens.colRevoked')}</th>
                <th scope="col">{t('tokens.colActions')}</th>
              </tr>
            </thead>
            <tbody>
              {tokens.map((token) => (
                <tr key={token.id} class={token.revokedAt ? 'revoked' : undefined}>
                  <td>{token.name}</td>
                  <td>{token.channels.length > 0 ? token.channels.map((channel) => t(`channel.${channel}`)).join(', ') : t('delivery.none')}</td>
                  <td>{t(`tokens.read.${token.read}`)}</td>
                  <td>
                    <Time iso={token.createdAt} />
                  </td>
                  <td>{token.lastUsedAt ? <Time iso={token.lastUsedAt} /> : t('tokens.never')}</td>
                  <td>{token.revokedAt ? <Time iso={token.revokedAt} /> : t('tokens.active')}</td>
                  <td>
                    {!token.revokedAt &&
                      (confirming === token.id ? (
                        <div class="confirm">
                          <span>{t('tokens.confirmQuestion', { name: token.name })}</span>
                          <button type="button" class="button-danger" onClick={() => revoke(token)}>
                            {t('tokens.confirm')}
                          </button>
                          <button type="button" class="button-quiet" onClick={() => setConfirming(null)}>
                            {t('tokens.keep')}
                          </button>
                        </div>
                      ) : (
                        <button type="button" class="button-quiet" onClick={() => setConfirming(token.id)}>
                          {t('tokens.revoke')}
                        </button>
                      ))}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {created && <NewToken token={created} onDone={() => setCreated(null)} />}
      <CreateToken
        onCreated={(token, apiToken) => {
          setCreated(token);
          setMessage(null);
          setTokens((current) => [apiToken, ...(current ?? []).filter((item) => item.id !== apiToken.id)]);
        }}
      />
    </section>
  );
}

function NewToken({ token, onDone }: { token: string; onDone(): void }) {
  const { t } = useI18n();
  const [copied, setCopied] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => input.current?.select(), []);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(token);
    } catch {
      input.current?.select();
      document.execCommand('copy');
    }
    setCopied(true);
  };
  return (
    <div class="new-token" role="status">
      <p>{t('tokens.created')}</p>
      <div class="field">
        <label for="new-token">{t('tokens.newToken')}</label>
        <div class="inline">
          <input id="new-token" ref={input} type="text" readOnly value={token} spellcheck={false} class="mono" />
          <button type="button" onClick={copy}>
            {t('tokens.copy')}
          </button>
          <button type="button" class="button-quiet" onClick={onDone}>
            {t('tokens.dismiss')}
          </button>
        </div>
      </div>
      {copied && <p class="success">{t('tokens.copied')}</p>}
    </div>
  );
}

function CreateToken({ onCreated }: { onCreated(token: string, apiToken: ApiTokenFieldsFragment): void }) {
  const { t } = useI18n();
  const [name, setName] = useState('');
  const [chosen, setChosen] = useState<Channel[]>([...channels]);
  const [read, setRead] = useState<ReadScope>('OWN');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [fieldErrors, setFieldErrors] = useState<Record<string, string[]>>({});

  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    setFieldErrors({});
    try {
      const result = (await gql(CreateApiTokenDocument, { name: name.trim(), channels: chosen, read })).createApiToken;
      if (result.__typename === 'CreatedApiToken') {
        onCreated(result.token, result.apiToken);
        setName('');
      } else if (result.__typename === 'ValidationError') {
        const byField: Record<string, string[]> = {};
        const elsewhere: string[] = [];
        for (const fieldError of result.fieldErrors) {
          const field = fieldError.path.replace(/^input\./, '').split('.')[0];
          if (field === 'name' || field === 'channels' || field === 'read') (byField[field] ??= []).push(fieldError.message);
          else elsewhere.push(`${fieldError.path}: ${fieldError.message}`);
        }
        setFieldErrors(byField);
        setError(elsewhere.length ? `${result.message} ${elsewhere.join('; ')}` : null);
      } else {
        setError(result.message);
      }
    } catch (failure) {
      if (!(failure instanceof UnauthorizedError)) setError(t('app.error', { message: (failure as Error).message }));
    } finally {
      setBusy(false);
    }
  };
  const errorOf = (field: string) =>
    fieldErrors[field] ? (
      <p id={`token-${field}-error`} class="field-error">
        {fieldErrors[field].map((message) => (
          <span class="field-error-item">{message}</span>
        ))}
      </p>
    ) : null;
  const describedBy = (field: string) => (fieldErrors[field] ? `token-${field}-error` : undefined);

  return (
    <form class="stack create-token" onSubmit={submit} noValidate>
      <h2 id="create-token-heading">{t('tokens.create')}</h2>
      <div class={`field${fieldErrors.name ? ' field-invalid' : ''}`}>
        <label for="token-name">{t('tokens.name')}</label>
        <input
          id="token-name"
          type="text"
          autocomplete="off"
          value={name}
          aria-invalid={fieldErrors.name ? true : undefined}
          aria-describedby={describedBy('name')}
          onInput={(event) => setName(event.currentTarget.value)}
        />
        {errorOf('name')}
      </div>
      <fieldset class="checks" aria-describedby={describedBy('channels')}>
        <legend>{t('tokens.channels')}</legend>
        {channels.map((channel) => (
          <label class="check">
            <input
              type="checkbox"
              checked={chosen.includes(channel)}
              onChange={(event) =>
                setChosen((current) =>
                  event.currentTarget.checked ? channels.filter((item) => item === channel || current.includes(item)) : current.filter((item) => item !== channel),
                )
              }
            />
            {channel}
          </label>
        ))}
        {errorOf('channels')}
      </fieldset>
      <div class="field">
        <label for="token-read">{t('tokens.read')}</label>
        <select
          id="token-read"
          value={read}
          aria-describedby={describedBy('read')}
          onChange={(event) => setRead(event.currentTarget.value as ReadScope)}
        >
          {readScopes.map((scope) => (
            <option value={scope}>{t(`tokens.read.${scope}`)}</option>
          ))}
        </select>
        {errorOf('read')}
      </div>
      <ErrorMessage error={error} />
      <div>
        <button type="submit" class="button-primary" disabled={busy}>
          {t('tokens.submit')}
        </button>
      </div>
    </form>
  );
}
