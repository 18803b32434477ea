import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import { gql, UnauthorizedError } from '../api';
import type { Viewer } from '../app';
import { axisTime, localTime, shortAge, Time } from '../format';
import {
  DeliveryQueueDocument,
  DeliveryStatsDocument,
  type Channel,
  type DeliveryQueueQuery,
  type DeliveryStatsQuery,
  type DeliveryStatus,
} from '../graphql/generated';
import { useI18n, type MessageKey } from '../i18n';
import { channels, ErrorMessage, PageHeading } from './common';

type Range = 'day' | 'week';
const hours: Record<Range, number> = { day: 24, week: 168 };
/** One colour per channel, each at least 3:1 against the white background. */
const channelColours: Record<Channel, string> = {
  DING: '#1d5fd1',
  EMAIL: '#b4530a',
  SMS: '#2f7d32',
  FEISHU: '#00796b',
  WECOM: '#7b1fa2',
  WEBHOOK: '#5f6368',
};
const charts: { status: DeliveryStatus; title: MessageKey }[] = [
  { status: 'SENT', title: 'overview.sent' },
  { status: 'FAILED', title: 'overview.failed' },
  { status: 'RETRYING', title: 'overview.retrying' },
];

type Stats = DeliveryStatsQuery['deliveryStats'];
type Queue = NonNullable<DeliveryQueueQuery['deliveryQueue']>;

function windowOf(range: Range, now = Date.now()) {
  const hour = 3_600_000;
  const from = Math.floor(now / hour) * hour - (hours[range] - 1) * hour;
  return { from: new Date(from).toISOString(), to: new Date(now).toISOString() };
}

export function OverviewPage({ viewer }: { viewer: Viewer }) {
  const { t } = useI18n();
  const [range, setRange] = useState<Range>('day');
  const [stats, setStats] = useState<Stats | null>(null);
  const [queue, setQueue] = useState<Queue | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [tick, setTick] = useState(0);
  const readsAll = viewer.read === 'ALL';

  useEffect(() => {
    const timer = setInterval(() => setTick((count) => count + 1), 30_000);
    return () => clearInterval(timer);
  }, []);

  useEffect(() => {
    const controller = new AbortController();
    const fail = (failure: Error) => {
      if (failure.name === 'AbortError' || failure instanceof UnauthorizedError) return;
      setError(t('app.error', { message: failure.message }));
    };
    gql(DeliveryStatsDocument, { ...windowOf(range), bucket: 'HOUR' }, { signal: controller.signal })
      .then((data) => {
        setStats(data.deliveryStats);
        setError(null);
      })
      .catch(fail);
    if (readsAll) {
      gql(DeliveryQueueDocument, {}, { signal: controller.signal })
        .then((data) => setQueue(data.deliveryQueue))
        .catch(fail);
    }
    return () => controller.abort();
  }, [range, tick, readsAll]);

  return (
    <section>
      <PageHeading>{t('overview.heading')}</PageHeading>
      <div class="segmented" role="group" aria-label={t('overview.range')}>
        {(['day', 'week'] as const).map((option) => (
          <button type="button" aria-pressed={range === option} onClick={() => setRange(option)}>
            {t(option === 'day' ? 'overview.day' : 'overview.week')}
          </button>
        ))}
      </div>
      <ErrorMessage error={error} />
      <h2>{t('overview.queue')}</h2>
      {readsAll ? <QueuePanel queue={queue} /> : <p class="muted">{t('overview.queueNeedsAll')}</p>}
      {stats && <p class="muted">{t('overview.total', { count: stats.total })}</p>}
      <div class="legend" aria-hidden="true">
        {channels.map((channel) => (
          <span class="legend-item">
            <span class={`swatch swatch-${channel.toLowerCase()}`} />
            {t(`channelName.${channel}`)}
          </span>
        ))}
      </div>
      <div class="charts">
        {charts.map((chart) => (
          <StatusChart key={chart.status} stats={stats} status={chart.status} title={t(chart.title)} range={range} />
        ))}
      </div>
    </section>
  );
}

