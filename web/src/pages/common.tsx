import type { ComponentChildren } from 'preact';
import { useEffect, useRef } from 'preact/hooks';
import type { LiveState } from '../api';
import type { Channel, DeliveryStatus } from '../graphql/generated';
import { useI18n } from '../i18n';

/** Every channel, in the API's order (the Channel enum); the send page offers those it has a form for. */
export const channels: Channel[] = ['DING', 'EMAIL', 'SMS', 'FEISHU', 'WECOM', 'WEBHOOK'];
export const statuses: DeliveryStatus[] = ['QUEUED', 'SENDING', 'SENT', 'RETRYING', 'FAILED', 'CANCELLED'];

export function StatusBadge({ status }: { status: DeliveryStatus }) {
  const { t } = useI18n();
  return <span class={`badge badge-${status.toLowerCase()}`}>{t(`status.${status}`)}</span>;
}

export function LiveIndicator({ state }: { state: LiveState }) {
  const { t } = useI18n();
  const text = state === 'live' ? t('live.on') : state === 'connecting' ? t('live.connecting') : t('live.off');
  return (
    <span class={`live live-${state}`} role="status">
      <span class="live-dot" aria-hidden="true" />
      {text}
    </span>
  );
}

/**
 * A page's heading, focused when the page opens (after a link in the navigation, say) so that screen readers announce
 * it and the keyboard continues from there; never taken from someone typing in a field.
 */
export function PageHeading({ children, actions }: { children: ComponentChildren; actions?: ComponentChildren }) {
  const ref = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    if (!document.activeElement?.matches('input, select, textarea')) ref.current?.focus({ preventScroll: true });
  }, []);
  return (
    <div class="page-head">
      <h1 ref={ref} tabIndex={-1}>
        {children}
      </h1>
      {actions}
    </div>
  );
}

export function ErrorMessage({ error }: { error: string | null }) {
  if (!error) return null;
  return (
    <p role="alert" class="error">
      {error}
    </p>
  );
}
