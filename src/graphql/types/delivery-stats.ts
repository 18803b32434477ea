import { GraphQLError } from 'graphql';
import type { ChannelName, DeliveryStatus } from '../../db/schema';
import type { StatsRow } from '../../db/store';
import { builder } from '../builder';
import { ChannelEnum, DeliveryStatusEnum } from './delivery';

export const maxStatsBuckets = 1000;

const bucketWidths = { MINUTE: 60_000, HOUR: 3_600_000, DAY: 86_400_000 } as const;
type Bucket = keyof typeof bucketWidths;

const StatsBucketEnum = builder.enumType('StatsBucket', {
  description: 'Width of a time bucket; buckets are aligned on UTC minutes, hours and days',
  values: Object.keys(bucketWidths) as Bucket[],
});

interface StatusCountShape {
  channel: ChannelName;
  status: DeliveryStatus;
  count: number;
}

interface BucketShape {
  start: number;
  counts: StatusCountShape[];
}

interface StatsShape {
  from: number;
  to: number;
  bucket: Bucket;
  buckets: BucketShape[];
  totals: StatusCountShape[];
}

const sum = (counts: StatusCountShape[]) => counts.reduce((total, row) => total + row.count, 0);

const StatusCountRef = builder.objectRef<StatusCountShape>('DeliveryStatusCount').implement({
  fields: (t) => ({
    channel: t.field({ type: ChannelEnum, resolve: (row) => row.channel }),
    status: t.field({ type: DeliveryStatusEnum, resolve: (row) => row.status }),
    count: t.exposeInt('count'),
  }),
});

const BucketRef = builder.objectRef<BucketShape>('DeliveryStatsBucket').implement({
  fields: (t) => ({
    start: t.field({ type: 'DateTime', description: 'Inclusive; the bucket ends where the next one starts', resolve: (bucket) => new Date(bucket.start) }),
    counts: t.field({
      type: [StatusCountRef],
      description: 'Non-zero counts only, by channel then status',
      resolve: (bucket) => bucket.counts,
    }),
    total: t.int({ resolve: (bucket) => sum(bucket.counts) }),
  }),
});

const StatsRef = builder.objectRef<StatsShape>('DeliveryStats').implement({
  description:
    'Deliveries created in [from, to), counted by the time bucket of their creation, channel and current status',
  fields: (t) => ({
    from: t.field({ type: 'DateTime', resolve: (stats) => new Date(stats.from) }),
    to: t.field({ type: 'DateTime', resolve: (stats) => new Date(stats.to) }),
    bucket: t.field({ type: StatsBucketEnum, resolve: (stats) => stats.bucket }),
    buckets: t.field({
      type: [BucketRef],
      description: 'Every bucket that overlaps the window, oldest first, empty ones included',
      resolve: (stats) => stats.buckets,
    }),
    totals: t.field({
      type: [StatusCountRef],
      description: 'Non-zero counts over the whole window, by channel then status',
      resolve: (stats) => stats.totals,
    }),
    total: t.int({ resolve: (stats) => sum(stats.totals) }),
  }),
});

function invalid(message: string, path: string): GraphQLError {
  return new GraphQLError(message, { extensions: { code: 'INVALID_ARGUMENT', fieldErrors: [{ path, message }] } });
}

/** Dense buckets from the rows the store grouped, plus the totals over the window. */
export function shapeStats(rows: StatsRow[], from: number, to: number, bucket: Bucket): StatsShape {
  const width = bucketWidths[bucket];
  const first = Math.floor(from / width) * width;
  const buckets: BucketShape[] = [];
  const byStart = new Map<number, BucketShape>();
  for (let start = first; start < to; start += width) {
    const shape = { start, counts: [] };
    buckets.push(shape);
    byStart.set(start, shape);
  }
  const totals = new Map<string, StatusCountShape>();
  for (const row of rows) {
    byStart.get(row.bucketStart)?.counts.push({ channel: row.channel, status: row.status, count: row.count });
    const key = `${row.channel}:${row.status}`;
    const total = totals.get(key) ?? { channel: row.channel, status: row.status, count: 0 };
    total.count += row.count;
    totals.set(key, total);
  }
  const order = (a: StatusCountShape, b: StatusCountShape) =>
    a.channel.localeCompare(b.channel) || a.status.localeCompare(b.status);
  return { from, to, bucket, buckets, totals: [...totals.values()].sort(order) };
}

builder.queryField('deliveryStats', (t) =>
  t.field({
    type: StatsRef,
    description:
      `Counts for dashboards: deliveries created in [from, to) by time bucket, channel and current status, and totals. ` +
      `At most ${maxStatsBuckets} buckets per query. A token that may read only its own deliveries counts only those.`,
    args: {
      from: t.arg({ type: 'DateTime', required: true }),
      to: t.arg({ type: 'DateTime', required: true }),
      bucket: t.arg({ type: StatsBucketEnum, defaultValue: 'HOUR', required: true }),
      channel: t.arg({ type: ChannelEnum }),
    },
    resolve: async (_root, args, context) => {
      const from = args.from.getTime();
      const to = args.to.getTime();
      if (!(to > from)) throw invalid('`to` must be later than `from`', 'to');
      const width = bucketWidths[args.bucket];
      const count = Math.ceil((to - Math.floor(from / width) * width) / width);
      if (count > maxStatsBuckets) {
        throw invalid(
          `The window spans ${count} ${args.bucket.toLowerCase()} buckets; at most ${maxStatsBuckets} are allowed: narrow it or use a wider bucket`,
          'bucket',
        );
      }
      const rows = await context.service.deliveryStats(
        { from, to, bucketMs: width, channel: args.channel ?? undefined },
        context.caller,
      );
      return shapeStats(rows, from, to, args.bucket);
    },
  }),
);
