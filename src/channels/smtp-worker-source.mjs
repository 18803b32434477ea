// The SMTP worker run from source (tsx, vitest), where Node cannot load TypeScript by itself; the bundle runs
// dist/smtp-worker.js instead.
import { register } from 'tsx/esm/api';

register();
await import('./smtp-worker.ts');
