import type { Authenticator } from '../auth';
import type { DeliveryService } from '../delivery/service';
import type { Logger } from '../logger';

export interface LegacyRouteDeps {
  service: DeliveryService;
  authenticator: Authenticator;
  logger: Logger;
}

/** The original `/api/third/*` routes. Answers undefined for paths it does not own. */
export function createLegacyRoutes(_deps: LegacyRouteDeps) {
  return async (_request: Request, _url: URL): Promise<Response | undefined> => undefined;
}
