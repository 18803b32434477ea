import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { gql, subscribe, UnauthorizedError, type LiveState } from '../api';
import { Time } from '../format';
import {
  DeliveriesDocument,
  DeliveryUpdatesDocument,
  type Channel,
  type DeliveriesQuery,
  type DeliveriesQueryVariables,
  type DeliveryRowFragment,
  type DeliveryStatus,
} from '../graphql/generated';
import { useI18n } from '../i18n';
import { base, followLink, navigate, useLocation } from '../router';
import { channels, ErrorMessage, LiveIndicator, PageHeading, StatusBadge, statuses } from './common';

const pageSize = 50;

interface Filters {
  channel: Channel | '';
  status: DeliveryStatus | '';
  recipient: string;
  /** datetime-local values (the browser's zone), as in the URL */
  from: string;
  to: string;
}

const filterKeys = ['channel', 'status', 'recipient', 'from', 'to'] as const;

function filtersFrom(search: URLSearchParams): Filters {
  const channel = search.get('channel') ?? '';
  const status = search.get('status') ?? '';
  return {
    channel: (channels as string[]).includes(channel) ? (channel as Channel) : '',
    status: (statuses as string[]).includes(status) ? (status as DeliveryStatus) : '',
    recipient: search.get('recipient') ?? '',
    from: search.get('from') ?? '',
    to: search.get('to') ?? '',
  };
}

function hrefFor(filters: Filters, cursor?: { after?: string; before?: string }): string {
  const query = new URLSearchParams();
  for (const key of filterKeys) if (filters[key]) query.set(key, filters[key].trim());
  if (cursor?.after) query.set('after', cursor.after);
  if (cursor?.before) query.set('before', cursor.before);
  const text = query.toString();
  return `${base}/deliveries${text ? `?${text}` : ''}`;
}

/** A datetime-local value as an ISO instant, or undefined when empty or not a time. */
function isoOf(local: string): string | undefined {
  if (!local) return undefined;
  const date = new Date(local);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

function matches(delivery: DeliveryRowFragment, filters: Filters): boolean {
  if (filters.channel && delivery.channel !== filters.channel) return false;
  if (filters.status && delivery.status !== filters.status) return false;
  if (filters.recipient && delivery.recipient !== filters.recipient.trim()) return false;
  const created = Date.parse(delivery.createdAt);
  const from = isoOf(filters.from);
  const to = isoOf(filters.to);
  if (from && !(created > Date.parse(from))) return false;
  if (to && !(created < Date.parse(to))) return false;
  return true;
}

/** Newest first, ties by id (as the API orders them). */
const newestFirst = (a: DeliveryRowFragment, b: DeliveryRowFragment) =>
  Date.parse(b.createdAt) - Date.parse(a.createdAt) || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);

type PageInfo = DeliveriesQuery['deliveries']['pageInfo'];

function variablesFor(search: URLSearchParams): DeliveriesQueryVariables {
  const filters = filtersFrom(search);
  const after = search.get('after') ?? undefined;
  const before = search.get('before') ?? undefined;
  return {
    channel: filters.channel || undefined,
    status: filters.status || undefined,
    recipient: filters.recipient.trim() || undefined,
    createdAfter: isoOf(filters.from),
    createdBefore: isoOf(filters.to),
    ...(before ? { last: pageSize, before } : { first: pageSize, after }),
  };
}

/** A page asked for while the token was being checked (see prefetchDeliveries), once. */
let prefetched: { key: string; result: Promise<DeliveriesQuery> } | undefined;

/**
 * Signing in: the page of deliveries the URL names is asked for together with the viewer, not after it, so the table
 * shows one round trip sooner.
 */
export function prefetchDeliveries(token: string): void {
  const variables = variablesFor(new URLSearchParams(location.search));
  const result = gql(DeliveriesDocument, variables, { token });
  result.catch(() => undefined);
  prefetched = { key: JSON.stringify(variables), result };
}

