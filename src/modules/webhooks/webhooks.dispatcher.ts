import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import type { Logger } from '../../shared/logger.ts'
import { type WebhookEventType, webhookHeaders, type webhookTestEventType } from './webhooks.contract.ts'
import { EgressRefused, type EgressSettings, post } from './webhooks.egress.ts'
import type { DeliveryRecord, EventRecord, SubscriptionRecord } from './webhooks.model.ts'
import type { DeliveryQueue } from './webhooks.queue.ts'
import type { WebhooksRepository } from './webhooks.repository.ts'
import { activeSecrets, signatureHeader } from './webhooks.signing.ts'

export type DispatchSettings = {
  /** Deliveries in flight at once per instance. */
  concurrency: number
  /** One attempt (connect, send, answer headers and the first KiB) may take this long. */
  timeoutMs: number
  retryBaseMs: number
  retryMaxMs: number
  maxAttempts: number
  /** A subscription is disabled after this many failed attempts in a row... */
  disableAfterFailures: number
  /** ...spread over at least this long (a short outage under heavy traffic is not enough). */
  disableAfterMs: number
  /** How often an idle dispatcher looks for due deliveries (a local publish wakes it at once). */
  pollMs: number
  userAgent: string
  /**
   * Reach loopback, private, link-local and reserved addresses. Off: every attempt resolves the
   * endpoint's name, refuses it when an address is in those ranges, and connects to the checked one.
   */
  allowPrivateHosts: boolean
}

/** The payload receivers get. */
export function payloadOf(event: EventRecord) {
  return {
    id: event._id,
    type: event.type as WebhookEventType | typeof webhookTestEventType,
    created_at: event.occurred_at.toISOString(),
    lot_id: event.lot_id,
    data: event.data,
  }
}

/** base * 2^(n-1), capped, with ±25 % jitter so that receivers back from an outage are not hit at once. */
export function backoffMs(attempt: number, baseMs: number, maxMs: number, random = Math.random): number {
  const plain = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1))
  return Math.round(Math.min(maxMs, plain * (0.75 + random() * 0.5)))
}

/** Retry-After as seconds or an HTTP date; undefined when absent or unreadable. */
export function retryAfterMs(header: string | null, now: number): number | undefined {
  if (!header) return undefined
  if (/^\d+$/.test(header.trim())) return Number(header.trim()) * 1000
  const at = Date.parse(header)
  return Number.isNaN(at) ? undefined : Math.max(0, at - now)
}

type AttemptOutcome = {
  succeeded: boolean
  statusCode: number | null
  error: string | null
  responseBody: string | null
  durationMs: number
  retryAfter: string | null
}

const RESPONSE_BODY_BYTES = 1024