function QueuePanel({ queue }: { queue: Queue | null }) {
  const { t, lang } = useI18n();
  if (!queue) return <p class="muted">{t('app.loading')}</p>;
  return (
    <dl class="queue">
      <div class="stat">
        <dt>{t('overview.depth')}</dt>
        <dd class="stat-value">{queue.depth}</dd>
        <dd class="stat-detail">
          {channels
            .map((channel) => `${t(`channelName.${channel}`)} ${queue.byChannel.find((entry) => entry.channel === channel)?.count ?? 0}`)
            .join(' · ')}
        </dd>
      </div>
      <div class="stat">
        <dt>{t('overview.oldest')}</dt>
        {queue.oldestPendingAt ? (
          <>
            <dd class="stat-value">{t('overview.oldestAge', { age: shortAge(queue.oldestPendingAgeSeconds ?? 0, lang) })}</dd>
            <dd class="stat-detail">
              <Time iso={queue.oldestPendingAt} />
            </dd>
          </>
        ) : (
          <dd class="stat-value stat-none">{t('overview.nothingPending')}</dd>
        )}
      </div>
    </dl>
  );
}

function seriesOf(stats: Stats, status: DeliveryStatus) {
  const x = stats.buckets.map((bucket) => Date.parse(bucket.start) / 1000);
  const perChannel = channels.map((channel) =>
    stats.buckets.map((bucket) => bucket.counts.find((count) => count.channel === channel && count.status === status)?.count ?? 0),
  );
  return { x, perChannel };
}

function StatusChart({ stats, status, title, range }: { stats: Stats | null; status: DeliveryStatus; title: string; range: Range }) {
  const { t } = useI18n();
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const data = stats ? seriesOf(stats, status) : null;

  useEffect(() => {
    if (!box.current || !data) return;
    const width = Math.max(280, box.current.clientWidth);
    const aligned: uPlot.AlignedData = [data.x, ...data.perChannel];
    if (plot.current) {
      plot.current.setData(aligned);
      return;
    }
    const axis = { stroke: '#3b4452', grid: { stroke: '#e3e7ee', width: 1 }, ticks: { stroke: '#c9d0db', width: 1 } };
    plot.current = new uPlot(
      {
        width,
        height: 200,
        legend: { show: false },
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(4, Math.ceil(max * 1.1))] } },
        axes: [
          {
            ...axis,
            // The same unambiguous times as the tables, not uPlot's US-style 12/1/26.
            values: (_u: uPlot, splits: number[]) =>
              splits.map((split, index) => axisTime(split, index === 0 || new Date(split * 1000).getDate() !== new Date(splits[index - 1] * 1000).getDate())),
          },
          { ...axis, size: 44 },
        ],
        series: [
          {},
          ...channels.map((channel) => ({
            label: channel,
            stroke: channelColours[channel],
            width: 2,
            points: { show: false },
          })),
        ],
      },
      aligned,
      box.current,
    );
  }, [data && JSON.stringify(data)]);

  useEffect(() => {
    const element = box.current;
    if (!element) return;
    const observer = new ResizeObserver(() => {
      if (plot.current) plot.current.setSize({ width: Math.max(280, element.clientWidth), height: 200 });
    });
    observer.observe(element);
    return () => {
      observer.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
  }, []);

  const totals = data
    ? channels.map((channel, index) => `${t(`channelName.${channel}`)} ${data.perChannel[index].reduce((sum, count) => sum + count, 0)}`).join(', ')
    : '';
  const summary = t('overview.summary', { title, range: t(range === 'day' ? 'overview.day' : 'overview.week'), totals });

  return (
    <figure class="chart">
      <figcaption id={`chart-${status}`}>{title}</figcaption>
      <div ref={box} class="chart-canvas" role="img" aria-label={data ? summary : t('app.loading')} />
      {data && (
        <details>
          <summary>{t('overview.showTable')}</summary>
          {/* Scrolls when long: focusable so that a keyboard can scroll it too. */}
          <div class="table-wrap" tabIndex={0} role="region" aria-labelledby={`chart-${status}`}>
            <table>
              <caption class="visually-hidden">{summary}</caption>
              <thead>
                <tr>
                  <th scope="col">{t('overview.colHour')}</th>
                  {channels.map((channel) => (
                    <th scope="col" class="num">
                      {t(`channelName.${channel}`)}
                    </th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {data.x.map((seconds, row) => (
                  <tr>
                    <th scope="row">{localTime(new Date(seconds * 1000).toISOString())}</th>
                    {data.perChannel.map((counts) => (
                      <td class="num">{counts[row]}</td>
                    ))}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </details>
      )}
    </figure>
  );
}
