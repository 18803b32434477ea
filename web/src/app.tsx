import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { gql, onUnauthorized, UnauthorizedError } from './api';
import { ViewerDocument, type ViewerQuery } from './graphql/generated';
import { I18nContext, initialLang, rememberLang, translator, useI18n, type Lang, type MessageKey } from './i18n';
import { DeliveriesPage, prefetchDeliveries } from './pages/deliveries';
import { DeliveryPage } from './pages/delivery';
import { OverviewPage } from './pages/overview';
import { SendPage } from './pages/send';
import { SignIn } from './pages/sign-in';
import { TokensPage } from './pages/tokens';
import { base, followLink, navigate, useLocation } from './router';
import { clearToken, readToken, saveToken } from './session';

export type Viewer = ViewerQuery['viewer'];

type Session = { state: 'checking' } | { state: 'signedOut'; notice?: 'sessionEnded' } | { state: 'signedIn'; viewer: Viewer };

export function App() {
  const [lang, setLang] = useState<Lang>(initialLang);
  const i18n = useMemo(() => ({ lang, t: translator(lang) }), [lang]);
  const { t } = i18n;
  const [session, setSession] = useState<Session>(() => (readToken() ? { state: 'checking' } : { state: 'signedOut' }));
  const where = useLocation();
  const onDeliveries = where.path === `${base}/deliveries`;

  const pageTitle = session.state === 'signedIn' ? titleOf(where.path) : 'signIn.heading';
  useEffect(() => {
    document.documentElement.lang = lang;
    document.title = `${t(pageTitle)} · ${t('app.title')} · notify-gateway`;
  }, [lang, t, pageTitle]);

  // A token kept from earlier in this tab: check it is still accepted.
  useEffect(() => {
    if (session.state !== 'checking') return;
    const token = readToken();
    if (token && onDeliveries) prefetchDeliveries(token);
    gql(ViewerDocument, {})
      .then((data) => setSession({ state: 'signedIn', viewer: data.viewer }))
      .catch((error) => {
        if (error instanceof UnauthorizedError) clearToken();
        setSession({ state: 'signedOut', notice: error instanceof UnauthorizedError ? 'sessionEnded' : undefined });
      });
  }, [session.state]);

  useEffect(() => {
    onUnauthorized(() => {
      clearToken();
      setSession({ state: 'signedOut', notice: 'sessionEnded' });
    });
  }, []);

  const signIn = useCallback(async (token: string) => {
    if (onDeliveries) prefetchDeliveries(token);
    const data = await gql(ViewerDocument, {}, { token });
    saveToken(token);
    setSession({ state: 'signedIn', viewer: data.viewer });
  }, [onDeliveries]);

  const signOut = () => {
    clearToken();
    setSession({ state: 'signedOut' });
    navigate(`${base}/deliveries`, { replace: true });
  };

  const switchLang = () => {
    const next: Lang = lang === 'en' ? 'zh-CN' : 'en';
    rememberLang(next);
    setLang(next);
  };

  const mainRef = useRef<HTMLElement>(null);
  const page = session.state === 'signedIn' ? route(where.path, session.viewer) : null;

  return (
    <I18nContext.Provider value={i18n}>
      <a class="skip" href="#main">
        {t('app.skip')}
      </a>
      <header class="top">
        <div class="brand">
          <span class="brand-mark" aria-hidden="true">
            ◆
          </span>{' '}
          {t('app.title')}
        </div>
        {session.state === 'signedIn' && (
          <nav aria-label={t('nav.label')}>
            <ul>
              <NavLink href={`${base}/deliveries`} active={where.path.startsWith(`${base}/deliveries`)} label={t('nav.deliveries')} />
              <NavLink href={`${base}/overview`} active={where.path === `${base}/overview`} label={t('nav.overview')} />
              <NavLink href={`${base}/send`} active={where.path === `${base}/send`} label={t('nav.send')} />
              {session.viewer.admin && (
                <NavLink href={`${base}/tokens`} active={where.path === `${base}/tokens`} label={t('nav.tokens')} />
              )}
            </ul>
          </nav>
        )}
        <div class="top-tools">
          {session.state === 'signedIn' && (
            <span class="viewer" title={t('app.signedInAs', { name: session.viewer.name })}>
              {session.viewer.name}
            </span>
          )}
          <button
            type="button"
            class="button-quiet"
            lang={lang === 'en' ? 'zh-CN' : 'en'}
            title={t('app.languageLabel')}
            onClick={switchLang}
          >
            {t('app.language')}
          </button>
          {session.state === 'signedIn' && (
            <button type="button" class="button-quiet" onClick={signOut}>
              {t('app.signOut')}
            </button>
          )}
        </div>
      </header>
      <main id="main" ref={mainRef} tabIndex={-1}>
        {session.state === 'checking' && <p role="status">{t('app.loading')}</p>}
        {session.state === 'signedOut' && <SignIn onSignIn={signIn} notice={session.notice} />}
        {page}
      </main>
    </I18nContext.Provider>
  );
}

function NavLink({ href, active, label }: { href: string; active: boolean; label: string }) {
  return (
    <li>
      <a href={href} onClick={followLink} aria-current={active ? 'page' : undefined}>
        {label}
      </a>
    </li>
  );
}

function titleOf(path: string): MessageKey {
  if (path.startsWith(`${base}/deliveries`)) return 'nav.deliveries';
  if (path === `${base}/overview`) return 'nav.overview';
  if (path === `${base}/send`) return 'nav.send';
  if (path === `${base}/tokens`) return 'nav.tokens';
  return 'app.title';
}

function route(path: string, viewer: Viewer) {
  const delivery = /^\/console\/deliveries\/([^/]+)$/.exec(path);
  if (delivery) return <DeliveryPage key={delivery[1]} id={decodeURIComponent(delivery[1])} />;
  switch (path) {
    case `${base}/deliveries`:
      return <DeliveriesPage />;
    case `${base}/overview`:
      return <OverviewPage viewer={viewer} />;
    case `${base}/send`:
      return <SendPage />;
    case `${base}/tokens`:
      return <TokensPage viewer={viewer} />;
    default:
      return <NotFound />;
  }
}

function NotFound() {
  const { t } = useI18n();
  return <p>{t('app.notFound')}</p>;
}
