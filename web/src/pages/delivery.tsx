import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { gql, subscribe, UnauthorizedError, type LiveState } from '../api';
import { Time } from '../format';
import {
  CancelDeliveryDocument,
  DeliveryDocument,
  FollowDeliveryDocument,
  RetryDeliveryDocument,
  type DeliveryFullFragment,
} from '../graphql/generated';
import { useI18n } from '../i18n';
import { base, followLink } from '../router';
import { ErrorMessage, LiveIndicator, PageHeading, StatusBadge } from './common';

const finalStatuses = new Set(['SENT', 'FAILED', 'CANCELLED']);

export function DeliveryPage({ id }: { id: string }) {
  const { t } = useI18n();
  const [delivery, setDelivery] = useState<DeliveryFullFragment | null | undefined>(undefined);
  const [error, setError] = useState<string | null>(null);
  const [actionError, setActionError] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [live, setLive] = useState<LiveState | 'ended'>('connecting');
  /** Bumped after a retry: a delivery that had ended is followed again. */
  const [follow, setFollow] = useState(0);

  useEffect(() => {
    const controller = new AbortController();
    gql(DeliveryDocument, { id }, { signal: controller.signal })
      .then((data) => setDelivery(data.delivery))
      .catch((failure: Error) => {
        if (failure.name === 'AbortError' || failure instanceof UnauthorizedError) return;
        setError(t('app.error', { message: failure.message }));
        setDelivery(null);
      });
    return () => controller.abort();
  }, [id]);

  useEffect(() => {
    setLive('connecting');
    return subscribe(
      FollowDeliveryDocument,
      { id },
      {
        next: ({ deliveryUpdated }) =>
          setDelivery((current) =>
            current && Date.parse(deliveryUpdated.updatedAt) < Date.parse(current.updatedAt) ? current : deliveryUpdated,
          ),
        state: (state) => setLive(state),
        complete: () => setLive('ended'),
      },
    );
  }, [id, follow]);

  const act = async (action: 'retry' | 'cancel') => {
    setBusy(true);
    setActionError(null);
    setDone(null);
    try {
      const result =
        action === 'retry'
          ? (await gql(RetryDeliveryDocument, { id })).retryDelivery
          : (await gql(CancelDeliveryDocument, { id })).cancelDelivery;
      if (result.__typename === 'Delivery') {
        setDelivery(result);
        setDone(action === 'retry' ? t('delivery.retried') : t('delivery.cancelled'));
        if (action === 'retry') setFollow((count) => count + 1);
      } else {
        setActionError(result.message);
      }
    } catch (failure) {
      if (!(failure instanceof UnauthorizedError)) setActionError(t('app.error', { message: (failure as Error).message }));
    } finally {
      setBusy(false);
    }
  };

  const back = (
    <p class="back">
      <a href={`${base}/deliveries`} onClick={followLink}>
        <span aria-hidden="true">← </span>
        {t('delivery.back')}
      </a>
    </p>
  );

  if (delivery === undefined) {
    return (
      <section>
        {back}
        <p role="status" class="muted">
          {t('app.loading')}
        </p>
      </section>
    );
  }
  if (delivery === null) {
    return (
      <section>
        {back}
        <PageHeading>{t('delivery.heading', { id })}</PageHeading>
        <ErrorMessage error={error} />
        {!error && <p>{t('delivery.notFound')}</p>}
      </section>
    );
  }

  const isFinal = finalStatuses.has(delivery.status);
  const none = t('delivery.none');
  const fields: [string, ComponentChildren][] = [
    [t('delivery.id'), <code>{delivery.id}</code>],
    [t('delivery.channel'), t(`channel.${delivery.channel}`)],
    [t('delivery.status'), <StatusBadge status={delivery.status} />],
    [t('delivery.provider'), delivery.provider],
    [t('delivery.recipient'), <span class="break">{delivery.recipient}</span>],
    [t('delivery.attempts'), String(delivery.attempts)],
    [
      t('delivery.lastError'),
      delivery.lastError ? (
        <span class="break">
          <code>{delivery.lastError.code}</code> {delivery.lastError.message}
        </span>
      ) : (
        none
      ),
    ],
    [t('delivery.providerMessageId'), delivery.providerMessageId ? <code class="break">{delivery.providerMessageId}</code> : none],
    [t('delivery.idempotencyKey'), delivery.idempotencyKey ? <code class="break">{delivery.idempotencyKey}</code> : none],
    [t('delivery.nextAttemptAt'), <Time iso={delivery.nextAttemptAt} />],
    [t('delivery.createdAt'), <Time iso={delivery.createdAt} />],
    [t('delivery.updatedAt'), <Time iso={delivery.updatedAt} />],
    [t('delivery.sentAt'), <Time iso={delivery.sentAt} />],
  ];
  if (delivery.digest) {
    const carrierId = delivery.digest.id;
    fields.push([
      t('delivery.digest'),
      carrierId === delivery.id ? (
        t('delivery.digestCarrier', { count: String(delivery.foldedDeliveries.length) })
      ) : (
        <span>
          {t('delivery.foldedInto')}{' '}
          <a href={`${base}/deliveries/${encodeURIComponent(carrierId)}`} onClick={followLink}>
            <code>{carrierId}</code>
          </a>
        </span>
      ),
    ]);
  }

  return (
    <section>
      {back}
      <PageHeading actions={live === 'ended' || isFinal ? undefined : <LiveIndicator state={live} />}>
        {t('delivery.heading', { id: delivery.id })}
      </PageHeading>
      {(delivery.viewerCanRetry || delivery.viewerCanCancel) && (
        <div class="actions" role="group" aria-label={t('delivery.actions')}>
          {delivery.viewerCanRetry && (
            <button type="button" class="button-primary" disabled={busy} onClick={() => act('retry')}>
              {t('delivery.retry')}
            </button>
          )}
          {delivery.viewerCanCancel && (
            <button type="button" class="button-danger" disabled={busy} onClick={() => act('cancel')}>
              {t('delivery.cancel')}
            </button>
          )}
        </div>
      )}
      <ErrorMessage error={actionError} />
      {done && (
        <p role="status" class="success">
          {done}
        </p>
      )}
      <h2>{t('delivery.fields')}</h2>
      <dl class="fields">
        {fields.map(([label, value]) => (
          <div class="field-row">
            <dt>{label}</dt>
            <dd>{value}</dd>
          </div>
        ))}
      </dl>
      <h2 id="timeline-heading">{t('delivery.timeline')}</h2>
      {delivery.attemptLog.length === 0 ? (
        <p class="muted">{t('delivery.noAttempts')}</p>
      ) : (
        // On a narrow screen the table scrolls sideways: focusable, so that a keyboard can scroll it too.
        <div class="table-wrap" tabIndex={0} role="region" aria-labelledby="timeline-heading">
          <table aria-labelledby="timeline-heading" class="timeline">
            <thead>
              <tr>
                <th scope="col" class="num">
                  {t('delivery.colNumber')}
                </th>
                <th scope="col">{t('delivery.colStarted')}</th>
                <th scope="col" class="num">
                  {t('delivery.colDuration')}
                </th>
                <th scope="col">{t('delivery.colOutcome')}</th>
                <th scope="col">{t('delivery.colCode')}</th>
                <th scope="col">{t('delivery.colMessage')}</th>
              </tr>
            </thead>
            <tbody>
              {delivery.attemptLog.map((attempt) => (
                <tr key={attempt.number}>
                  <td class="num">{attempt.number}</td>
                  <td>
                    <Time iso={attempt.startedAt} />
                  </td>
                  <td class="num">{t('delivery.durationMs', { ms: attempt.durationMs })}</td>
                  <td>
                    <span class={`outcome outcome-${attempt.outcome.toLowerCase()}`}>{t(`outcome.${attempt.outcome}`)}</span>
                  </td>
                  <td>{attempt.providerCode ? <code>{attempt.providerCode}</code> : none}</td>
                  <td class="break">{attempt.providerMessage ?? none}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
