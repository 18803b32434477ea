import type { apiTokens, deliveries, deliveryAttempts, pacingReservations } from './sqlite-schema';
import type * as postgres from './postgres-schema';

export * from './enums';

export type DeliveryRow = typeof deliveries.$inferSelect;
export type NewDeliveryRow = typeof deliveries.$inferInsert;
export type AttemptRow = typeof deliveryAttempts.$inferSelect;
export type ApiTokenRow = typeof apiTokens.$inferSelect;
export type PacingReservationRow = typeof pacingReservations.$inferSelect;

// Both stores hand out the same rows: a column added to one schema and not the other fails to compile here.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const rowsMatch: [
  Same<DeliveryRow, typeof postgres.deliveries.$inferSelect>,
  Same<NewDeliveryRow, typeof postgres.deliveries.$inferInsert>,
  Same<AttemptRow, typeof postgres.deliveryAttempts.$inferSelect>,
  Same<ApiTokenRow, typeof postgres.apiTokens.$inferSelect>,
  Same<PacingReservationRow, typeof postgres.pacingReservations.$inferSelect>,
] = [true, true, true, true, true];
void rowsMatch;