function deliveriesPage(search: URLSearchParams, signal: AbortSignal): Promise<DeliveriesQuery> {
  const variables = variablesFor(search);
  const early = prefetched;
  prefetched = undefined;
  if (early && early.key === JSON.stringify(variables)) return early.result;
  return gql(DeliveriesDocument, variables, { signal });
}

export function DeliveriesPage() {
  const { t } = useI18n();
  const where = useLocation();
  const key = where.search.toString();
  const applied = filtersFrom(where.search);
  const after = where.search.get('after') ?? undefined;
  const before = where.search.get('before') ?? undefined;

  const [form, setForm] = useState<Filters>(applied);
  const [rows, setRows] = useState<DeliveryRowFragment[] | null>(null);
  const [pageInfo, setPageInfo] = useState<PageInfo | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [live, setLive] = useState<LiveState>('connecting');
  const [reloads, setReloads] = useState(0);

  // The form follows the URL (back, forward, a shared link).
  useEffect(() => setForm(filtersFrom(where.search)), [key]);

  const isFirstPage = !after && (!before || (pageInfo !== null && !pageInfo.hasPreviousPage));

  // A layout effect: the query leaves as soon as the page renders, not after the next frame.
  useLayoutEffect(() => {
    const controller = new AbortController();
    setError(null);
    deliveriesPage(where.search, controller.signal)
      .then((data) => {
        setRows(data.deliveries.edges.map((edge) => edge.node));
        setPageInfo(data.deliveries.pageInfo);
      })
      .catch((failure: Error) => {
        if (failure.name === 'AbortError' || failure instanceof UnauthorizedError) return;
        setError(t('app.error', { message: failure.message }));
        setRows([]);
      });
    return () => controller.abort();
  }, [key, reloads]);

  // Live: every change on the channel; rows on this page change in place, new ones matching the filters appear on top
  // of the first page.
  const state = useRef({ filters: applied, isFirstPage });
  state.current = { filters: applied, isFirstPage };
  useEffect(() => {
    return subscribe(
      DeliveryUpdatesDocument,
      { channel: applied.channel || undefined },
      {
        next: ({ deliveryUpdated: update }) =>
          setRows((current) => {
            if (!current) return current;
            const index = current.findIndex((row) => row.id === update.id);
            if (index >= 0) {
              if (Date.parse(update.updatedAt) < Date.parse(current[index].updatedAt)) return current;
              const next = current.slice();
              next[index] = update;
              return next;
            }
            const { filters, isFirstPage: first } = state.current;
            if (!first || !matches(update, filters)) return current;
            // In its place by creation time; on a full page, one older than every row shown falls off the end.
            return [update, ...current].sort(newestFirst).slice(0, pageSize);
          }),
        state: (liveState, reconnected) => {
          setLive(liveState);
          // Changes made while the stream was down were missed: read the page again.
          if (reconnected) setReloads((count) => count + 1);
        },
      },
    );
  }, [applied.channel]);

  // Typing in Recipient replaces the history entry; choosing a filter or submitting adds one.
  const apply = (next: Filters, replace = false) => navigate(hrefFor(next), { replace });
  const recipientTimer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  useEffect(() => () => clearTimeout(recipientTimer.current), []);
  const change = (field: keyof Filters, value: string, immediately: boolean) => {
    const next = { ...form, [field]: value } as Filters;
    setForm(next);
    clearTimeout(recipientTimer.current);
    if (immediately) apply(next);
    else recipientTimer.current = setTimeout(() => apply(next, true), 400);
  };
  const submit = (event: Event) => {
    event.preventDefault();
    clearTimeout(recipientTimer.current);
    apply(form);
  };
  const clear = () => apply({ channel: '', status: '', recipient: '', from: '', to: '' });
  const hasFilters = filterKeys.some((name) => applied[name]);

  return (
    <section aria-labelledby="page-title">
      <PageHeading actions={isFirstPage ? <LiveIndicator state={live} /> : <span class="muted small">{t('live.paused')}</span>}>
        <span id="page-title">{t('deliveries.heading')}</span>
      </PageHeading>
      <form class="filters" onSubmit={submit} aria-label={t('deliveries.filters')}>
        <div class="field">
          <label for="filter-channel">{t('deliveries.channel')}</label>
          <select id="filter-channel" value={form.channel} onChange={(event) => change('channel', event.currentTarget.value, true)}>
            <option value="">{t('deliveries.all')}</option>
            {channels.map((channel) => (
              <option value={channel}>{t(`channel.${channel}`)}</option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="filter-status">{t('deliveries.status')}</label>
          <select id="filter-status" value={form.status} onChange={(event) => change('status', event.currentTarget.value, true)}>
            <option value="">{t('deliveries.all')}</option>
            {statuses.map((status) => (
              <option value={status}>{t(`status.${status}`)}</option>
            ))}
          </select>
        </div>
        <div class="field field-wide">
          <label for="filter-recipient">{t('deliveries.recipient')}</label>
          <input
            id="filter-recipient"
            type="text"
            value={form.recipient}
            spellcheck={false}
            autocomplete="off"
            aria-describedby="filter-recipient-hint"
            onInput={(event) => change('recipient', event.currentTarget.value, false)}
          />
          <span id="filter-recipient-hint" class="hint">
            {t('deliveries.recipientHint')}
          </span>
        </div>
        <div class="field">
          <label for="filter-from">{t('deliveries.from')}</label>
          <input id="filter-from" type="datetime-local" value={form.from} onChange={(event) => change('from', event.currentTarget.value, true)} />
        </div>
        <div class="field">
          <label for="filter-to">{t('deliveries.to')}</label>
          <input id="filter-to" type="datetime-local" value={form.to} onChange={(event) => change('to', event.currentTarget.value, true)} />
        </div>
        <div class="filter-actions">
          <button type="submit" class="button-primary">
            {t('deliveries.apply')}
          </button>
          {hasFilters && (
            <button type="button" class="button-quiet" onClick={clear}>
              {t('deliveries.clear')}
            </button>
          )}
        </div>
      </form>
      <ErrorMessage error={error} />
      {rows === null ? (
        <p role="status" class="muted">
          {t('app.loading')}
        </p>
      ) : (
        <div class="table-wrap">
          <table class="deliveries">
            <caption class="visually-hidden">{t('deliveries.caption')}</caption>
            <thead>
              <tr>
                <th scope="col">{t('deliveries.colChannel')}</th>
                <th scope="col">{t('deliveries.colRecipient')}</th>
                <th scope="col">{t('deliveries.colStatus')}</th>
                <th scope="col" class="num">
                  {t('deliveries.colAttempts')}
                </th>
                <th scope="col">{t('deliveries.colCreated')}</th>
                <th scope="col">{t('deliveries.colUpdated')}</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((row) => (
                <tr key={row.id}>
                  <td>{t(`channel.${row.channel}`)}</td>
                  <td class="recipient">
                    <a href={`${base}/deliveries/${encodeURIComponent(row.id)}`} onClick={followLink}>
                      {row.recipient}
                    </a>
                  </td>
                  <td>
                    <StatusBadge status={row.status} />
                  </td>
                  <td class="num">{row.attempts}</td>
                  <td>
                    <Time iso={row.createdAt} />
                  </td>
                  <td>
                    <Time iso={row.updatedAt} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {rows.length === 0 && <p class="empty">{t('deliveries.empty')}</p>}
        </div>
      )}
      <nav class="paging" aria-label={t('deliveries.paging')}>
        <button
          type="button"
          disabled={!pageInfo || isFirstPage || (!!before && !pageInfo.hasPreviousPage) || !rows?.length}
          onClick={() => pageInfo?.startCursor && navigate(hrefFor(applied, { before: pageInfo.startCursor }))}
        >
          <span aria-hidden="true">←</span> {t('deliveries.newer')}
        </button>
        <button
          type="button"
          disabled={!pageInfo || (!before && !pageInfo.hasNextPage) || !rows?.length}
          onClick={() => pageInfo?.endCursor && navigate(hrefFor(applied, { after: pageInfo.endCursor }))}
        >
          {t('deliveries.older')} <span aria-hidden="true">→</span>
        </button>
      </nav>
    </section>
  );
}
