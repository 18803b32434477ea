import type { NewDeliveryRow } from '../db/schema';
import type { InsertOutcome, Store } from '../db/store';
import type { Logger } from '../logger';

/**
 * The store as the delivery service sees it, reporting what each insert decided (recorded, replayed, refused) so
 * that metrics and live subscriptions learn of new deliveries without another path through the service.
 * Every other method is the store's own.
 */
export function observeInserts(
  store: Store,
  onInsert: (outcome: InsertOutcome, row: NewDeliveryRow) => void,
  logger: Logger,
): Store {
  const insertDelivery: Store['insertDelivery'] = async (row, limits) => {
    const outcome = await store.insertDelivery(row, limits);
    try {
      onInsert(outcome, row);
    } catch (error) {
      logger.error({ err: error, deliveryId: row.id }, 'insert observer failed');
    }
    return outcome;
  };
  const bound = new Map<PropertyKey, unknown>();
  return new Proxy(store, {
    get(target, property) {
      if (property === 'insertDelivery') return insertDelivery;
      const value = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      let method = bound.get(property);
      if (!method) bound.set(property, (method = value.bind(target)));
      return method;
    },
  });
}
