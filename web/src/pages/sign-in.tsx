import { useState } from 'preact/hooks';
import { UnauthorizedError } from '../api';
import { useI18n } from '../i18n';

export function SignIn({ onSignIn, notice }: { onSignIn(token: string): Promise<void>; notice?: 'sessionEnded' }) {
  const { t } = useI18n();
  const [token, setToken] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const submit = async (event: Event) => {
    event.preventDefault();
    const value = token.trim();
    if (!value) {
      setError(t('signIn.refused'));
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await onSignIn(value);
    } catch (failure) {
      setError(failure instanceof UnauthorizedError ? t('signIn.refused') : t('app.error', { message: (failure as Error).message }));
      setBusy(false);
    }
  };

  return (
    <section class="signin" aria-labelledby="signin-heading">
      <h1 id="signin-heading">{t('signIn.heading')}</h1>
      {notice === 'sessionEnded' && !error && <p class="notice">{t('app.sessionEnded')}</p>}
      <p class="muted">{t('signIn.intro')}</p>
      <form onSubmit={submit} class="stack">
        <div class="field">
          <label for="ops-token">{t('signIn.token')}</label>
          <input
            id="ops-token"
            name="ops-token"
            type="password"
            autocomplete="off"
            spellcheck={false}
            required
            value={token}
            onInput={(event) => setToken((event.currentTarget as HTMLInputElement).value)}
            aria-describedby={error ? 'signin-error' : undefined}
          />
        </div>
        {error && (
          <p id="signin-error" role="alert" class="error">
            {error}
          </p>
        )}
        <div>
          <button type="submit" class="button-primary" disabled={busy}>
            {t('signIn.submit')}
          </button>
        </div>
      </form>
    </section>
  );
}
