import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import addressparser from 'nodemailer/lib/addressparser';
import { z } from 'zod';

const emptyAsUndefined = (value: unknown) => (value === '' ? undefined : value);

const optionalString = z.preprocess(emptyAsUndefined, z.string().optional());
const int = (fallback: number, min = 0) =>
  z.preprocess(emptyAsUndefined, z.coerce.number().int().min(min).default(fallback));
const flag = (fallback: boolean) =>
  z.preprocess(
    emptyAsUndefined,
    z
      .enum(['true', 'false', '1', '0', 'yes', 'no'])
      .default(fallback ? 'true' : 'false')
      .transform((value) => ['true', '1', 'yes'].includes(value)),
  );
// Never echo these values: SMTP_URL may carry a password.
const smtpUrlHasHost = (value: string) => {
  try {
    return new URL(value).hostname !== '';
  } catch {
    return false;
  }
};
const isSingleMailbox = (value: string) => {
  const parsed = addressparser(value, { flatten: true });
  return parsed.length === 1 && /^[^@\s<>]+@[^@\s<>]+$/.test(parsed[0].address ?? '');
};
const httpUrl = (fallback?: string) => {
  const url = z.string().url().refine((value) => /^https?:\/\//.test(value), 'must be an http(s) URL');
  return z.preprocess(emptyAsUndefined, fallback === undefined ? url.optional() : url.default(fallback));
};

/** A host name (letters, digits, - and dots), an IPv4 address or a bracketless IPv6 address: no scheme, port or path. */
const isHostName = (value: string) =>
  net.isIP(value) !== 0 ||
  /^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*\.?$/.test(value);

const isPostgresUrl = (value: string) => /^postgres(ql)?:\/\//.test(value);
const postgresUrlHasHost = (value: string) => {
  try {
    return new URL(value).hostname !== '' || new URL(value).searchParams.has('host');
  } catch {
    return false;
  }
};

const credential = { pattern: /^[^\s"']+$/, message: 'must not contain spaces or quotes (check how it was pasted)' };
/** What each SMS provider needs, with the shape a value must have (undefined: any non-empty text). */
const smsProviderSettings: Record<'aliyun' | 'tencent', Record<string, { pattern: RegExp; message: string } | undefined>> = {
  aliyun: {
    ALIYUN_ACCESS_KEY_ID: credential,
    ALIYUN_ACCESS_KEY_SECRET: credential,
    ALIYUN_SMS_SIGN_NAME: undefined,
    ALIYUN_SMS_TEMPLATE_CODE: { pattern: /^SMS_\d+$/, message: 'must be an Aliyun template code such as SMS_154950909' },
  },
  tencent: {
    TENCENT_SECRET_ID: credential,
    TENCENT_SECRET_KEY: credential,
    TENCENT_SMS_SDK_APP_ID: { pattern: /^\d+$/, message: 'must be the numeric SmsSdkAppId, such as 1400006666' },
    TENCENT_SMS_SIGN_NAME: undefined,
    TENCENT_SMS_TEMPLATE_ID: { pattern: /^\d+$/, message: 'must be a numeric template ID, such as 1110011' },
    TENCENT_SMS_REGION: { pattern: /^[a-z]+-[a-z]+$/, message: 'must be a Tencent Cloud region such as ap-guangzhou' },
  },
};

const envSchema = z
  .object({
    NODE_ENV: z.preprocess(emptyAsUndefined, z.enum(['development', 'production', 'test']).default('development')),
    PORT: int(4000).pipe(z.number().max(65535)),
    METRICS_PORT: z.preprocess(emptyAsUndefined, z.coerce.number().int().min(1).max(65535).optional()),
    HOST: z.preprocess(emptyAsUndefined, z.string().default('0.0.0.0')),
    DATABASE_URL: z.preprocess(
      emptyAsUndefined,
      z
        .string()
        .default('file:./data/notify.db')
        .refine(
          (value) => value.startsWith('file:') || (isPostgresUrl(value) && postgresUrlHasHost(value)),
          'must be file:<path> (SQLite) or postgres://user@host:port/database (PostgreSQL)',
        ),
    ),
    DATABASE_POOL_SIZE: int(10, 1),
    DATA_DIR: optionalString,
    LOG_LEVEL: z.preprocess(
      emptyAsUndefined,
      z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    ),
    OPS_TOKENS: optionalString,
    GRAPHQL_INTROSPECTION: z.preprocess(
      emptyAsUndefined,
      z
        .enum(['true', 'false', '1', '0', 'yes', 'no'])
        .optional()
        .transform((value) => (value === undefined ? undefined : ['true', '1', 'yes'].includes(value))),
    ),
    BODY_LIMIT_BYTES: int(1_048_576, 1024),
    NOTIFY_SECRET_KEY: optionalString,
    SEND_WAIT_MS: int(5000),
    SHUTDOWN_TIMEOUT_MS: int(10000),
    WEBSOCKET_TOKEN_RECHECK_MS: int(30_000, 100),
    PROVIDER_TIMEOUT_MS: int(10000, 1),
    DISPATCH_CONCURRENCY: int(64, 0),
    DISPATCH_POLL_MS: int(500, 10),
    CLAIM_LEASE_MS: int(60000, 1000),
    RETRY_MAX_ATTEMPTS: int(20, 1),
    RETRY_MAX_AGE_SECONDS: int(86400, 1),
    RETRY_BASE_DELAY_MS: int(2000, 1),
    RETRY_MAX_DELAY_MS: int(600000, 1),
    DELIVERY_RETENTION_DAYS: int(90, 1),
    CONTENT_RETENTION_DAYS: int(7, 1),
    DINGTALK_BASE_URL: httpUrl('https://oapi.dingtalk.com'),
    DINGTALK_ROBOT_PER_MINUTE: int(19, 1).pipe(z.number().max(20)),
    FEISHU_BASE_URL: httpUrl('https://open.feishu.cn'),
    WECOM_BASE_URL: httpUrl('https://qyapi.weixin.qq.com'),
    WECOM_ROBOT_PER_MINUTE: int(19, 1).pipe(z.number().max(20)),
    WEBHOOK_ALLOWED_HOSTS: z.preprocess(
      emptyAsUndefined,
      z
        .string()
        .default('')
        .transform((value) =>
          value
            .split(',')
            .map((host) => host.trim().toLowerCase())
            .filter(Boolean),
        )
        .refine(
          (hosts) => hosts.every(isHostName),
          'must be a comma-separated list of host names or IP addresses (no scheme, port or path), e.g. hooks.internal,10.0.0.7',
        ),
    ),
    ROBOT_DIGEST: z.preprocess(
      emptyAsUndefined,
      z
        .enum(['on', 'off'])
        .default('on')
        .transform((value) => value === 'on'),
    ),
    SMTP_URL: z.preprocess(
      emptyAsUndefined,
      z
        .string()
        .refine((value) => /^smtps?:\/\//.test(value), 'must be an smtp:// or smtps:// URL')
        .refine(smtpUrlHasHost, 'must name a host (percent-encode @ : / # ? in the user and password)')
        .optional(),
    ),
    MAIL_FROM: z.preprocess(
      emptyAsUndefined,
      z
        .string()
        .default('notify-gateway <notify@localhost>')
        .refine(isSingleMailbox, 'must be one address, e.g. ops@example.com or "Ops Alerts <ops@example.com>"'),
    ),
    SMTP_POOL_SIZE: int(5, 1),
    SMS_PROVIDER: z.preprocess(emptyAsUndefined, z.enum(['log', 'aliyun', 'tencent']).default('log')),
    SMS_TEMPLATE_PARAM: z.preprocess(
      emptyAsUndefined,
      z
        .string()
        .default('code')
        .refine((value) => /^[A-Za-z0-9_]{1,64}$/.test(value), 'must be a template variable name such as code (for Tencent, a position such as 1)'),
    ),
    SMS_LIMIT_PER_MINUTE: int(1),
    SMS_LIMIT_PER_HOUR: int(5),
    SMS_LIMIT_PER_DAY: int(10),
    RATE_LIMIT_PER_TOKEN_PER_MINUTE: int(0),
    ALIYUN_ACCESS_KEY_ID: optionalString,
    ALIYUN_ACCESS_KEY_SECRET: optionalString,
    ALIYUN_SMS_SIGN_NAME: optionalString,
    ALIYUN_SMS_TEMPLATE_CODE: optionalString,
    ALIYUN_SMS_ENDPOINT: httpUrl('https://dysmsapi.aliyuncs.com'),
    TENCENT_SECRET_ID: optionalString,
    TENCENT_SECRET_KEY: optionalString,
    TENCENT_SMS_SDK_APP_ID: optionalString,
    TENCENT_SMS_SIGN_NAME: optionalString,
    TENCENT_SMS_TEMPLATE_ID: optionalString,
    TENCENT_SMS_REGION: z.preprocess(emptyAsUndefined, z.string().default('ap-guangzhou')),
    TENCENT_SMS_ENDPOINT: httpUrl('https://sms.tencentcloudapi.com'),
    CONSOLE_DIR: optionalString,
  })
  .superRefine((env, ctx) => {
    // An attempt is abandoned at most PROVIDER_TIMEOUT_MS + 3 s after it starts (see the dispatcher).
    if (env.CLAIM_LEASE_MS <= env.PROVIDER_TIMEOUT_MS + 3000) {
      ctx.addIssue({
        code: 'custom',
        path: ['CLAIM_LEASE_MS'],
        message: `must be longer than PROVIDER_TIMEOUT_MS + 3000 (${env.PROVIDER_TIMEOUT_MS + 3000}), or a slow attempt could be claimed twice`,
      });
    }
    if (env.DISPATCH_CONCURRENCY === 0 && !isPostgresUrl(env.DATABASE_URL)) {
      ctx.addIssue({
        code: 'custom',
        path: ['DISPATCH_CONCURRENCY'],
        message: 'can be 0 (accept only, other replicas send) only with a PostgreSQL DATABASE_URL: nothing would ever be sent',
      });
    }
    if (isPostgresUrl(env.DATABASE_URL) && !env.NOTIFY_SECRET_KEY) {
      ctx.addIssue({
        code: 'custom',
        path: ['NOTIFY_SECRET_KEY'],
        message:
          'is required with a PostgreSQL DATABASE_URL: every replica must seal and open secrets with the same key (make one with: openssl rand -hex 32)',
      });
    }
    if (env.METRICS_PORT !== undefined && env.METRICS_PORT === env.PORT) {
      ctx.addIssue({ code: 'custom', path: ['METRICS_PORT'], message: 'must differ from PORT (leave it empty to serve /metrics on PORT)' });
    }
  })
  // Runs even when other settings failed to parse, so that one start reports every problem together.
  .superRefine((env, ctx) => {
    const [deliveryDays, contentDays] = [env.DELIVERY_RETENTION_DAYS, env.CONTENT_RETENTION_DAYS];
    if (typeof deliveryDays === 'number' && typeof contentDays === 'number' && contentDays > deliveryDays) {
      ctx.addIssue({
        code: 'custom',
        path: ['CONTENT_RETENTION_DAYS'],
        message: `must be at most DELIVERY_RETENTION_DAYS (${deliveryDays}): content cannot outlive the delivery it belongs to`,
      });
    }
    const provider = String(env.SMS_PROVIDER);
    const settings = Object.hasOwn(smsProviderSettings, provider)
      ? smsProviderSettings[provider as keyof typeof smsProviderSettings]
      : {};
    for (const [key, rule] of Object.entries(settings)) {
      const value = (env as Record<string, unknown>)[key];
      // Messages never echo the value: most of these are secrets.
      const problem =
        typeof value !== 'string' || value.trim() === ''
          ? `is required when SMS_PROVIDER=${provider}`
          : value !== value.trim()
            ? 'must not start or end with spaces (check how it was pasted)'
            : rule && !rule.pattern.test(value)
              ? rule.message
              : undefined;
      if (problem) ctx.addIssue({ code: 'custom', path: [key], message: problem });
    }
  }, { when: () => true });

export type Env = z.infer<typeof envSchema>;

/** The embedded SQLite file, or a PostgreSQL server shared by several replicas. */
export type DatabaseConfig =
  | { kind: 'sqlite'; path: string }
  | { kind: 'postgres'; url: string; poolSize: number };

export interface Config {
  env: Env['NODE_ENV'];
  host: string;
  port: number;
  /** When set, /metrics is served on this port only (not on `port`). */
  metricsPort?: number;
  database: DatabaseConfig;
  dataDir: string;
  logLevel: Env['LOG_LEVEL'];
  opsTokens: string[];
  /** Introspection and GraphiQL: on unless NODE_ENV=production, where GRAPHQL_INTROSPECTION=true turns them on. */
  introspection: boolean;
  /** Largest request body accepted on /graphql; larger ones are answered 413. */
  bodyLimitBytes: number;
  secretKey?: string;
  sendWaitMs: number;
  shutdownTimeoutMs: number;
  /** How often the tokens of open WebSocket connections are checked again (revocations on other replicas). */
  websocketTokenRecheckMs: number;
  providerTimeoutMs: number;
  /** Deliveries one token may create per minute (counted in the database); 0 means no limit. */
  rateLimitPerTokenPerMinute: number;
  dispatch: {
    concurrency: number;
    pollMs: number;
    claimLeaseMs: number;
    maxAttempts: number;
    maxAgeMs: number;
    baseDelayMs: number;
    maxDelayMs: number;
  };
  ding: { baseUrl: string; perRobotPerMinute: number };
  feishu: { baseUrl: string };
  wecom: { baseUrl: string; perRobotPerMinute: number };
  /** Hosts a signed webhook may reach even when they resolve to a loopback, private or link-local address. */
  webhook: { allowedHosts: string[] };
  /** How long final deliveries are kept, and their content (days); see the README's Data lifecycle. */
  retention: { deliveryDays: number; contentDays: number };
  /** Alert-storm digests for the robot channels (ROBOT_DIGEST, on by default). */
  robotDigest: boolean;
  /** The built delivery console (index.html and its hashed assets), served at /console. */
  consoleDir: string;
  email: { smtpUrl?: string; from: string; poolSize: number };
  sms: {
    provider: Env['SMS_PROVIDER'];
    templateParam: string;
    limits: { perMinute: number; perHour: number; perDay: number };
    aliyun: {
      accessKeyId?: string;
      accessKeySecret?: string;
      signName?: string;
      templateCode?: string;
      endpoint: string;
    };
    tencent: {
      secretId?: string;
      secretKey?: string;
      sdkAppId?: string;
      signName?: string;
      templateId?: string;
      region: string;
      endpoint: string;
    };
  };
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((problem) => `  - ${problem}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Where the database is, for a log line: never a password. */
export function describeDatabase(database: DatabaseConfig): string {
  if (database.kind === 'sqlite') return database.path;
  const url = new URL(database.url);
  return `postgres://${url.host}${url.pathname}`;
}

export function databasePathFrom(url: string, cwd = process.cwd()): string {
  const location = url.slice('file:'.length);
  if (location === ':memory:') return location;
  return path.resolve(cwd, location);
}

/**
 * The package's dist/console: this file is src/config.ts under tsx and vitest, and part of dist/main.js once bundled,
 * and `../dist/console` from either folder is the same place.
 */
export const defaultConsoleDir = fileURLToPath(new URL('../dist/console', import.meta.url));

export function loadConfig(source: Record<string, string | undefined> = process.env): Config {
  const parsed = envSchema.safeParse(source);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`));
  }
  const env = parsed.data;
  const database: DatabaseConfig = isPostgresUrl(env.DATABASE_URL)
    ? { kind: 'postgres', url: env.DATABASE_URL, poolSize: env.DATABASE_POOL_SIZE }
    : { kind: 'sqlite', path: databasePathFrom(env.DATABASE_URL) };
  const dataDir = path.resolve(
    env.DATA_DIR ?? (database.kind === 'postgres' || database.path === ':memory:' ? './data' : path.dirname(database.path)),
  );
  return {
    env: env.NODE_ENV,
    host: env.HOST,
    port: env.PORT,
    metricsPort: env.METRICS_PORT,
    database,
    dataDir,
    logLevel: env.LOG_LEVEL,
    opsTokens: (env.OPS_TOKENS ?? '')
      .split(',')
      .map((token) => token.trim())
      .filter(Boolean),
    introspection: env.GRAPHQL_INTROSPECTION ?? env.NODE_ENV !== 'production',
    bodyLimitBytes: env.BODY_LIMIT_BYTES,
    secretKey: env.NOTIFY_SECRET_KEY,
    sendWaitMs: env.SEND_WAIT_MS,
    shutdownTimeoutMs: env.SHUTDOWN_TIMEOUT_MS,
    websocketTokenRecheckMs: env.WEBSOCKET_TOKEN_RECHECK_MS,
    providerTimeoutMs: env.PROVIDER_TIMEOUT_MS,
    rateLimitPerTokenPerMinute: env.RATE_LIMIT_PER_TOKEN_PER_MINUTE,
    dispatch: {
      concurrency: env.DISPATCH_CONCURRENCY,
      pollMs: env.DISPATCH_POLL_MS,
      claimLeaseMs: env.CLAIM_LEASE_MS,
      maxAttempts: env.RETRY_MAX_ATTEMPTS,
      maxAgeMs: env.RETRY_MAX_AGE_SECONDS * 1000,
      baseDelayMs: env.RETRY_BASE_DELAY_MS,
      maxDelayMs: env.RETRY_MAX_DELAY_MS,
    },
    ding: { baseUrl: env.DINGTALK_BASE_URL!, perRobotPerMinute: env.DINGTALK_ROBOT_PER_MINUTE },
    feishu: { baseUrl: env.FEISHU_BASE_URL! },
    wecom: { baseUrl: env.WECOM_BASE_URL!, perRobotPerMinute: env.WECOM_ROBOT_PER_MINUTE },
    webhook: { allowedHosts: env.WEBHOOK_ALLOWED_HOSTS },
    retention: { deliveryDays: env.DELIVERY_RETENTION_DAYS, contentDays: env.CONTENT_RETENTION_DAYS },
    robotDigest: env.ROBOT_DIGEST,
    consoleDir: path.resolve(env.CONSOLE_DIR ?? defaultConsoleDir),
    email: { smtpUrl: env.SMTP_URL, from: env.MAIL_FROM, poolSize: env.SMTP_POOL_SIZE },
    sms: {
      provider: env.SMS_PROVIDER,
      templateParam: env.SMS_TEMPLATE_PARAM,
      limits: { perMinute: env.SMS_LIMIT_PER_MINUTE, perHour: env.SMS_LIMIT_PER_HOUR, perDay: env.SMS_LIMIT_PER_DAY },
      aliyun: {
        accessKeyId: env.ALIYUN_ACCESS_KEY_ID,
        accessKeySecret: env.ALIYUN_ACCESS_KEY_SECRET,
        signName: env.ALIYUN_SMS_SIGN_NAME,
        templateCode: env.ALIYUN_SMS_TEMPLATE_CODE,
        endpoint: env.ALIYUN_SMS_ENDPOINT!,
      },
      tencent: {
        secretId: env.TENCENT_SECRET_ID,
        secretKey: env.TENCENT_SECRET_KEY,
        sdkAppId: env.TENCENT_SMS_SDK_APP_ID,
        signName: env.TENCENT_SMS_SIGN_NAME,
        templateId: env.TENCENT_SMS_TEMPLATE_ID,
        region: env.TENCENT_SMS_REGION,
        endpoint: env.TENCENT_SMS_ENDPOINT!,
      },
    },
  };
}
