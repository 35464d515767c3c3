import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import { z } from 'zod'

// One schema for the whole configuration, read from the environment once at start. Every key is
// described here; `.env.example` and the README's table are generated from this file
// (`npm run config:docs`), and a test fails when they drift.

const port = z.coerce.number().int().min(1).max(65535)
const bool = z.stringbool({ truthy: ['true', '1', 'yes'], falsy: ['false', '0', 'no'] })
const url = (protocols: string[]) =>
  z
    .url({ protocol: new RegExp(`^(${protocols.join('|')})$`) })
    .describe(`a URL with scheme ${protocols.join(' or ')}`)

export const configSchema = z.object({
  NODE_ENV: z
    .enum(['development', 'production', 'test'])
    .default('development')
    .describe(
      'Runtime mode. In production the start-up banner is left out and only JSON log lines are written.',
    ),
  HOST: z
    .string()
    .min(1)
    .default('127.0.0.1')
    .describe('Address the HTTP API listens on (0.0.0.0 in containers).'),
  PORT: z.coerce
    .number()
    .int()
    .min(0)
    .max(65535)
    .default(3000)
    .describe('Port of the HTTP API (0 picks a free one).'),
  PUBLIC_URL: z
    .url()
    .optional()
    .describe('Base URL clients use to reach the API, when it differs from http://HOST:PORT.'),
  LOG_LEVEL: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
    .default('info')
    .describe('pino log level.'),
  DATA_DIR: z
    .string()
    .min(1)
    .default('.data')
    .describe('Directory for embedded services and local documents; created when missing.'),

  MONGODB_URI: url(['mongodb', 'mongodb\\+srv'])
    .optional()
    .describe(
      'MongoDB connection string, with the database name in the path. Unset: an embedded FerretDB (SQLite) under DATA_DIR.',
    ),
  REDIS_URL: url(['redis', 'rediss'])
    .optional()
    .describe('Redis connection URL. Unset: an embedded Redis (append-only file on) under DATA_DIR.'),
  MQTT_URL: url(['mqtt', 'mqtts', 'ws', 'wss'])
    .optional()
    .describe(
      'MQTT broker URL, credentials included when the broker needs them. Unset: an embedded Mosquitto with the dynamic-security plugin under DATA_DIR.',
    ),
  REDIS_KEY_PREFIX: z
    .string()
    .regex(/^[\w:.-]{0,64}$/, 'letters, digits, and _ : . - (at most 64)')
    .default('')
    .describe('Prefix of every Redis key, so that several deployments (or test runs) can share one Redis.'),
  EMBEDDED_MONGODB_PORT: port
    .default(27017)
    .describe('Port of the embedded FerretDB, when MONGODB_URI is unset.'),
  EMBEDDED_REDIS_PORT: port.default(6379).describe('Port of the embedded Redis, when REDIS_URL is unset.'),
  EMBEDDED_MQTT_PORT: port.default(1883).describe('Port of the embedded Mosquitto, when MQTT_URL is unset.'),

  INGEST_ENABLED: bool
    .default(true)
    .describe('Subscribe to sensor messages on the broker (the ingest door); off for API-only instances.'),
  INGEST_SHARE_GROUP: z
    .string()
    .regex(/^[\w-]{1,64}$/, 'letters, digits, _ and -')
    .default('smart-parking-ingest')
    .describe('MQTT 5 shared-subscription group: instances in one group split the sensor messages.'),
  INGEST_CLIENT_ID: z
    .string()
    .regex(/^[\w:.-]{1,64}$/, 'letters, digits, and _ : . -')
    .optional()
    .describe(
      "MQTT client id of this instance's ingest session, stable across restarts so that messages queued meanwhile are kept. Default: ingest-<host>-<PORT>.",
    ),
  INGEST_SESSION_EXPIRY_SECONDS: z.coerce
    .number()
    .int()
    .min(0)
    .default(3600)
    .describe('How long the broker keeps an absent ingest session and queues its messages.'),
  INGEST_BATCH_MAX: z.coerce
    .number()
    .int()
    .min(1)
    .max(5000)
    .default(500)
    .describe('A micro-batch of sensor messages goes to the worker pool at this many messages...'),
  INGEST_FLUSH_MS: z.coerce
    .number()
    .int()
    .min(0)
    .max(1000)
    .default(4)
    .describe('...or this many milliseconds after its first message, whichever comes first.'),
  INGEST_IN_FLIGHT: z.coerce
    .number()
    .int()
    .min(1)
    .max(65535)
    .default(4000)
    .describe(
      'Unacknowledged QoS 1 messages the broker may send this instance (MQTT 5 receive maximum); a message is acknowledged after its Redis step.',
    ),
  WORKER_THREADS: z.coerce
    .number()
    .int()
    .min(1)
    .max(64)
    .optional()
    .describe('Threads of the worker pool (sensor batches, fees). Default: the cores less one, at least 1.'),
  OCCUPANCY_DWELL_MS: z.coerce
    .number()
    .int()
    .min(0)
    .max(600_000)
    .default(2000)
    .describe(
      'Debounce: a sensed change counts once it has held this long (a flap back cancels it); 0 counts every change at once.',
    ),
  SENSOR_STALE_AFTER_SECONDS: z.coerce
    .number()
    .int()
    .min(5)
    .default(900)
    .describe('A sensor silent (no reading, no heartbeat) for longer turns its space to unknown.'),
  FEED_RETAIN_SECONDS: z.coerce
    .number()
    .int()
    .min(10)
    .default(600)
    .describe(
      'How long written changes stay in the Redis change stream, so that a live feed can resume after a reconnect.',
    ),
  PAYMENT_EXIT_WINDOW_MINUTES: z.coerce
    .number()
    .int()
    .min(0)
    .max(240)
    .default(15)
    .describe('After a payment, how long the driver may take to leave before the fee can grow again.'),
  FULL_LOT_POLICY: z
    .enum(['refuse', 'admit_unassigned'])
    .default('refuse')
    .describe(
      'A full lot: refuse the entry (409 lot_full), or admit the vehicle without a space (the session has none).',
    ),
  LPR_MIN_CONFIDENCE: z.coerce
    .number()
    .min(0)
    .max(1)
    .default(0.8)
    .describe(
      'A license plate read below this confidence is not trusted: the entry asks for the plate by hand (422).',
    ),
  RESERVATION_SLOT_MINUTES: z.coerce
    .number()
    .int()
    .min(1)
    .max(60)
    .default(15)
    .describe(
      'Granularity of reservation slots: a booking claims every slot of its space that its window overlaps.',
    ),
  RESERVATION_MAX_HOURS: z.coerce
    .number()
    .int()
    .min(1)
    .max(24 * 31)
    .default(72)
    .describe('The longest reservation window, in hours (a longer one is a 422).'),
  RESERVATION_PAYMENT_TIMEOUT_MINUTES: z.coerce
    .number()
    .int()
    .min(1)
    .default(15)
    .describe('A prepaid reservation still unpaid this long after booking expires and frees its space.'),
  RESERVATION_FREE_CANCEL_HOURS: z.coerce
    .number()
    .min(0)
    .default(24)
    .describe('A reservation cancelled at least this long before its start is refunded in full.'),
  RESERVATION_LATE_CANCEL_REFUND_PERCENT: z.coerce
    .number()
    .int()
    .min(0)
    .max(100)
    .default(50)
    .describe(
      'The share of a prepayment refunded for a later cancellation before the start (none after it).',
    ),
  RESERVATION_CHECKIN_EARLY_MINUTES: z.coerce
    .number()
    .int()
    .min(0)
    .default(30)
    .describe('Check-in opens this long before the start; the space is held (reserved) from then on.'),
  RESERVATION_NO_SHOW_GRACE_MINUTES: z.coerce
    .number()
    .int()
    .min(0)
    .default(30)
    .describe(
      'Check-in closes this long after the start; then the reservation is a no-show and its space free.',
    ),
  RESERVATION_NO_SHOW_REFUND_PERCENT: z.coerce
    .number()
    .int()
    .min(0)
    .max(100)
    .default(0)
    .describe('The share of a prepayment refunded for a no-show.'),
  MEMBERSHIP_RENEW_BEFORE_HOURS: z.coerce
    .number()
    .min(0)
    .default(24)
    .describe(
      'A membership with auto-renewal is renewed (and charged through Stripe) this long before its period ends.',
    ),
  MEMBERSHIP_PAYMENT_TIMEOUT_MINUTES: z.coerce
    .number()
    .int()
    .min(1)
    .default(30)
    .describe(
      'A membership or renewal still unpaid through Stripe this long after it was made is canceled; an unpaid subscription ends and frees its claims.',
    ),
  ANALYTICS_SETTLE_SECONDS: z.coerce
    .number()
    .int()
    .min(0)
    .max(3600)
    .default(120)
    .describe(
      'Occupancy rollup buckets end this long before now: the persister and the debounce have written their history rows by then.',
    ),
  ANALYTICS_LOOKBACK_MINUTES: z.coerce
    .number()
    .int()
    .min(15)
    .max(1440)
    .default(60)
    .describe(
      'The analytics.rollup job recomputes this much of the newest history every run, so that a space change the persister wrote this late still lands in its 15-minute bucket.',
    ),
  PREDICTION_HISTORY_DAYS: z.coerce
    .number()
    .int()
    .min(7)
    .max(91)
    .default(35)
    .describe(
      'Days of 15-minute occupancy rollups an occupancy forecast learns its weekday x time-of-day profile from (the last 5 weeks count).',
    ),

  DOCUMENTS_DIR: z
    .string()
    .min(1)
    .optional()
    .describe('Directory for uploaded documents when S3_BUCKET is unset. Default: DATA_DIR/documents.'),
  S3_BUCKET: z
    .string()
    .regex(
      /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/,
      'an S3 bucket name: 3-63 lowercase letters, digits, dots and hyphens',
    )
    .optional()
    .describe('Bucket for uploaded documents. Set: documents go to S3 (never public). Unset: local disk.'),
  S3_ENDPOINT: z
    .url()
    .optional()
    .describe('Endpoint of an S3-compatible server (MinIO, versitygw). Unset: AWS S3 of S3_REGION.'),
  S3_REGION: z
    .string()
    .min(1)
    .default('us-east-1')
    .describe('Region of the S3 bucket (most S3-compatible servers accept any).'),
  S3_ACCESS_KEY_ID: z
    .string()
    .min(1)
    .optional()
    .describe(
      'S3 access key. Unset: the AWS SDK default credential chain (environment, profile, instance role).',
    ),
  S3_SECRET_ACCESS_KEY: z.string().min(1).optional().describe('S3 secret key, with S3_ACCESS_KEY_ID.'),
  S3_FORCE_PATH_STYLE: bool
    .default(false)
    .describe('Address buckets as http://endpoint/bucket (MinIO, versitygw) instead of bucket.endpoint.'),

  AUTH_ISSUER: z
    .string()
    .min(1)
    .default('smart-parking')
    .describe('`iss` of access tokens; pinned when verifying.'),
  AUTH_AUDIENCE: z
    .string()
    .min(1)
    .default('smart-parking-api')
    .describe('`aud` of access tokens; pinned when verifying.'),
  ACCESS_TOKEN_TTL_SECONDS: z.coerce
    .number()
    .int()
    .min(60)
    .max(3600)
    .default(900)
    .describe('Lifetime of an access token (a JWT signed with ES256) in seconds.'),
  REFRESH_TOKEN_TTL_DAYS: z.coerce
    .number()
    .int()
    .min(1)
    .max(365)
    .default(30)
    .describe('Lifetime of a refresh token family in days; each refresh rotates the token.'),
  SIGNING_KEY_MAX_AGE_DAYS: z.coerce
    .number()
    .int()
    .min(1)
    .default(30)
    .describe(
      'A signing key older than this is replaced at start; old keys stay in the JWKS until their tokens expire.',
    ),
  ADMIN_EMAIL: z
    .email()
    .optional()
    .describe('E-mail of the first admin, created at start when no admin exists (with ADMIN_PASSWORD).'),
  ADMIN_PASSWORD: z
    .string()
    .min(12)
    .optional()
    .describe('Password of the first admin; used only when the admin is created.'),
  ADMIN_NAME: z.string().min(1).default('Administrator').describe('Full name of the first admin.'),
  ACCOUNT_APPROVAL_REQUIRED: bool
    .default(true)
    .describe('New customer accounts start pending until an admin approves their registration request.'),
  LOGIN_FAILURES_PER_ACCOUNT: z.coerce
    .number()
    .int()
    .min(1)
    .max(25)
    .default(10)
    .describe(
      'Failed logins allowed per account per 15 minutes before 429 (at most 100 evaluated per hour).',
    ),
  LOGIN_FAILURES_PER_ADDRESS: z.coerce
    .number()
    .int()
    .min(1)
    .default(50)
    .describe('Failed logins allowed per client address per 15 minutes before 429.'),
  TRUST_PROXY: bool
    .default(false)
    .describe('Take the client address from X-Forwarded-For (only behind a proxy you run).'),

  CORS_ORIGINS: z
    .string()
    .default('')
    .transform((value) =>
      value
        .split(',')
        .map((origin) => origin.trim())
        .filter(Boolean),
    )
    .pipe(
      z.array(
        z.url().refine(
          // Unparseable values are reported by .url() already.
          (value) => !URL.canParse(value) || new URL(value).origin === value,
          'an origin: scheme, host and port, no path',
        ),
      ),
    )
    .describe('Comma-separated origins allowed to call the API from a browser; empty allows none.'),
  BODY_LIMIT_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .default(1_048_576)
    .describe('Largest accepted request body in bytes; larger bodies get 413.'),
  METRICS_TOKEN: z
    .string()
    .min(16)
    .optional()
    .describe('When set, GET /metrics requires "Authorization: Bearer <token>".'),
  MIGRATE_ON_START: bool
    .default(true)
    .describe('Run pending data migrations at start, before traffic (otherwise: npm run migrate).'),
  SHUTDOWN_TIMEOUT_MS: z.coerce
    .number()
    .int()
    .min(100)
    .default(10_000)
    .describe('How long a graceful shutdown waits for in-flight work before closing connections.'),

  STRIPE_SECRET_KEY: z
    .string()
    .regex(/^(sk|rk)_(test|live)_\w{1,250}$/, 'a Stripe secret or restricted key (sk_test_..., sk_live_...)')
    .optional()
    .describe(
      'Stripe API key. Unset (and STRIPE_API_URL unset): payments go to an embedded stripe-mock with a test key.',
    ),
  STRIPE_API_URL: url(['http', 'https'])
    .optional()
    .describe(
      'Base URL of the Stripe API. Unset: an embedded stripe-mock when STRIPE_SECRET_KEY is unset too, else https://api.stripe.com.',
    ),
  STRIPE_WEBHOOK_SECRET: z
    .string()
    .min(8)
    .default('whsec_smart_parking_local')
    .describe(
      'Signing secret of the Stripe webhook endpoint (whsec_...); the default suits local runs only.',
    ),
  STRIPE_WEBHOOK_TOLERANCE_SECONDS: z.coerce
    .number()
    .int()
    .min(1)
    .default(300)
    .describe(
      'Webhook signatures older than this are refused (400), so that a captured event cannot be replayed.',
    ),
  STRIPE_TIMEOUT_MS: z.coerce
    .number()
    .int()
    .min(100)
    .default(10_000)
    .describe('How long one call to Stripe may take before the request answers 503.'),
  EMBEDDED_STRIPE_PORT: port
    .default(12111)
    .describe('Port of the embedded stripe-mock, when STRIPE_API_URL and STRIPE_SECRET_KEY are unset.'),
  PAYMENT_RECONCILE_AFTER_SECONDS: z.coerce
    .number()
    .int()
    .min(0)
    .default(300)
    .describe(
      'Stripe payments still pending after this long are looked up at Stripe by the reconciliation job.',
    ),
  JOBS_ENABLED: bool
    .default(true)
    .describe('Run the scheduled jobs (agenda) in this instance; run exactly one instance with it on.'),
  SMTP_URL: url(['smtp', 'smtps'])
    .optional()
    .describe(
      'SMTP server for e-mail, credentials included (smtp://user:pass@host:587, smtps://... for TLS). Unset: messages are written as .eml files to DATA_DIR/outbox.',
    ),
  MAIL_FROM: z
    .string()
    .min(3)
    .max(200)
    .default('Smart Parking <no-reply@smart-parking.local>')
    .describe('Sender of every e-mail ("Name <address>" or an address).'),
  EXPORT_RETENTION_DAYS: z.coerce
    .number()
    .int()
    .min(1)
    .default(7)
    .describe('A CSV export (its file and its record) is purged this many days after it was requested.'),
  AUDIT_RETENTION_DAYS: z.coerce
    .number()
    .int()
    .min(1)
    .default(365)
    .describe(
      'Audit log records (operator and admin actions) are purged this many days after they were recorded.',
    ),
  INACTIVE_REMINDER_DAYS: z.coerce
    .number()
    .int()
    .min(1)
    .default(30)
    .describe(
      'Customers without a parking session for this many days get one reminder e-mail per period of this length.',
    ),
  IDEMPOTENCY_RETENTION_HOURS: z.coerce
    .number()
    .int()
    .min(1)
    .default(48)
    .describe('Idempotency-Key records older than this are purged; a retry after that is a new request.'),
  WEBHOOK_DISPATCH_ENABLED: bool
    .default(true)
    .describe(
      'Deliver outbound webhooks from this instance (instances share the schedule in Redis; any number may deliver).',
    ),
  WEBHOOK_CONCURRENCY: z.coerce
    .number()
    .int()
    .min(1)
    .max(256)
    .default(8)
    .describe('Webhook deliveries in flight at once per instance; a slow receiver occupies one slot.'),
  WEBHOOK_TIMEOUT_MS: z.coerce
    .number()
    .int()
    .min(100)
    .max(120_000)
    .default(10_000)
    .describe(
      'One webhook delivery attempt may take this long (connect, send, answer) before it counts as failed.',
    ),
  WEBHOOK_RETRY_BASE_MS: z.coerce
    .number()
    .int()
    .min(1)
    .default(10_000)
    .describe('Delay before the second webhook attempt; it doubles per attempt (with ±25 % jitter).'),
  WEBHOOK_RETRY_MAX_MS: z.coerce
    .number()
    .int()
    .min(1)
    .default(3_600_000)
    .describe("The longest delay between two webhook attempts (also caps a receiver's Retry-After)."),
  WEBHOOK_MAX_ATTEMPTS: z.coerce
    .number()
    .int()
    .min(1)
    .max(50)
    .default(8)
    .describe(
      'Attempts of one webhook delivery before it is failed (8: about 21 minutes with the defaults).',
    ),
  WEBHOOK_DISABLE_AFTER_FAILURES: z.coerce
    .number()
    .int()
    .min(1)
    .default(20)
    .describe(
      'A webhook subscription is disabled after this many failed attempts in a row (no success between)...',
    ),
  WEBHOOK_DISABLE_AFTER_SECONDS: z.coerce
    .number()
    .int()
    .min(0)
    .default(86_400)
    .describe(
      '...when the first of them is at least this old (a short outage under heavy traffic is not enough).',
    ),
  WEBHOOK_SECRET_OVERLAP_SECONDS: z.coerce
    .number()
    .int()
    .min(0)
    .default(86_400)
    .describe(
      'After a secret rotation the old webhook signing secret keeps signing (a second v1=) this long.',
    ),
  WEBHOOK_POLL_MS: z.coerce
    .number()
    .int()
    .min(10)
    .max(60_000)
    .default(250)
    .describe(
      'How often an idle webhook dispatcher looks for due deliveries (a publish in the instance wakes it).',
    ),
  WEBHOOK_REFRESH_MS: z.coerce
    .number()
    .int()
    .min(100)
    .default(5_000)
    .describe(
      'How often each instance reloads the enabled webhook subscriptions (changes made through it apply at once).',
    ),
  WEBHOOK_RETENTION_DAYS: z.coerce
    .number()
    .int()
    .min(1)
    .default(30)
    .describe(
      'Finished webhook deliveries (succeeded or failed), their attempts and the events no delivery names any more are purged this many days after the event.',
    ),
  WEBHOOK_ALLOW_HTTP: bool
    .optional()
    .describe(
      'Accept http:// webhook endpoint URLs. Default: yes, except with NODE_ENV=production (https only).',
    ),
  WEBHOOK_ALLOW_PRIVATE_HOSTS: bool
    .optional()
    .describe(
      'Deliver webhooks to localhost, loopback, private, link-local and reserved addresses. Off: checked on the URL at subscription and on every resolved address at each attempt. Default: on, except with NODE_ENV=production.',
    ),
})

