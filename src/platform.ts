import { readFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { type ServerType, serve } from '@hono/node-server'
import type { Config } from './config.ts'
import { migrations } from './db/migrations/index.ts'
import { runMigrations } from './db/migrator.ts'
import { modelRegistrations } from './db/models.ts'
import type { DependencyUrls } from './embedded/embedded-stack.ts'
import { createHttpApp, type HttpApp } from './http/app.ts'
import type { Services } from './http/context.ts'
import { analyticsRollupJob } from './jobs/analytics-rollup.ts'
import { evChargingSweepJob } from './jobs/ev-charging-sweep.ts'
import { exportsRunJob, exportsSweepJob } from './jobs/exports-jobs.ts'
import { dataPurgeJob, remindersInactiveJob, reportsMonthlyJob } from './jobs/mail-jobs.ts'
import { membershipsRenewalsJob } from './jobs/memberships-renewals.ts'
import { paymentsReconcileJob } from './jobs/payments-reconcile.ts'
import { reservationsNoShowJob, reservationsTickJob } from './jobs/reservations-jobs.ts'
import { createScheduler, type Scheduler } from './jobs/scheduler.ts'
import { createAccountsRepository } from './modules/accounts/accounts.repository.ts'
import { createAccountsService } from './modules/accounts/accounts.service.ts'
import { createTokensRepository } from './modules/accounts/tokens.repository.ts'
import { createTokenService } from './modules/accounts/tokens.service.ts'
import { createAnalyticsRepository } from './modules/analytics/analytics.repository.ts'
import { createAnalyticsService } from './modules/analytics/analytics.service.ts'
import { createPredictionsService } from './modules/analytics/predictions.service.ts'
import { createAuditRepository } from './modules/audit/audit.repository.ts'
import { createAuditService } from './modules/audit/audit.service.ts'
import { createDiscountsRepository } from './modules/discounts/discounts.repository.ts'
import { createDiscountsService } from './modules/discounts/discounts.service.ts'
import { createEvRepository } from './modules/ev/ev.repository.ts'
import { createEvService } from './modules/ev/ev.service.ts'
import { createExportsRepository } from './modules/exports/exports.repository.ts'
import { createExportsService } from './modules/exports/exports.service.ts'
import { createFacilitiesRepository } from './modules/facilities/facilities.repository.ts'
import { createFacilitiesService } from './modules/facilities/facilities.service.ts'
import { createHealthService } from './modules/health/health.service.ts'
import { createJobsRepository } from './modules/jobs/jobs.repository.ts'
import { createJobsService } from './modules/jobs/jobs.service.ts'
import { createMailJobsService } from './modules/jobs/mail-jobs.service.ts'
import { createMembershipsRepository } from './modules/memberships/memberships.repository.ts'
import { createMembershipsService, unlessNotFound } from './modules/memberships/memberships.service.ts'
import { attachLiveSockets } from './modules/occupancy/live.socket.ts'
import { type Occupancy, startOccupancy } from './modules/occupancy/occupancy.module.ts'
import { createPaymentsRepository } from './modules/payments/payments.repository.ts'
import { createPaymentsService } from './modules/payments/payments.service.ts'
import { redisReceiptNumbers } from './modules/payments/receipts.ts'
import {
  createStripeGateway,
  type PaymentGateway,
  STRIPE_MOCK_KEY,
} from './modules/payments/stripe.gateway.ts'
import { createPricingRepository } from './modules/pricing/pricing.repository.ts'
import { createPricingService } from './modules/pricing/pricing.service.ts'
import { createRegistrationsRepository } from './modules/registrations/registrations.repository.ts'
import { createRegistrationsService } from './modules/registrations/registrations.service.ts'
import { createReportsService } from './modules/reports/reports.service.ts'
import { createReservationsRepository } from './modules/reservations/reservations.repository.ts'
import { createReservationsService } from './modules/reservations/reservations.service.ts'
import { createDynsecAccounts } from './modules/sensors/dynsec.ts'
import { createSensorsRepository } from './modules/sensors/sensors.repository.ts'
import { createSensorsService } from './modules/sensors/sensors.service.ts'
import type {
  AdjustmentSource,
  ChargesSource,
  LedgerPort,
  SessionListener,
} from './modules/sessions/operations.contract.ts'
import { createSessionsRepository } from './modules/sessions/sessions.repository.ts'
import { createSessionsService } from './modules/sessions/sessions.service.ts'
import { createVehiclesRepository } from './modules/vehicles/vehicles.repository.ts'
import { createVehiclesService } from './modules/vehicles/vehicles.service.ts'
import { createEventProducers } from './modules/webhooks/webhooks.events.ts'
import { createWebhooksRepository } from './modules/webhooks/webhooks.repository.ts'
import { createWebhooksService } from './modules/webhooks/webhooks.service.ts'
import { DependencyDown } from './shared/errors.ts'
import { createIdempotencyStore } from './shared/idempotency.ts'
import type { Logger } from './shared/logger.ts'
import { createMailer } from './shared/mailer.ts'
import { createMetrics } from './shared/metrics.ts'
import { connectDatabase, type Database, initModels, pingDatabase } from './shared/mongo.ts'
import { connectBroker } from './shared/mqtt.ts'
import { connectRedis, pingRedis } from './shared/redis.ts'
import { type DocumentStorage, localDiskStorage, s3Storage } from './shared/storage.ts'
import { retryUntil } from './shared/timeout.ts'
import { createWorkerPool } from './shared/worker-pool.ts'

export const version: string = JSON.parse(
  readFileSync(new URL('../package.json', import.meta.url), 'utf8'),
).version

export type Platform = {
  app: HttpApp
  /** The services behind the doors (tests and tools reach them directly). */
  services: Services
  /** The occupancy capability's moving parts (hot state, pipeline, persister). */
  occupancy: Occupancy
  /** The jobs door (agenda); `runNow(name)` runs a job at once. */
  scheduler: Scheduler
  /** The Stripe gateway the payments service calls (tests wrap its methods). */
  stripe: PaymentGateway
  /** Where the HTTP API listens, e.g. http://127.0.0.1:3000. */
  url: string
  stop(): Promise<void>
}

const PROBE_TIMEOUT_MS = 1_500
const CONNECT_DEADLINE_MS = 30_000

/**
 * The composition root's body: connections, then services, then doors. Connections are made
 * before the HTTP door opens, collections, indexes and migrations are in place before traffic,
 * and stop() closes in the reverse order without dropping accepted work.
 */
export async function startPlatform(config: Config, urls: DependencyUrls, logger: Logger): Promise<Platform> {
  const closers: { name: string; close: () => Promise<unknown> }[] = []
  const closeAll = async () => {
    for (const { name, close } of closers.reverse()) {
      try {
        await close()
        logger.info(`${name} closed`)
      } catch (error) {
        logger.warn({ err: error }, `${name} did not close cleanly`)
      }
    }
    closers.length = 0
  }

  try {
    const waiting = (what: string) => (error: unknown) =>
      logger.warn({ reason: (error as Error).message }, `waiting for ${what}`)

    const db = await retryUntil(() => connectDatabase(urls.mongodb), {
      deadlineMs: CONNECT_DEADLINE_MS,
      onRetry: waiting('the database'),
    })
    closers.push({ name: 'database connection', close: () => db.close() })
    await initModels(db, modelRegistrations)
    if (config.MIGRATE_ON_START) {
      const report = await runMigrations(db, migrations, { logger })
      if (report.applied.length > 0) logger.info({ applied: report.applied }, 'migrations applied')
    }

    const quietErrors = throttledErrorLog(logger)
    const redis = await retryUntil(
      () => connectRedis(urls.redis, quietErrors('redis'), config.REDIS_KEY_PREFIX),
      {
        deadlineMs: CONNECT_DEADLINE_MS,
        onRetry: waiting('Redis'),
      },
    )
    // quit() rejects while Redis is down (offline queue off); then just drop the socket.
    closers.push({ name: 'redis connection', close: () => redis.quit().catch(() => redis.disconnect()) })

    const broker = await retryUntil(() => connectBroker(urls.mqtt, quietErrors('broker')), {
      deadlineMs: CONNECT_DEADLINE_MS,
      onRetry: waiting('the MQTT broker'),
    })
    // end() without force waits for in-flight QoS 1 acknowledgements.
    closers.push({ name: 'broker connection', close: () => broker.endAsync() })

    const metrics = createMetrics()
    // Outbound webhooks: the event sink producers publish to, and this instance's delivery loop.
    const webhooks = createWebhooksService({
      repo: createWebhooksRepository(db),
      redis,
      // Facilities is made below; asked only when a subscription names a lot.
      lotExists: (lotId) => facilities.exists('lot', lotId),
      registry: metrics.registry,
      logger,
      settings: {
        dispatch: config.WEBHOOK_DISPATCH_ENABLED,
        concurrency: config.WEBHOOK_CONCURRENCY,
        timeoutMs: config.WEBHOOK_TIMEOUT_MS,
        retryBaseMs: config.WEBHOOK_RETRY_BASE_MS,
        retryMaxMs: config.WEBHOOK_RETRY_MAX_MS,
        maxAttempts: config.WEBHOOK_MAX_ATTEMPTS,
        disableAfterFailures: config.WEBHOOK_DISABLE_AFTER_FAILURES,
        disableAfterMs: config.WEBHOOK_DISABLE_AFTER_SECONDS * 1000,
        secretOverlapMs: config.WEBHOOK_SECRET_OVERLAP_SECONDS * 1000,
        pollMs: config.WEBHOOK_POLL_MS,
        refreshMs: config.WEBHOOK_REFRESH_MS,
        retentionMs: config.WEBHOOK_RETENTION_DAYS * 86_400_000,
        allowHttp: config.WEBHOOK_ALLOW_HTTP ?? config.NODE_ENV !== 'production',
        allowPrivateHosts: config.WEBHOOK_ALLOW_PRIVATE_HOSTS ?? config.NODE_ENV !== 'production',
        userAgent: `smart-parking-webhooks/${version}`,
      },
    })
    await webhooks.start()
    // Closed after the doors (reverse order): requests that publish finish first.
    closers.push({ name: 'webhook dispatcher', close: () => webhooks.stop() })
    // What occupancy, sessions, payments and reservations tell, as webhook events for its sink.
    const events = createEventProducers({
      sink: () => webhooks.sink,
      settings: { staleAfterSeconds: config.SENSOR_STALE_AFTER_SECONDS },
      logger,
    })
    const tokens = createTokenService({
      repo: createTokensRepository(db),
      redis,
      settings: {
        issuer: config.AUTH_ISSUER,
        audience: config.AUTH_AUDIENCE,
        accessTtlSeconds: config.ACCESS_TOKEN_TTL_SECONDS,
        refreshTtlDays: config.REFRESH_TOKEN_TTL_DAYS,
        keyMaxAgeDays: config.SIGNING_KEY_MAX_AGE_DAYS,
      },
    })
    await tokens.ensureSigningKey()
    const vehicles = createVehiclesService({ repo: createVehiclesRepository(db) })
    const accounts = createAccountsService({
      repo: createAccountsRepository(db),
      tokens,
      redis,
      logger,
      onAccountDeleted: [(userId) => vehicles.removeAllOf(userId)],
      settings: {
        approvalRequired: config.ACCOUNT_APPROVAL_REQUIRED,
        failuresPerAccount: config.LOGIN_FAILURES_PER_ACCOUNT,
        failuresPerAddress: config.LOGIN_FAILURES_PER_ADDRESS,
      },
    })
    await accounts.ensureFirstAdmin(
      config.ADMIN_EMAIL && config.ADMIN_PASSWORD
        ? { email: config.ADMIN_EMAIL, password: config.ADMIN_PASSWORD, full_name: config.ADMIN_NAME }
        : undefined,
    )
    const storage = documentStorage(config, await documentLinkSecretOf(db))
    const pool = createWorkerPool(config.WORKER_THREADS)
    closers.push({ name: 'worker pool', close: () => pool.destroy() })
    const occupancy = await startOccupancy({
      config,
      db,
      redis,
      brokerUrl: urls.mqtt,
      pool,
      metrics,
      logger,
      // Asked at request time only, when Redis has no counts of a scope.
      exists: (kind, id) => facilities.exists(kind, id),
      changesWritten: events.changesWritten,
    })
    closers.push({ name: 'occupancy (ingest, persister, feeds)', close: () => occupancy.stop() })
    const occupancyIndex = occupancy.index
    const readingSink = occupancy.sink
    const facilities = createFacilitiesService({
      repo: createFacilitiesRepository(db),
      occupancy: occupancyIndex,
      // A deleted space takes its sensor's binding along (sensors is made below; called later).
      onSpaceDeleted: (spaceId) => sensors.unbindSpace(spaceId),
    })
    const sensors = createSensorsService({
      repo: createSensorsRepository(db),
      broker: createDynsecAccounts(broker),
      occupancy: occupancyIndex,
      findSpace: (spaceId) => facilities.findSpace(spaceId),
      readingSink,
      logger,
    })
    // Rate plans and fees; fees are priced in the worker pool.
    const pricing = createPricingService({ repo: createPricingRepository(db), facilities, pool })
    // The money path: sessions, pricing, discounts and payments reach each other through the
    // ports of operations.contract.ts, bound late because each is made after the one before.
    // Capabilities made below add themselves to what prices a session and what hears it close.
    const adjustmentSources: AdjustmentSource[] = [
      { adjustmentsFor: (session) => discounts.adjustmentsOf(session.id) },
    ]
    const chargeSources: ChargesSource[] = []
    const sessionListeners: SessionListener[] = []
    const sessions = createSessionsService({
      repo: createSessionsRepository(db),
      facilities,
      vehicles,
      spaces: occupancy.spaces,
      pricing: () => pricing,
      adjustments: () => adjustmentSources,
      charges: () => chargeSources,
      listeners: () => sessionListeners,
      // A booked car at the ordinary gate is checked in to its reservation (made below).
      arrivals: () => reservations.arrivalCheckIn,
      ledger: () => ledger,
      logger,
      settings: {
        exitWindowMinutes: config.PAYMENT_EXIT_WINDOW_MINUTES,
        fullLotPolicy: config.FULL_LOT_POLICY,
        lprMinConfidence: config.LPR_MIN_CONFIDENCE,
      },
    })
    const sessionsPort = sessions.port
    sessionListeners.push(events.sessionListener)
    // Reservations: made before the hot state opens (its holds are rebuilt with the sessions').
    const reservations = createReservationsService({
      repo: createReservationsRepository(db),
      facilities,
      vehicles,
      pricing: () => pricing,
      gateway: () => stripe,
      spaces: occupancy.spaces,
      sessions: () => sessions,
      idempotency: createIdempotencyStore(db),
      logger,
      // Analytics is made further down; told only once the platform runs.
      money: (event) => analytics.moneyMoved(event),
      listener: events.reservationListener,
      settings: {
        slotMinutes: config.RESERVATION_SLOT_MINUTES,
        maxHours: config.RESERVATION_MAX_HOURS,
        paymentTimeoutMinutes: config.RESERVATION_PAYMENT_TIMEOUT_MINUTES,
        freeCancelHours: config.RESERVATION_FREE_CANCEL_HOURS,
        lateCancelRefundPercent: config.RESERVATION_LATE_CANCEL_REFUND_PERCENT,
        checkinEarlyMinutes: config.RESERVATION_CHECKIN_EARLY_MINUTES,
        noShowGraceMinutes: config.RESERVATION_NO_SHOW_GRACE_MINUTES,
        noShowRefundPercent: config.RESERVATION_NO_SHOW_REFUND_PERCENT,
      },
    })
    adjustmentSources.push(reservations.adjustments)
    sessionListeners.push(reservations.listener)
    // Payments is made below; sessions ask it only at request time.
    const ledger: LedgerPort = { paidFor: (sessionId) => payments.ledger.paidFor(sessionId) }
    await occupancy.open({
      placements: () => facilities.placements(),
      bindings: () => sensors.bindings(),
      holds: async function* () {
        yield* sessions.holds()
        yield* reservations.holds()
      },
    })
    const discounts = createDiscountsService({
      repo: createDiscountsRepository(db),
      redis,
      sessions: sessionsPort,
      lotExists: (lotId) => facilities.exists('lot', lotId),
    })
    const stripe = createStripeGateway({
      secretKey: config.STRIPE_SECRET_KEY ?? STRIPE_MOCK_KEY,
      apiUrl: config.STRIPE_API_URL ?? urls.stripe ?? 'https://api.stripe.com',
      webhookSecret: config.STRIPE_WEBHOOK_SECRET,
      webhookToleranceSeconds: config.STRIPE_WEBHOOK_TOLERANCE_SECONDS,
      timeoutMs: config.STRIPE_TIMEOUT_MS,
    })
    const payments = createPaymentsService({
      repo: createPaymentsRepository(db),
      gateway: stripe,
      sessions: sessionsPort,
      discounts,
      receipts: redisReceiptNumbers(redis),
      idempotency: createIdempotencyStore(db),
      logger,
      settings: { reconcileAfterMs: config.PAYMENT_RECONCILE_AFTER_SECONDS * 1000 },
    })
    // EV charging: billed with the parking fee, and a vehicle's exit stops its charge.
    const ev = createEvService({
      repo: createEvRepository(db),
      facilities,
      liveSpace: (spaceId) => occupancy.state.space(spaceId),
      meters: occupancyIndex,
      findDevice: (deviceId) => sensors.get(deviceId),
      sessions: () => sessionsPort,
      logger,
    })
    chargeSources.push(ev.chargesSource)
    sessionListeners.push(ev.sessionListener)
    // Memberships: included hours and discounts of members' vehicles, usage as sessions close.
    const memberships = createMembershipsService({
      repo: createMembershipsRepository(db),
      earlierSources: [...adjustmentSources],
      gateway: stripe,
      lotCurrency: async (lotId) =>
        (await facilities.exists('lot', lotId)) ? (await facilities.getLot(lotId)).currency : undefined,
      accountRole: (userId) => unlessNotFound(accounts.admin.get(userId)).then((user) => user?.role),
      vehicleOwner: (vehicleId) =>
        unlessNotFound(vehicles.get({ userId: '', role: 'admin' }, vehicleId)).then((v) => v?.owner_id),
      logger,
      settings: {
        renewBeforeMs: config.MEMBERSHIP_RENEW_BEFORE_HOURS * 3_600_000,
        paymentTimeoutMs: config.MEMBERSHIP_PAYMENT_TIMEOUT_MINUTES * 60_000,
      },
      money: (event) => analytics.moneyMoved(event),
    })
    adjustmentSources.push(memberships.adjustmentSource)
    sessionListeners.push(memberships.sessionListener)
    payments.onForeignIntent('membership', (intentId, eventType) => memberships.onIntent(intentId, eventType))
    payments.onForeignIntent('reservation', reservations.onIntent)
    // Analytics: day counters kept by the session (and payment) hooks, rollups kept by its job.
    const analytics = createAnalyticsService({
      repo: createAnalyticsRepository(db),
      redis,
      occupancy: occupancy.service,
      facilities,
      logger,
      settings: {
        settleMs: config.ANALYTICS_SETTLE_SECONDS * 1000,
        lookbackMs: config.ANALYTICS_LOOKBACK_MINUTES * 60_000,
      },
    })
    sessionListeners.push(analytics.sessionListener)
    payments.onSettled((event) => analytics.moneyMoved(event))
    payments.onSettled(events.moneyMoved)
    // Forecasts read the rollups through the analytics port, bound late.
    const predictions = createPredictionsService({
      series: () => analytics.series,
      facilities,
      settings: { historyDays: config.PREDICTION_HISTORY_DAYS },
    })
    const scheduler = createScheduler({ db, enabled: config.JOBS_ENABLED, logger })
    scheduler.define(analyticsRollupJob(analytics))
    scheduler.define(reservationsTickJob(reservations))
    scheduler.define(reservationsNoShowJob(reservations))
    scheduler.define(membershipsRenewalsJob(memberships))
    scheduler.define(paymentsReconcileJob(payments, config.PAYMENT_RECONCILE_AFTER_SECONDS * 1000))
    scheduler.define(evChargingSweepJob(ev))
    // E-mail and the jobs that send it: exports, reminders, the monthly report, the purge.
    const mailer = createMailer({
      from: config.MAIL_FROM,
      smtpUrl: config.SMTP_URL,
      outboxDir: config.paths.outbox,
      production: config.NODE_ENV === 'production',
      logger,
    })
    closers.push({ name: 'mailer', close: async () => mailer.close() })
    // Links in e-mails: PUBLIC_URL, else where the HTTP door listens (known once it does).
    let publicBase = config.PUBLIC_URL?.replace(/\/+$/, '') ?? ''
    const publicUrl = () => publicBase
    const customerCaller = (userId: string) => ({ userId, role: 'customer' as const })
    const exports = createExportsService({
      repo: createExportsRepository(db),
      storage,
      mailer,
      history: {
        sessions: (userId, cursor) => sessions.list(customerCaller(userId), { limit: 100, cursor }),
        payments: (userId, cursor) => payments.list(customerCaller(userId), { limit: 100, cursor }),
        lotName: async (lotId) =>
          (await facilities.exists('lot', lotId)) ? (await facilities.getLot(lotId)).name : null,
        contact: (userId) => unlessNotFound(accounts.admin.get(userId)),
      },
      enqueue: (name, data) => scheduler.enqueue(name, data),
      publicUrl,
      logger,
      settings: { retentionDays: config.EXPORT_RETENTION_DAYS },
    })
    // The audit log of operator and admin actions: written by the HTTP door, purged by data.purge.
    const audit = createAuditService({
      repo: createAuditRepository(db),
      actorEmail: async (userId) => (await unlessNotFound(accounts.admin.get(userId)))?.email ?? null,
      logger,
      registry: metrics.registry,
      settings: { retentionDays: config.AUDIT_RETENTION_DAYS },
    })
    const mailJobs = createMailJobsService({
      repo: createJobsRepository(db),
      mailer,
      accounts: (role, cursor) => accounts.admin.list({ role, status: 'active', limit: 100, cursor }),
      lots: (cursor) => facilities.listLots({ limit: 100, cursor }),
      purgeExports: (now) => exports.purgeExpired(now),
      purgeAuditLog: (now) => audit.purgeExpired(now),
      purgeWebhooks: (now) => webhooks.purgeExpired(now),
      publicUrl,
      logger,
      settings: {
        inactiveDays: config.INACTIVE_REMINDER_DAYS,
        idempotencyRetentionHours: config.IDEMPOTENCY_RETENTION_HOURS,
        reservationSlotMinutes: config.RESERVATION_SLOT_MINUTES,
      },
    })
    scheduler.define(exportsRunJob(exports))
    scheduler.define(exportsSweepJob(exports))
    scheduler.define(remindersInactiveJob(mailJobs))
    scheduler.define(reportsMonthlyJob(mailJobs))
    scheduler.define(dataPurgeJob(mailJobs))
    const services: Services = {
      metrics,
      tokens,
      accounts,
      vehicles,
      registrations: createRegistrationsService({
        repo: createRegistrationsRepository(db),
        accounts,
        storage,
        logger,
      }),
      storage,
      facilities,
      sensors,
      occupancy: occupancy.service,
      pricing,
      sessions,
      discounts,
      payments,
      ev,
      reservations,
      memberships,
      analytics,
      reports: createReportsService({ analytics, occupancy: occupancy.service, facilities }),
      predictions,
      exports,
      jobs: createJobsService({ scheduler: () => scheduler }),
      mailJobs,
      audit,
      webhooks,
      health: createHealthService({
        metrics,
        version,
        probes: {
          database: () => pingDatabase(db, PROBE_TIMEOUT_MS),
          redis: () => pingRedis(redis, PROBE_TIMEOUT_MS),
          broker: async () => {
            if (!broker.connected) throw new DependencyDown('connection lost; reconnecting')
          },
        },
      }),
    }

    const app = createHttpApp(services, logger, {
      version,
      corsOrigins: config.CORS_ORIGINS,
      bodyLimitBytes: config.BODY_LIMIT_BYTES,
      metricsToken: config.METRICS_TOKEN,
      trustProxy: config.TRUST_PROXY,
    })
    // After the services, before the door opens; closed (reversed order) before the database.
    await scheduler.start()
    closers.push({ name: 'scheduler', close: () => scheduler.stop() })
    const server = await listen(app, config.HOST, config.PORT)
    closers.push({ name: 'http server', close: () => closeServer(server, config.SHUTDOWN_TIMEOUT_MS) })
    const liveSockets = attachLiveSockets(server as import('node:http').Server, occupancy.service, logger)
    closers.push({ name: 'live sockets', close: async () => liveSockets.close() })
    const address = server.address() as AddressInfo
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
    const url = `http://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${address.port}`
    publicBase ||= url

    return {
      app,
      services,
      occupancy,
      scheduler,
      stripe,
      stop: async () => {
        services.health.startDraining()
        await closeAll()
      },
      url,
    }
  } catch (error) {
    await closeAll()
    throw error
  }
}

/** Made by migration 0003; signs local-disk document links on every instance alike. */
async function documentLinkSecretOf(db: Database): Promise<string> {
  const record = await db
    .collection<{ _id: string; secret: string }>('platform')
    .findOne({ _id: 'document-link-secret' })
  if (!record) throw new Error('the document link secret is missing: run the migrations (npm run migrate)')
  return record.secret
}

function documentStorage(config: Config, linkSecret: string): DocumentStorage {
  if (!config.S3_BUCKET) return localDiskStorage(config.paths.documents, linkSecret)
  return s3Storage({
    bucket: config.S3_BUCKET,
    region: config.S3_REGION,
    endpoint: config.S3_ENDPOINT,
    forcePathStyle: config.S3_FORCE_PATH_STYLE,
    credentials:
      config.S3_ACCESS_KEY_ID && config.S3_SECRET_ACCESS_KEY
        ? { accessKeyId: config.S3_ACCESS_KEY_ID, secretAccessKey: config.S3_SECRET_ACCESS_KEY }
        : undefined,
  })
}

async function listen(app: HttpApp, hostname: string, port: number): Promise<ServerType> {
  return await new Promise((resolve, reject) => {
    const server = serve({ fetch: app.fetch, hostname, port }, () => resolve(server))
    server.once('error', reject)
  })
}

/** Stops accepting, lets in-flight requests finish, and cuts what is left after the timeout. */
async function closeServer(server: ServerType, timeoutMs: number): Promise<void> {
  const http = server as import('node:http').Server
  const closed = new Promise<void>((resolve) => http.close(() => resolve()))
  http.closeIdleConnections()
  const timer = setTimeout(() => http.closeAllConnections(), timeoutMs)
  await closed
  clearTimeout(timer)
}

/** A dependency that is down emits an error per reconnect attempt; log the first of each minute. */
function throttledErrorLog(logger: Logger) {
  return (name: string) => {
    let last = 0
    return (error: Error) => {
      if (Date.now() - last < 60_000) return
      last = Date.now()
      logger.warn({ dependency: name, reason: error.message }, `${name} connection error; reconnecting`)
    }
  }
}
