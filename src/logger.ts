import pino, { type Logger } from 'pino';

export type { Logger };

export function maskMobile(mobile: string): string {
  return mobile.length > 7 ? `${mobile.slice(0, mobile.length - 8)}****${mobile.slice(-4)}` : '****';
}

export function createLogger(options: { level: string; pretty: boolean; destination?: pino.DestinationStream }): Logger {
  const base: pino.LoggerOptions = {
    level: options.level,
    base: { service: 'notify-gateway' },
    redact: {
      // `token` (a Feishu bot's) and `key` (a WeCom robot's only credential): nothing logs one today; these catch a field
      // added by mistake.
      paths: [
        'accessToken',
        'secret',
        'token',
        'key',
        '*.accessToken',
        '*.secret',
        '*.token',
        '*.key',
        'req.headers["ops-token"]',
        'headers["ops-token"]',
      ],
      censor: '[redacted]',
    },
  };
  if (options.destination) return pino(base, options.destination);
  if (options.pretty) {
    return pino({ ...base, transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l' } } });
  }
  return pino(base, batchedStdout());
}

/**
 * Lines logged in one turn of the event loop reach stdout in one write: under load a write per line (a request line
 * for every request) cost more than building the lines. A process killed mid-turn loses that turn's lines; a process
 * that exits writes them first.
 */
function batchedStdout(): pino.DestinationStream {
  // One for the process: every logger writes to the same stdout, and exit flushes it once.
  return (sharedStdout ??= createBatchedStdout());
}

let sharedStdout: pino.DestinationStream | undefined;

function createBatchedStdout(): pino.DestinationStream {
  const stdout = pino.destination({ dest: 1, sync: true });
  let pending: string[] = [];
  const flush = () => {
    if (pending.length === 0) return;
    const text = pending.join('');
    pending = [];
    stdout.write(text);
  };
  process.on('exit', flush);
  return {
    write(line: string) {
      if (pending.push(line) === 1) setImmediate(flush);
    },
  };
}