export type Config = z.output<typeof configSchema> & {
  /** Absolute paths derived from the raw values. */
  paths: { data: string; documents: string; outbox: string }
}

export class ConfigError extends Error {
  readonly problems: string[]
  constructor(problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`)
    this.name = 'ConfigError'
    this.problems = problems
  }
}

/** Reads `.env` into the environment when it exists; variables already set win over the file. */
export function loadDotEnv(path = '.env'): void {
  if (existsSync(path)) process.loadEnvFile(path)
}

/** For entry points: .env, then the environment; on a problem, print them all and exit 1. */
export function loadConfigOrExit(): Config {
  try {
    loadDotEnv()
    return loadConfig()
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    console.error(`smart-parking: ${error.message}\nSee .env.example for every key, its meaning and default.`)
    process.exit(1)
  }
}

/** Parses the environment; throws a ConfigError that lists every problem at once. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const input: Record<string, string> = {}
  for (const key of Object.keys(configSchema.shape)) {
    const value = env[key]
    // An empty assignment (`KEY=`) means "not set", as in most .env tooling.
    if (value !== undefined && value !== '') input[key] = value
  }
  const result = configSchema.safeParse(input)
  const problems = result.success
    ? []
    : result.error.issues.map((issue) => {
        const key = String(issue.path[0] ?? '')
        const got = key in input ? ` (got "${input[key]}")` : ''
        return `${key}: ${issue.message}${got}`
      })
  // Checked on the raw input so that it is listed together with every other problem.
  if ('ADMIN_EMAIL' in input !== 'ADMIN_PASSWORD' in input) {
    problems.push('ADMIN_PASSWORD: ADMIN_EMAIL and ADMIN_PASSWORD go together: set both or neither')
  }
  if ('S3_ACCESS_KEY_ID' in input !== 'S3_SECRET_ACCESS_KEY' in input) {
    problems.push(
      'S3_SECRET_ACCESS_KEY: S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY go together: set both or neither',
    )
  }
  if (!result.success || problems.length > 0) throw new ConfigError(problems)
  const data = resolve(result.data.DATA_DIR)
  return {
    ...result.data,
    paths: {
      data,
      documents: resolve(result.data.DOCUMENTS_DIR ?? `${data}/documents`),
      outbox: resolve(`${data}/outbox`),
    },
  }
}

export type ConfigKeyDoc = { key: string; description: string; default: string | undefined }

/** The documented keys, for `.env.example` and the README table. */
export function describeConfig(): ConfigKeyDoc[] {
  return Object.entries(configSchema.shape).map(([key, schema]) => ({
    key,
    description: schema.description ?? '',
    default: defaultOf(schema),
  }))
}

type SchemaDef = { type: string; defaultValue?: unknown; in?: { _zod: { def: SchemaDef } } }

function defaultOf(schema: unknown): string | undefined {
  const def = (schema as { _zod: { def: SchemaDef } })._zod.def
  if (def.type === 'default') return String(def.defaultValue)
  if (def.type === 'pipe' && def.in) return defaultOf(def.in)
  return undefined
}
