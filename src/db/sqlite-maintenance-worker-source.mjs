// The maintenance thread run from source (tsx, vitest), where Node cannot load TypeScript by itself; the bundle runs
// dist/sqlite-maintenance-worker.js instead.
import { register } from 'tsx/esm/api';

register();
await import('./sqlite-maintenance-worker.ts');