export function createDispatchMetrics(registry: Registry, depth: () => Promise<number>) {
  return {
    attempts: new Counter({
      name: 'webhook_attempts_total',
      help: 'Webhook delivery attempts, by outcome (succeeded, failed).',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    deliveries: new Counter({
      name: 'webhook_deliveries_total',
      help: 'Webhook deliveries finished, by outcome (succeeded, failed after the last attempt).',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    duration: new Histogram({
      name: 'webhook_attempt_duration_seconds',
      help: 'Duration of one webhook delivery attempt, by outcome.',
      labelNames: ['outcome'] as const,
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    queueDepth: new Gauge({
      name: 'webhook_queue_depth',
      help: 'Deliveries in the schedule (due, waiting for a retry, or in flight).',
      registers: [registry],
      async collect() {
        try {
          this.set(await depth())
        } catch {
          // Redis is down: the gauge keeps its last value; dependency_up tells why.
        }
      },
    }),
  }
}

export type Dispatcher = ReturnType<typeof createDispatcher>

/**
 * The delivery loop of one instance: claims due deliveries from the Redis schedule (leased, so
 * that a crashed instance's claims come back), runs at most `concurrency` at once, each with its
 * timeout, and records every attempt. It never runs on a request's path.
 */
export function createDispatcher(deps: {
  repo: WebhooksRepository
  queue: DeliveryQueue
  metrics: ReturnType<typeof createDispatchMetrics>
  logger: Logger
  settings: DispatchSettings
  /** A subscription as this instance knows it (its cache of enabled ones first); undefined: deleted. */
  subscription: (id: string) => Promise<SubscriptionRecord | undefined>
  /** Name resolution for deliveries (tests inject one); the system's resolver otherwise. */
  resolve?: EgressSettings['resolve']
  /** Turns a subscription off after persistent failure (or a 410). */
  disable: (subscription: SubscriptionRecord, reason: string) => Promise<void>
  now?: () => number
}) {
  const { repo, queue, metrics, logger, settings } = deps
  const egress: EgressSettings = {
    allowPrivateHosts: settings.allowPrivateHosts,
    ...(deps.resolve ? { resolve: deps.resolve } : {}),
  }
  const now = deps.now ?? Date.now
  // Long enough that a live attempt is never taken over: the timeout plus the writes after it.
  const leaseMs = settings.timeoutMs * 2 + 30_000
  const inFlight = new Map<string, AbortController>()
  let running = false
  let loop: Promise<void> | undefined
  let wake: (() => void) | undefined

  const nudge = () => {
    const w = wake
    wake = undefined
    w?.()
  }

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        wake = undefined
        resolve()
      }, ms)
      wake = () => {
        clearTimeout(timer)
        resolve()
      }
    })

  async function attempt(
    subscription: SubscriptionRecord,
    event: EventRecord,
    signal: AbortSignal,
  ): Promise<AttemptOutcome> {
    const body = JSON.stringify(payloadOf(event))
    const timestamp = Math.floor(now() / 1000)
    const begin = performance.now()
    const timeout = AbortSignal.timeout(settings.timeoutMs)
    const took = () => Math.round(performance.now() - begin)
    try {
      const answer = await post(
        subscription.url,
        {
          body,
          signal: AbortSignal.any([signal, timeout]),
          maxBody: RESPONSE_BODY_BYTES,
          headers: {
            'Content-Type': 'application/json',
            'User-Agent': settings.userAgent,
            [webhookHeaders.id]: event._id,
            [webhookHeaders.timestamp]: String(timestamp),
            [webhookHeaders.signature]: signatureHeader(
              activeSecrets(subscription.secrets, new Date(now())),
              timestamp,
              body,
            ),
          },
        },
        egress,
      )
      const succeeded = answer.status >= 200 && answer.status < 300
      return {
        succeeded,
        statusCode: answer.status,
        error: succeeded ? null : `answered ${answer.status}`,
        responseBody: answer.head,
        durationMs: took(),
        retryAfter: answer.headers['retry-after'] ?? null,
      }
    } catch (error) {
      if (signal.aborted) throw error
      const reason = timeout.aborted
        ? `no answer within ${settings.timeoutMs} ms`
        : connectionError(error as Error)
      return {
        succeeded: false,
        statusCode: null,
        error: reason,
        responseBody: null,
        durationMs: took(),
        retryAfter: null,
      }
    }
  }

  async function record(delivery: DeliveryRecord, outcome: AttemptOutcome, at: Date): Promise<number> {
    // The next number, or the one after when a holder that died recorded it already.
    for (let n = delivery.attempts + 1; ; n++) {
      const inserted = await repo.recordAttempt({
        _id: `${delivery._id}:${n}`,
        delivery_id: delivery._id,
        subscription_id: delivery.subscription_id,
        n,
        at,
        succeeded: outcome.succeeded,
        status_code: outcome.statusCode,
        duration_ms: outcome.durationMs,
        error: outcome.error,
        response_body: outcome.responseBody,
      })
      if (inserted) return n
    }
  }

  /** The claimed deliveries and their events, one read each for the batch. */
  async function load(ids: string[]) {
    const deliveries = new Map((await repo.findDeliveries(ids)).map((d) => [d._id, d]))
    const eventIds = new Set(
      [...deliveries.values()].filter((d) => d.status === 'pending').map((d) => d.event_id),
    )
    const events = new Map((await repo.findEvents([...eventIds])).map((e) => [e._id, e]))
    return { deliveries, events }
  }

  async function deliver(
    id: string,
    delivery: DeliveryRecord | undefined,
    events: Map<string, EventRecord>,
    signal: AbortSignal,
  ): Promise<void> {
    if (delivery?.status !== 'pending') return await queue.remove(id)
    const subscription = await deps.subscription(delivery.subscription_id)
    if (!subscription) {
      await repo.updateDelivery(id, {
        status: 'failed',
        last_error: 'the subscription was deleted',
        next_attempt_at: null,
        completed_at: new Date(now()),
      })
      return await queue.remove(id)
    }
    // Stays pending, out of the schedule, until the subscription is enabled again.
    if (!subscription.enabled) return await queue.remove(id)
    const event = events.get(delivery.event_id)
    if (!event) {
      logger.error({ deliveryId: id, eventId: delivery.event_id }, 'webhook delivery without its event')
      return await queue.remove(id)
    }

    const at = new Date(now())
    const outcome = await attempt(subscription, event, signal)
    const label = { outcome: outcome.succeeded ? 'succeeded' : 'failed' }
    metrics.attempts.inc(label)
    metrics.duration.observe(label, outcome.durationMs / 1000)
    const n = await record(delivery, outcome, at)
    const common = {
      attempts: n,
      last_attempt_at: at,
      last_status_code: outcome.statusCode,
      last_error: outcome.error,
    }

    if (outcome.succeeded) {
      await repo.updateDelivery(id, {
        ...common,
        status: 'succeeded',
        next_attempt_at: null,
        completed_at: new Date(now()),
      })
      metrics.deliveries.inc({ outcome: 'succeeded' })
      await queue.resetFailures(subscription._id)
      return await queue.remove(id)
    }

    const streak = await queue.countFailure(subscription._id, at.getTime())
    const gone = outcome.statusCode === 410
    const persistent =
      streak.count >= settings.disableAfterFailures && now() - streak.since >= settings.disableAfterMs
    if (gone || persistent) {
      // This delivery stays pending (attempt count kept) and goes on once re-enabled.
      await repo.updateDelivery(id, { ...common, next_attempt_at: null })
      await queue.remove(id)
      await deps.disable(
        subscription,
        gone
          ? 'the endpoint answered 410 Gone'
          : `${streak.count} failed attempts in a row since ${new Date(streak.since).toISOString()}`,
      )
      return
    }
    if (n >= settings.maxAttempts) {
      await repo.updateDelivery(id, {
        ...common,
        status: 'failed',
        next_attempt_at: null,
        completed_at: new Date(now()),
      })
      metrics.deliveries.inc({ outcome: 'failed' })
      return await queue.remove(id)
    }
    let delay = backoffMs(n, settings.retryBaseMs, settings.retryMaxMs)
    if (outcome.statusCode === 429 || outcome.statusCode === 503) {
      const asked = retryAfterMs(outcome.retryAfter, now())
      if (asked !== undefined) delay = Math.min(settings.retryMaxMs, Math.max(delay, asked))
    }
    const due = now() + delay
    await repo.updateDelivery(id, { ...common, next_attempt_at: new Date(due) })
    await queue.reschedule(id, due)
  }

  /** Takes the slots at once, reads the batch, then runs each delivery on its own. */
  function runBatch(ids: string[]) {
    const controllers = ids.map((id) => {
      const controller = new AbortController()
      inFlight.set(id, controller)
      return { id, controller }
    })
    load(ids).then(
      ({ deliveries, events }) => {
        for (const { id, controller } of controllers) run(id, deliveries.get(id), events, controller)
      },
      (error) => {
        // MongoDB failed before any attempt: the lease brings the batch back later.
        logger.warn(
          { err: error, count: ids.length },
          'webhook deliveries not read; retried after their lease',
        )
        for (const id of ids) inFlight.delete(id)
        nudge()
      },
    )
  }

  function run(
    id: string,
    delivery: DeliveryRecord | undefined,
    events: Map<string, EventRecord>,
    controller: AbortController,
  ) {
    deliver(id, delivery, events, controller.signal)
      .catch(async (error) => {
        if (controller.signal.aborted) {
          // Shutting down mid-attempt: due again at once, for whichever instance runs next.
          await queue.reschedule(id, now()).catch(() => {})
          return
        }
        // MongoDB or Redis failed around the attempt: the lease brings it back later.
        logger.warn({ err: error, deliveryId: id }, 'webhook delivery interrupted; retried after its lease')
      })
      .finally(() => {
        inFlight.delete(id)
        nudge()
      })
  }

  async function work(): Promise<void> {
    while (running) {
      const free = settings.concurrency - inFlight.size
      let claimed: string[] = []
      if (free > 0) {
        try {
          claimed = await queue.claim(now(), leaseMs, free)
        } catch (error) {
          logger.debug({ err: error }, 'webhook schedule unavailable')
        }
        const fresh = claimed.filter((id) => !inFlight.has(id))
        if (fresh.length > 0) runBatch(fresh)
      }
      if (!running) break
      // Full, or nothing due: wait for a slot, a publish or the poll interval.
      if (claimed.length === 0 || inFlight.size >= settings.concurrency) await sleep(settings.pollMs)
    }
  }

  return {
    start() {
      if (running) return
      running = true
      loop = work()
    },

    /** Something was scheduled now: look at once rather than at the next poll. */
    wake: nudge,

    /** Stops claiming; in-flight attempts get `graceMs` to finish, then are cut and rescheduled. */
    async stop(graceMs = 5_000): Promise<void> {
      if (!running) return
      running = false
      nudge()
      await loop
      const deadline = now() + graceMs
      while (inFlight.size > 0 && now() < deadline) await new Promise((r) => setTimeout(r, 20))
      for (const controller of inFlight.values()) controller.abort()
      while (inFlight.size > 0) await new Promise((r) => setTimeout(r, 10))
    },

    inFlight: () => inFlight.size,
  }
}

function connectionError(error: Error): string {
  if (error instanceof EgressRefused) return `refused: ${error.message}`
  const code = (error as NodeJS.ErrnoException).code
  return code && !error.message.startsWith(code) ? `${code}: ${error.message}` : error.message
}
