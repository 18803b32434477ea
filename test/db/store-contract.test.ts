import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DeliveryRow } from '../../src/db/schema';
import { redactedPayload } from '../../src/db/store-rules';
import { reservationId, type NewAttempt, type PacingWindow, type RecipientLimit, type Store, type StoreKind } from '../../src/db/store';
import { postgresAvailable } from '../support/postgres';
import { deliveryRow, openTestStores, type TestStores } from '../support/stores';

// One contract, both stores: every test below runs against SQLite and against PostgreSQL, and the PostgreSQL run opens
// several stores on one database where the property is about several processes.

const kinds: StoreKind[] = ['sqlite', 'postgres'];
const minuteMs = 60_000;

const attempt = (overrides: Partial<NewAttempt> = {}): NewAttempt => ({
  number: 1,
  startedAt: Date.now(),
  durationMs: 5,
  outcome: 'SENT',
  providerCode: null,
  providerMessage: null,
  ...overrides,
});

describe.each(kinds)('Store contract: %s', (kind) => {
  const skip = kind === 'postgres' && !postgresAvailable();
  let stores: TestStores;
  let store: Store;

  beforeEach(async () => {
    if (skip) return;
    stores = await openTestStores(kind);
    store = stores.store;
  });
  afterEach(async () => {
    if (skip) return;
    await stores.close();
  });

  const test = skip ? it.skip : it;

  async function created(overrides: Parameters<typeof deliveryRow>[0] = {}, limits?: RecipientLimit[]): Promise<DeliveryRow> {
    const outcome = await store.insertDelivery(deliveryRow(overrides), limits);
    if (outcome.kind !== 'created') throw new Error(`not created: ${outcome.kind}`);
    return outcome.delivery;
  }

  test('says what it is: the kind, and whether other processes share it', () => {
    expect(store.kind).toBe(kind);
    expect(store.shared).toBe(kind === 'postgres');
    expect(Boolean(store.changes)).toBe(kind === 'postgres');
  });

  test('hands back the row it stored, with numbers as numbers and absent values as null', async () => {
    const row = deliveryRow({ sealedSecrets: 'v1.sealed', idempotencyKey: 'k-1', requestHash: 'h' });
    const outcome = await store.insertDelivery(row);
    const expected = {
      ...row,
      attempts: 0,
      lastErrorCode: null,
      lastErrorMessage: null,
      providerMessageId: null,
      claimedUntil: null,
      sentAt: null,
      digestId: null,
      contentRedactedAt: null,
    };
    expect(outcome).toEqual({ kind: 'created', delivery: expected });
    expect(await store.getDelivery(row.id)).toEqual(expected);
    expect(typeof (await store.getDelivery(row.id))!.createdAt).toBe('number');
    expect(await store.getDeliveries([row.id, 'dlv_missing'])).toEqual([expected]);
    expect(await store.getDelivery('dlv_missing')).toBeUndefined();
  });

  test('lists newest first with every filter, and pages by keyset in both directions', async () => {
    const base = Date.now() - 100_000;
    const rows: DeliveryRow[] = [];
    for (let n = 0; n < 12; n++) {
      rows.push(
        await created({
          createdAt: base + n * 1000,
          channel: n % 2 === 0 ? 'EMAIL' : 'SMS',
          recipient: n % 3 === 0 ? '+8613800138000' : `r${n}@example.com`,
          callerId: n < 6 ? 'env:1' : 'tok_b',
        }),
      );
    }
    const newestFirst = [...rows].reverse().map((row) => row.id);
    const ids = (list: DeliveryRow[]) => list.map((row) => row.id);
    expect(ids(await store.listDeliveries({}, { limit: 20, inverted: false }))).toEqual(newestFirst);
    expect(ids(await store.listDeliveries({ channel: 'SMS' }, { limit: 20, inverted: false }))).toEqual(
      newestFirst.filter((_id, index) => rows[11 - index].channel === 'SMS'),
    );
    expect(ids(await store.listDeliveries({ recipient: '+8613800138000' }, { limit: 20, inverted: false }))).toHaveLength(4);
    expect(ids(await store.listDeliveries({ callerId: 'tok_b', status: 'QUEUED' }, { limit: 20, inverted: false }))).toEqual(
      newestFirst.slice(0, 6),
    );
    expect(
      ids(await store.listDeliveries({ createdAfter: base + 3000, createdBefore: base + 7000 }, { limit: 20, inverted: false })),
    ).toEqual([rows[6], rows[5], rows[4]].map((row) => row.id));
    const firstPage = await store.listDeliveries({}, { limit: 5, inverted: false });
    const last = firstPage.at(-1)!;
    const next = await store.listDeliveries({}, { limit: 5, inverted: false, after: { createdAt: last.createdAt, id: last.id } });
    expect(ids(next)).toEqual(newestFirst.slice(5, 10));
    const back = await store.listDeliveries({}, { limit: 5, inverted: true, before: { createdAt: next[0].createdAt, id: next[0].id } });
    expect(ids(back).reverse()).toEqual(newestFirst.slice(0, 5));
  });

  test('the same idempotency key from many writers at once: one delivery, the others get it back', async () => {
    const writers = [store, await stores.another(), await stores.another()];
    const outcomes = await Promise.all(
      Array.from({ length: 30 }, (_, n) => writers[n % 3].insertDelivery(deliveryRow({ idempotencyKey: 'same-key', requestHash: 'h' }))),
    );
    const createdOnes = outcomes.filter((outcome) => outcome.kind === 'created');
    expect(createdOnes).toHaveLength(1);
    const id = createdOnes[0].kind === 'created' ? createdOnes[0].delivery.id : '';
    for (const outcome of outcomes) expect(outcome.kind === 'limited' ? undefined : outcome.delivery.id).toBe(id);
    // Another caller may use the same key for its own delivery.
    expect((await store.insertDelivery(deliveryRow({ idempotencyKey: 'same-key', callerId: 'tok_other' }))).kind).toBe('created');
  });

  test('a recipient limit holds exactly when many writers race for the last places', async () => {
    const limit: RecipientLimit = { windowMs: minuteMs, max: 3, label: '3 a minute' };
    const writers = [store, await stores.another(), await stores.another()];
    const outcomes = await Promise.all(
      Array.from({ length: 12 }, (_, n) =>
        writers[n % 3].insertDelivery(deliveryRow({ channel: 'SMS', recipient: '+8613800138000' }), [limit]),
      ),
    );
    expect(outcomes.filter((outcome) => outcome.kind === 'created')).toHaveLength(3);
    const limited = outcomes.filter((outcome) => outcome.kind === 'limited');
    expect(limited).toHaveLength(9);
    for (const outcome of limited) {
      if (outcome.kind !== 'limited') continue;
      expect(outcome.limit).toBe(limit);
      expect(outcome.retryAfterMs).toBeGreaterThan(minuteMs - 5000);
      // Until the oldest counted send leaves the window; writers stamp their rows a few ms apart.
      expect(outcome.retryAfterMs).toBeLessThanOrEqual(minuteMs + 1000);
    }
    // Other numbers and other channels are counted apart.
    expect((await store.insertDelivery(deliveryRow({ channel: 'SMS', recipient: '+8613900139000' }), [limit])).kind).toBe('created');
    expect((await store.insertDelivery(deliveryRow({ channel: 'EMAIL', recipient: '+8613800138000' }), [limit])).kind).toBe('created');
  });

  test('a cancelled delivery leaves its place; an idempotent repeat never counts against the limit', async () => {
    const limit: RecipientLimit = { windowMs: minuteMs, max: 1, label: '1 a minute' };
    const first = await created({ channel: 'SMS', recipient: '+8613800138000', idempotencyKey: 'k', requestHash: 'h' }, [limit]);
    const repeat = await store.insertDelivery(deliveryRow({ channel: 'SMS', recipient: '+8613800138000', idempotencyKey: 'k' }), [limit]);
    expect(repeat).toMatchObject({ kind: 'existing', delivery: { id: first.id } });
    expect((await store.insertDelivery(deliveryRow({ channel: 'SMS', recipient: '+8613800138000' }), [limit])).kind).toBe('limited');
    await store.transition(first.id, ['QUEUED'], { status: 'CANCELLED', nextAttemptAt: null });
    expect((await store.insertDelivery(deliveryRow({ channel: 'SMS', recipient: '+8613800138000' }), [limit])).kind).toBe('created');
  });

  test('a per-caller limit counts every channel of that caller', async () => {
    const limit: RecipientLimit = { windowMs: minuteMs, max: 2, label: '2 a minute per token', scope: 'caller' };
    const writers = [store, await stores.another()];
    const outcomes = await Promise.all(
      Array.from({ length: 6 }, (_, n) =>
        writers[n % 2].insertDelivery(deliveryRow({ callerId: 'tok_a', channel: n % 2 ? 'SMS' : 'EMAIL', recipient: `r${n}` }), [limit]),
      ),
    );
    expect(outcomes.filter((outcome) => outcome.kind === 'created')).toHaveLength(2);
    expect((await store.insertDelivery(deliveryRow({ callerId: 'tok_b' }), [limit])).kind).toBe('created');
  });

  test('claims only what is due, and never hands one delivery to two claimers', async () => {
    const now = Date.now();
    const due = await Promise.all(Array.from({ length: 60 }, (_, n) => created({ recipient: `r${n}@example.com`, nextAttemptAt: now - n })));
    await created({ nextAttemptAt: now + 60_000 });
    const claimers = [store, await stores.another(), await stores.another()];
    const claimed: DeliveryRow[][] = [[], [], []];
    await Promise.all(
      claimers.map(async (claimer, index) => {
        for (;;) {
          const batch = await claimer.claimDue(now, 7, now + 30_000);
          if (batch.length === 0) return;
          claimed[index].push(...batch);
        }
      }),
    );
    const all = claimed.flat();
    expect(all).toHaveLength(60);
    expect(new Set(all.map((row) => row.id)).size).toBe(60);
    expect(new Set(all.map((row) => row.id))).toEqual(new Set(due.map((row) => row.id)));
    for (const row of all) expect(row).toMatchObject({ status: 'SENDING', claimedUntil: now + 30_000, updatedAt: now });
  });

  test('records an attempt under its claim; a lapsed claim only counts the attempt', async () => {
    const delivery = await created();
    const now = Date.now();
    const [claimed] = await store.claimDue(now, 1, now + 30_000);
    const sent = await store.finishAttempt(
      delivery.id,
      attempt({ startedAt: now, durationMs: 12 }),
      { status: 'SENT', sentAt: now + 12, attempts: 1, claimedUntil: null, nextAttemptAt: null, providerMessageId: 'm-1' },
      claimed.claimedUntil!,
    );
    expect(sent).toMatchObject({ status: 'SENT', attempts: 1, providerMessageId: 'm-1', claimedUntil: null, updatedAt: now + 12 });
    // A late report from a claim that is no longer held: recorded with the next number, the state stays.
    const late = await store.finishAttempt(
      delivery.id,
      attempt({ number: 1, outcome: 'RETRYABLE', providerCode: '421' }),
      { status: 'RETRYING', nextAttemptAt: now },
      now - 1,
    );
    expect(late).toMatchObject({ status: 'SENT', attempts: 2 });
    expect((await store.listAttempts(delivery.id)).map((row) => [row.number, row.outcome, row.durationMs])).toEqual([
      [1, 'SENT', 12],
      [2, 'RETRYABLE', 5],
    ]);
  });

  test('a patch cannot change what a delivery is (its recipient, payload or caller)', async () => {
    const delivery = await created();
    await expect(store.transition(delivery.id, ['QUEUED'], { recipient: 'x@example.com' } as never)).rejects.toThrow(/cannot set recipient/);
    expect(await store.getDelivery(delivery.id)).toMatchObject({ recipient: delivery.recipient, status: 'QUEUED' });
    expect(await store.transition(delivery.id, ['FAILED'], { status: 'QUEUED' })).toBeUndefined();
  });

  test('hands back lapsed claims (or all of them) as INTERRUPTED attempts that count', async () => {
    const now = Date.now();
    const lapsed = await created({ recipient: 'a@example.com', nextAttemptAt: now - 3 });
    const held = await created({ recipient: 'b@example.com', nextAttemptAt: now - 2 });
    const lastChance = await created({ recipient: 'c@example.com', attempts: 2, sealedSecrets: 'v1.x', nextAttemptAt: now - 1 });
    await store.claimDue(now, 1, now - 1); // the oldest first: `lapsed`
    await store.claimDue(now, 1, now + 60_000);
    await store.claimDue(now, 1, now - 1);
    const released = await store.releaseClaims(now, 3, 'lapsed');
    expect(released.map((row) => row.id).sort()).toEqual([lapsed.id, lastChance.id].sort());
    expect(await store.getDelivery(lapsed.id)).toMatchObject({ status: 'RETRYING', attempts: 1, lastErrorCode: 'INTERRUPTED', nextAttemptAt: now });
    expect(await store.getDelivery(lastChance.id)).toMatchObject({ status: 'FAILED', attempts: 3, sealedSecrets: null });
    expect(await store.getDelivery(held.id)).toMatchObject({ status: 'SENDING' });
    expect((await store.listAttempts(lapsed.id)).map((row) => [row.number, row.outcome])).toEqual([[1, 'INTERRUPTED']]);
    expect((await store.releaseClaims(now, 3, 'all')).map((row) => row.id)).toEqual([held.id]);
  });

  test('pacing: a recipient gets at most its allowance, whichever writer asks, and the others are given turns', async () => {
    const robot = 'robot:abc';
    const now = Date.now();
    await Promise.all(Array.from({ length: 8 }, () => created({ channel: 'DING', recipient: robot, nextAttemptAt: now })));
    const claimers = [store, await stores.another(), await stores.another()];
    const claimed = await store.claimDue(now, 8, now + 30_000);
    expect(claimed).toHaveLength(8);
    const windows: PacingWindow[] = [];
    const outcomes = await Promise.all(
      claimed.map((delivery, index) =>
        claimers[index % 3].reservePacingSlot(
          { channel: 'DING', recipient: robot, deliveryId: delivery.id, number: 1, now, windowMs: minuteMs, longestAttemptMs: minuteMs, muteMs: 10 * minuteMs, expiresAt: now + 30_000 },
          (window) => {
            windows.push(window);
            return window.attemptEnds.length + window.underway < 5 ? undefined : now + minuteMs + window.turns.length;
          },
        ),
      ),
    );
    expect(outcomes.filter((outcome) => outcome.reserved)).toHaveLength(5);
    const deferred = outcomes.filter((outcome) => !outcome.reserved);
    expect(deferred).toHaveLength(3);
    // Decided one at a time: each saw the reservations before it, and the turns given out before it.
    expect(windows.map((window) => window.underway + window.turns.length)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    for (const outcome of deferred) {
      if (outcome.reserved) continue;
      expect(outcome.delivery).toMatchObject({ status: 'QUEUED', claimedUntil: null, nextAttemptAt: outcome.turn, attempts: 0 });
    }
    // Recording an attempt ends its reservation in the same transaction; the attempt counts instead.
    const reservedIds = claimed.filter((_row, index) => outcomes[index].reserved).map((row) => row.id);
    // Under its claim (the usual case) and without one (a store may take another path for each).
    await store.finishAttempt(reservedIds[0], attempt({ startedAt: now }), { status: 'SENT', attempts: 1, claimedUntil: null }, now + 30_000);
    await store.finishAttempt(reservedIds[1], attempt({ startedAt: now }), { status: 'SENT', attempts: 1, claimedUntil: null });
    let seen: PacingWindow | undefined;
    await store.reservePacingSlot(
      { channel: 'DING', recipient: robot, deliveryId: 'dlv_probe', number: 1, now, windowMs: minuteMs, longestAttemptMs: minuteMs, muteMs: 10 * minuteMs, expiresAt: now + 1 },
      (window) => {
        seen = window;
        return now + 1;
      },
    );
    expect(seen).toMatchObject({ attemptEnds: [now + 5, now + 5], underway: 3, mutedAt: undefined });
    expect(seen!.turns).toHaveLength(3);
    // A reservation whose process died stops counting when its claim would have lapsed.
    await store.reservePacingSlot(
      { channel: 'DING', recipient: robot, deliveryId: 'dlv_probe', number: 1, now: now + 30_000, windowMs: minuteMs, longestAttemptMs: minuteMs, muteMs: 10 * minuteMs, expiresAt: now + 60_000 },
      (window) => {
        seen = window;
        return now + 1;
      },
    );
    expect(seen!.underway).toBe(0);
    expect(reservationId('dlv_x', 2)).toBe('dlv_x#2');
  });

  test('pacing: a rate-limited attempt within the mute is reported', async () => {
    const robot = 'robot:muted';
    const now = Date.now();
    const delivery = await created({ channel: 'DING', recipient: robot });
    await store.finishAttempt(delivery.id, attempt({ startedAt: now - 1000, outcome: 'RATE_LIMITED', providerCode: '130101' }), {
      status: 'RETRYING',
      attempts: 1,
      nextAttemptAt: now + 10 * minuteMs,
    });
    let seen: PacingWindow | undefined;
    await store.reservePacingSlot(
      { channel: 'DING', recipient: robot, deliveryId: 'dlv_other', number: 1, now, windowMs: minuteMs, longestAttemptMs: minuteMs, muteMs: 10 * minuteMs, expiresAt: now + 1 },
      (window) => {
        seen = window;
        return undefined;
      },
    );
    expect(seen).toEqual({ attemptEnds: [now - 995], underway: 0, mutedAt: now - 1000, turns: [now + 10 * minuteMs] });
  });

  test('pacing: an attempt counts until a window after it ended, the latest the provider can have received it', async () => {
    const robot = 'robot:slow';
    const now = Date.now();
    const [slow, quick, old] = await Promise.all([1, 2, 3].map(() => created({ channel: 'DING', recipient: robot })));
    // Started before the window, answered inside it: the provider may have counted it inside its own minute.
    await store.finishAttempt(slow.id, attempt({ startedAt: now - minuteMs - 2000, durationMs: 2500 }), { status: 'SENT', attempts: 1 });
    await store.finishAttempt(quick.id, attempt({ startedAt: now - 1000, durationMs: 20 }), { status: 'SENT', attempts: 1 });
    // Ended before the window: no longer counted.
    await store.finishAttempt(old.id, attempt({ startedAt: now - minuteMs - 5000, durationMs: 100 }), { status: 'SENT', attempts: 1 });
    let seen: PacingWindow | undefined;
    await store.reservePacingSlot(
      { channel: 'DING', recipient: robot, deliveryId: 'dlv_probe', number: 1, now, windowMs: minuteMs, longestAttemptMs: minuteMs, muteMs: 10 * minuteMs, expiresAt: now + 1 },
      (window) => {
        seen = window;
        return now + 1;
      },
    );
    expect(seen!.attemptEnds).toEqual([now - minuteMs + 500, now - 980]);
  });

  test('digests: folds what waits for the recipient past the threshold, never one delivery twice, and settles them', async () => {
    const robot = 'robot:digest';
    const now = Date.now();
    const rows = [];
    for (let n = 0; n < 40; n++) rows.push(await created({ channel: 'DING', recipient: robot, createdAt: now + n, nextAttemptAt: now + n }));
    await created({ channel: 'DING', recipient: 'robot:other', nextAttemptAt: now + 1000 });
    const cancelled = rows[10]!;
    await store.transition(cancelled.id, ['QUEUED'], { status: 'CANCELLED', nextAttemptAt: null });
    const carriers = await store.claimDue(now + 3, 4, now + 30_000);
    expect(carriers.map((row) => row.id).sort()).toEqual(rows.slice(0, 4).map((row) => row.id).sort());
    const request = (carrier: DeliveryRow) => ({
      channel: 'DING' as const,
      recipient: robot,
      carrierId: carrier.id,
      claimedUntil: carrier.claimedUntil!,
      now,
      threshold: 19,
      limit: 100,
    });
    // Four carriers, on as many connections, fold at once: each takes up to 12 of those waiting, oldest first.
    const writers = [store, await stores.another(), await stores.another(), await stores.another()];
    const seen: number[] = [];
    const folds = await Promise.all(
      carriers.map((carrier, index) =>
        writers[index]!.foldDigest(request(carrier), (waiting) => {
          seen.push(waiting.length);
          expect(waiting.map((row) => row.id)).not.toContain(cancelled.id);
          return waiting.slice(0, 12).map((row) => row.id);
        }),
      ),
    );
    const folded = folds.flat();
    // 35 waited (40, less 4 carriers and 1 cancelled): 12 and 12 folded, then 11 (not above 19) left to go alone.
    expect(folded).toHaveLength(24);
    expect(new Set(folded.map((row) => row.id)).size).toBe(24);
    expect(folds.filter((fold) => fold.length > 0)).toHaveLength(2);
    for (const row of folded) expect(row).toMatchObject({ status: 'SENDING', attempts: 0 });
    const [first, second] = folds.flatMap((fold, index) => (fold.length > 0 ? [{ fold, carrier: carriers[index]! }] : []));
    expect(first!.fold.every((row) => row.digestId === first!.carrier.id && row.claimedUntil === first!.carrier.claimedUntil)).toBe(true);
    expect((await store.listFolded(first!.carrier.id)).map((row) => row.id).sort()).toEqual(
      [first!.carrier.id, ...first!.fold.map((row) => row.id)].sort(),
    );

    // Sent: SENT, no attempt of their own. Not sent: back in the queue, due now, no longer folded (the carrier too).
    const sent = await store.settleDigest(first!.carrier.id, true, now + 100);
    expect(sent).toHaveLength(12);
    for (const row of sent) expect(row).toMatchObject({ status: 'SENT', sentAt: now + 100, digestId: first!.carrier.id, attempts: 0, claimedUntil: null });
    const back = await store.settleDigest(second!.carrier.id, false, now + 100);
    expect(back).toHaveLength(12);
    for (const row of back) expect(row).toMatchObject({ status: 'QUEUED', nextAttemptAt: now + 100, digestId: null, claimedUntil: null });
    expect((await store.getDelivery(second!.carrier.id))!.digestId).toBeNull();
    expect(await store.listFolded(second!.carrier.id)).toEqual([]);
    // The other robot's delivery was never a candidate.
    expect(seen.every((count) => count <= 35)).toBe(true);
  });

  test('digests: a fold for a carrier that no longer holds its claim folds nothing', async () => {
    const robot = 'robot:lapsed';
    const now = Date.now();
    for (let n = 0; n < 30; n++) await created({ channel: 'DING', recipient: robot, createdAt: now + n, nextAttemptAt: now + n });
    const [carrier] = await store.claimDue(now, 1, now + 30_000);
    await expect(
      store.foldDigest(
        { channel: 'DING', recipient: robot, carrierId: carrier!.id, claimedUntil: carrier!.claimedUntil! + 1, now, threshold: 19, limit: 100 },
        (waiting) => waiting.map((row) => row.id),
      ),
    ).rejects.toThrow(/no longer held/);
    expect(await store.listFolded(carrier!.id)).toEqual([]);
    expect((await store.listDeliveries({ status: 'QUEUED' }, { limit: 100, inverted: false })).length).toBe(29);
  });

  test('counts for dashboards and metrics', async () => {
    const hour = 3_600_000;
    const base = Math.floor(Date.now() / (2 * hour)) * 2 * hour - 2 * hour;
    await created({ createdAt: base + 10, channel: 'EMAIL' });
    await created({ createdAt: base + 20, channel: 'SMS', recipient: '+8613800138000' });
    const late = await created({ createdAt: base + hour + 5, channel: 'EMAIL', callerId: 'tok_b' });
    await store.transition(late.id, ['QUEUED'], { status: 'CANCELLED' });
    expect(await store.deliveryStats({ from: base, to: base + 2 * hour, bucketMs: hour })).toEqual([
      { bucketStart: base, channel: 'EMAIL', status: 'QUEUED', count: 1 },
      { bucketStart: base, channel: 'SMS', status: 'QUEUED', count: 1 },
      { bucketStart: base + hour, channel: 'EMAIL', status: 'CANCELLED', count: 1 },
    ]);
    expect(await store.deliveryStats({ from: base, to: base + 2 * hour, bucketMs: hour, callerId: 'tok_b' })).toHaveLength(1);
    expect(await store.deliveryStats({ from: base, to: base + 2 * hour, bucketMs: 2 * hour, channel: 'EMAIL' })).toEqual([
      { bucketStart: base, channel: 'EMAIL', status: 'CANCELLED', count: 1 },
      { bucketStart: base, channel: 'EMAIL', status: 'QUEUED', count: 1 },
    ]);
    const sort = <T extends { channel: string }>(rows: T[]) => [...rows].sort((a, b) => a.channel.localeCompare(b.channel));
    expect(sort(await store.countPending())).toEqual([
      { channel: 'EMAIL', count: 1 },
      { channel: 'SMS', count: 1 },
    ]);
    expect(await store.oldestPendingCreatedAt()).toBe(base + 10);
    expect((await store.countByStatus()).reduce((sum, row) => sum + row.count, 0)).toBe(3);
  });

  test('tokens: stored by hash, listed, revoked once, touched', async () => {
    const row = { id: 'tok_1', name: 'ci', tokenHash: 'a'.repeat(64), scopes: '{"channels":["EMAIL"],"read":"own"}', createdAt: 1, revokedAt: null, lastUsedAt: null };
    await store.insertToken(row);
    expect(await store.findTokenByHash(row.tokenHash)).toEqual(row);
    await store.touchToken('tok_1', 50);
    expect(await store.listTokens()).toEqual([{ ...row, lastUsedAt: 50 }]);
    // Revoked through one connection, refused through every other from its next lookup.
    const other = await stores.another();
    expect(await store.revokeToken('ci', 99)).toBe(true);
    expect(await store.revokeToken('tok_1', 100)).toBe(false);
    expect((await other.findTokenByHash(row.tokenHash))?.revokedAt).toBe(99);
  });

  const dayMs = 86_400_000;

  test('retention: purges final deliveries created before the cut with their attempts, never pending ones, and unlinks digests', async () => {
    const now = Date.now();
    const old = now - 100 * dayMs;
    const oldSent = await created({ status: 'SENT', createdAt: old });
    await store.finishAttempt(oldSent.id, attempt({ startedAt: old }), {});
    const oldFailed = await created({ status: 'FAILED', createdAt: old + 1 });
    const oldCancelled = await created({ status: 'CANCELLED', createdAt: old + 2 });
    const carrier = await created({ status: 'SENT', createdAt: old + 3 });
    await store.transition(carrier.id, ['SENT'], { digestId: carrier.id });
    const folded = await created({ status: 'SENT', createdAt: now - 89 * dayMs, digestId: carrier.id });
    const pending = await Promise.all((['QUEUED', 'RETRYING', 'SENDING'] as const).map((status, n) => created({ status, createdAt: old + 10 + n })));
    const recent = await created({ status: 'SENT', createdAt: now - 10 * dayMs });
    await store.finishAttempt(recent.id, attempt(), {});

    const cut = now - 90 * dayMs;
    const batches: number[] = [];
    for (let purged = -1; purged !== 0; ) {
      const step = await store.purgeFinal(cut, 3);
      expect(step.transactionMs).toBeGreaterThanOrEqual(0);
      batches.push((purged = step.count));
    }
    expect(batches).toEqual([3, 1, 0]);
    for (const gone of [oldSent, oldFailed, oldCancelled, carrier]) {
      expect(await store.getDelivery(gone.id)).toBeUndefined();
      expect(await store.listAttempts(gone.id)).toEqual([]);
    }
    const left = await store.getDeliveries([folded.id, recent.id, ...pending.map((row) => row.id)]);
    expect(left.map((row) => row.status).sort()).toEqual(['QUEUED', 'RETRYING', 'SENDING', 'SENT', 'SENT']);
    expect((await store.getDelivery(folded.id))!.digestId).toBeNull();
    expect(await store.listAttempts(recent.id)).toHaveLength(1);
  });

  test('retention: redacts the content of final deliveries older than the content window, once, and nothing else', async () => {
    const now = Date.now();
    const content = { payload: JSON.stringify({ to: ['ops@example.com'], subject: 'disk full', text: 'on db-3' }), sealedSecrets: 'v1.sealed' };
    const old = await created({ ...content, status: 'FAILED', createdAt: now - 10 * dayMs });
    const oldPending = await created({ ...content, status: 'RETRYING', createdAt: now - 10 * dayMs });
    const recent = await created({ ...content, status: 'SENT', createdAt: now - dayMs });

    expect((await store.redactContent(now - 7 * dayMs, 500, now)).count).toBe(1);
    expect((await store.redactContent(now - 7 * dayMs, 500, now + 1)).count).toBe(0);
    expect(await store.getDelivery(old.id)).toMatchObject({ payload: redactedPayload, sealedSecrets: null, contentRedactedAt: now, status: 'FAILED' });
    for (const kept of [oldPending, recent]) {
      expect(await store.getDelivery(kept.id)).toMatchObject({ ...content, contentRedactedAt: null });
    }
  });

  test('exclusively: across processes one pass at a time; alone on its database, always', async () => {
    const other = await stores.another();
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const first = store.exclusively('retention', async () => {
      await held;
      return 'first';
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const meanwhile = await other.exclusively('retention', async () => 'second');
    release();
    expect(await first).toBe('first');
    if (kind === 'postgres') {
      expect(meanwhile).toBeUndefined();
      expect(await other.exclusively('retention', async () => 'after')).toBe('after');
    } else {
      expect(meanwhile).toBe('second');
    }
  });

  test('erasure: the address leaves every delivery it was in, its lists keep the others, and pending ones are cancelled', async () => {
    const now = Date.now();
    const alone = await created({ recipient: 'a@x.com', status: 'FAILED', idempotencyKey: 'welcome-a@x.com', lastErrorMessage: '550 5.1.1 <A@x.com>: no such user' });
    await store.finishAttempt(alone.id, attempt({ outcome: 'PERMANENT', providerCode: '550', providerMessage: '550 5.1.1 <A@x.com>: no such user' }), {});
    const listed = await created({ recipient: 'b@y.com, a@x.com', status: 'SENT', payload: JSON.stringify({ to: ['b@y.com', 'A@x.com'], subject: 's' }) });
    const copied = await created({ recipient: 'c@y.com', status: 'SENT', payload: JSON.stringify({ to: ['c@y.com'], cc: ['a@x.com'], subject: 's' }) });
    const waiting = await created({ recipient: 'a@x.com', status: 'QUEUED', idempotencyKey: 'k-2' });
    const others = await Promise.all([
      created({ recipient: 'ba@x.com', payload: JSON.stringify({ to: ['ba@x.com'], subject: 'hi a@x' }), status: 'SENT' }),
      created({ recipient: '+8613800138000', channel: 'SMS', payload: JSON.stringify({ mobile: '+8613800138000' }), status: 'SENT' }),
    ]);

    const erased = await store.eraseRecipient({ address: 'a@x.com', spellings: ['a@x.com'], marker: 'erased:m1', now });
    expect(erased).toBe(4);
    expect(await store.getDelivery(alone.id)).toMatchObject({
      recipient: 'erased:m1',
      payload: redactedPayload,
      idempotencyKey: null,
      requestHash: null,
      lastErrorMessage: '550 5.1.1 <erased:m1>: no such user',
      contentRedactedAt: now,
    });
    expect(await store.listAttempts(alone.id)).toMatchObject([{ recipient: 'erased:m1', providerMessage: '550 5.1.1 <erased:m1>: no such user' }]);
    expect(await store.getDelivery(listed.id)).toMatchObject({ recipient: 'b@y.com, erased:m1', payload: redactedPayload });
    expect(await store.getDelivery(copied.id)).toMatchObject({ recipient: 'c@y.com', payload: redactedPayload });
    expect(await store.getDelivery(waiting.id)).toMatchObject({ recipient: 'erased:m1', status: 'CANCELLED', nextAttemptAt: null, idempotencyKey: 'k-2' });
    expect(await store.getDeliveries(others.map((row) => row.id))).toEqual(expect.arrayContaining(others));
    expect(await store.eraseRecipient({ address: 'a@x.com', spellings: ['a@x.com'], marker: 'erased:m2', now })).toBe(0);
  });

  test('answers a ping and knows its migrations are current', async () => {
    expect(await store.ping()).toBe(true);
    expect(await store.migrationsCurrent()).toBe(true);
  });
});
