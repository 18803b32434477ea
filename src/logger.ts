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
      paths: ['accessToken', 'secret', '*.accessToken', '*.secret', 'req.headers["ops-token"]', 'headers["ops-token"]'],
      censor: '[redacted]',
    },
  };
  if (options.destination) return pino(base, options.destination);
  if (options.pretty) {
    return pino({ ...base, transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l' } } });
  }
  return pino(base);
}
