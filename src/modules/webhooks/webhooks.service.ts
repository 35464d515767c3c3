import { createHash } from 'node:crypto'
import type { Registry } from 'prom-client'
import { AppError } from '../../shared/errors.ts'
import { keyedCreate } from '../../shared/idempotency.ts'
import { decodeCursor, encodeCursor } from '../../shared/ids.ts'
import type { Logger } from '../../shared/logger.ts'
import type { RedisClient } from '../../shared/redis.ts'
import {
  type EventSink,
  eventId,
  type LotAvailability,
  type PlatformEvent,
  type WebhookEventType,
  webhookEventTypes,
  webhookTestEventType,
} from './webhooks.contract.ts'
import {
  createDispatcher,
  createDispatchMetrics,
  type DispatchSettings,
  payloadOf,
} from './webhooks.dispatcher.ts'
import { isPrivateHost } from './webhooks.egress.ts'
import type {
  AttemptRecord,
  DeliveryRecord,
  DeliveryStatus,
  EventRecord,
  SubscriptionRecord,
} from './webhooks.model.ts'
import { createDeliveryQueue } from './webhooks.queue.ts'
import type { WebhooksRepository } from './webhooks.repository.ts'
import { newSigningSecret } from './webhooks.signing.ts'

/** One line per event type, for GET /webhooks/event-types and the module README. */
export const webhookEventDescriptions: Record<WebhookEventType, string> = {
  'space.state_changed': "A space's status (the one that counts: overlay, else sensed) changed.",
  'lot.availability_threshold_crossed':
    "A lot's free spaces went below, or back to at least, the subscription's threshold_free_spaces.",
  'session.started': 'A vehicle entered: a parking session started.',
  'session.closed': 'A parking session ended (the vehicle left, or staff closed it).',
  'payment.succeeded': 'A payment settled.',
  'payment.refunded': 'A payment was refunded, in full or in part.',
  'reservation.created': 'A reservation was booked.',
  'reservation.cancelled': 'A reservation was cancelled.',
  'reservation.checked_in': "A reservation's vehicle checked in.",
  'sensor.stale':
    'A sensor stopped reporting for longer than the staleness window; its space went to unknown.',
}

const THRESHOLD_TYPE = 'lot.availability_threshold_crossed' satisfies WebhookEventType

export type WebhooksSettings = DispatchSettings & {
  /** Run the delivery loop in this instance. */
  dispatch: boolean
  /** A rotated-out secret keeps signing this long. */
  secretOverlapMs: number
  /** How often the cache of enabled subscriptions is reloaded (changes made by other instances). */
  refreshMs: number
  /**
   * How often a dispatching instance puts lost pending deliveries back in the schedule (default
   * a minute): those recorded while the schedule could not be written, or whose resume failed.
   */
  sweepMs?: number | undefined
  /**
   * `data.purge` deletes finished deliveries, their attempts and unreferenced events older than
   * this (default 30 days).
   */
  retentionMs?: number | undefined
  /** Accept http:// endpoint URLs (otherwise https:// only). */
  allowHttp: boolean
}

export type SubscriptionInput = {
  url: string
  event_types: WebhookEventType[]
  lot_id?: string | null | undefined
  threshold_free_spaces?: number | null | undefined
  description?: string | undefined
  enabled?: boolean | undefined
}

/** An event as the sink records it: a producer's, or an admin's test event. */
type RecordedEvent = Omit<PlatformEvent, 'type'> & {
  type: WebhookEventType | typeof webhookTestEventType
}

/** Pending deliveries read per page, and pages per sweep (the next sweep goes on from there). */
const SWEEP_PAGE = 500
const SWEEP_PAGES = 4

export type SubscriptionPatch = { [K in keyof SubscriptionInput]?: SubscriptionInput[K] | undefined }

export type SubscriptionView = ReturnType<typeof toSubscriptionView>
export type DeliveryView = ReturnType<typeof toDeliveryView>

const iso = (date: Date | null) => date?.toISOString() ?? null

function toSubscriptionView(record: SubscriptionRecord, now: Date) {
  return {
    id: record._id,
    url: record.url,
    event_types: record.event_types as WebhookEventType[],
    lot_id: record.lot_id,
    threshold_free_spaces: record.threshold_free_spaces,
    description: record.description,
    enabled: record.enabled,
    disabled_reason: record.disabled_reason,
    disabled_at: iso(record.disabled_at),
    /** Until when a rotated-out secret still signs alongside the current one. */
    previous_secret_expires_at: iso(
      record.secrets.slice(1).find((s) => s.expires_at !== null && s.expires_at > now)?.expires_at ?? null,
    ),
    created_at: record.created_at.toISOString(),
    updated_at: record.updated_at.toISOString(),
  }
}

/** A subscription with its signing secret (the current one), as its create answers. */
function withSecret(record: SubscriptionRecord, now: Date) {
  const current = record.secrets.find((s) => s.expires_at === null) ?? record.secrets[0]
  return { ...toSubscriptionView(record, now), secret: current?.secret ?? '' }
}

function toDeliveryView(record: DeliveryRecord) {
  return {
    id: record._id,
    event_id: record.event_id,
    event_type: record.event_type as WebhookEventType | typeof webhookTestEventType,
    subscription_id: record.subscription_id,
    lot_id: record.lot_id,
    status: record.status,
    attempts: record.attempts,
    next_attempt_at: iso(record.next_attempt_at),
    last_attempt_at: iso(record.last_attempt_at),
    last_status_code: record.last_status_code,
    last_error: record.last_error,
    replay_of: record.replay_of,
    created_at: record.created_at.toISOString(),
    completed_at: iso(record.completed_at),
  }
}

function toAttemptView(record: AttemptRecord) {
  return {
    n: record.n,
    at: record.at.toISOString(),
    succeeded: record.succeeded,
    status_code: record.status_code,
    duration_ms: record.duration_ms,
    error: record.error,
    response_body: record.response_body,
  }
}

/**
 * Delivery ids start with the event's time (12 hex digits of ms), so that `_id` order is time
 * order; the rest is a digest of the event and subscription (the same pair is one delivery) or,
 * for a replay, random.
 */
export function deliveryIdOf(eventIdValue: string, subscriptionId: string, occurredAt: Date): string {
  const digest = createHash('sha256').update(`${eventIdValue}\u0000${subscriptionId}`).digest('hex')
  return `whd_${timeHex(occurredAt.getTime())}${digest.slice(0, 20)}`
}

const timeHex = (ms: number) => Math.max(0, ms).toString(16).padStart(12, '0').slice(-12)

/**
 * A keyed write's resource id (a uuidv7, src/shared/idempotency.ts) as the ids of what it makes:
 * its 32 hex digits start with its time in ms (12), as delivery ids do, so a replay's delivery
 * id is `whd_` and those digits, and a retry of the write makes the same ids again.
 */
const hexOf = (resourceId: string) => resourceId.replaceAll('-', '')
const timeOf = (resourceId: string) => new Date(Number.parseInt(hexOf(resourceId).slice(0, 12), 16))

/** Who asks for a write a client may retry, and its Idempotency-Key. */
export type Keyed = { callerId: string; key?: string | undefined }
const unkeyed: Keyed = { callerId: 'system' }

const fieldError = (field: string, reason: string) =>
  new AppError('VALIDATION_FAILED', `${field} ${reason}`, {
    errors: [{ in: 'body', field, pointer: `/${field}`, reason }],
  })

/**
 * Wraps a loader so that reloads may overlap: a result is kept only when no load started later
 * has been kept already. Without it, a reload begun before a change (the periodic one, or an
 * auto-disable's) that answers after the change's own reload puts the old list back, and an event
 * published meanwhile misses a subscription just created.
 */
export function latestWins<T>(load: () => Promise<T>, keep: (value: T) => void): () => Promise<void> {
  let started = 0
  let kept = 0
  return async () => {
    const turn = ++started
    const value = await load()
    if (turn < kept) return
    kept = turn
    keep(value)
  }
}

export type WebhooksService = ReturnType<typeof createWebhooksService>

/**
 * Subscriptions, the event sink producers call, the delivery log and replays. The sink keeps
 * the enabled subscriptions in memory (reloaded on every change made here and every `refreshMs`
 * for changes made by other instances); the dispatcher delivers from the Redis schedule.
 */
export function createWebhooksService(deps: {
  repo: WebhooksRepository
  redis: RedisClient
  lotExists: (lotId: string) => Promise<boolean>
  registry: Registry
  logger: Logger
  settings: WebhooksSettings
  now?: () => Date
}) {
  const { repo, settings, logger } = deps
  const now = deps.now ?? (() => new Date())
  const queue = createDeliveryQueue(deps.redis)
  const metrics = createDispatchMetrics(deps.registry, () => queue.depth())
  let enabled: SubscriptionRecord[] = []
  let loaded: Promise<void> | undefined
  let refreshTimer: NodeJS.Timeout | undefined
  let seeding: Promise<void> | undefined
  let sweepTimer: NodeJS.Timeout | undefined
  let sweeping: Promise<number> | undefined
  let sweptUpTo: string | undefined
  const disabling = new Map<string, Promise<void>>()

  const reload = latestWins(
    () => repo.enabledSubscriptions(),
    (subscriptions) => {
      enabled = subscriptions
    },
  )

  /** Reloads now; a reload that fails keeps the previous cache (logged). */
  const refresh = async () => {
    loaded = reload().catch((error) => logger.warn({ err: error }, 'webhook subscriptions not reloaded'))
    await loaded
  }

  /**
   * Turns a subscription off once: its other deliveries in flight fail too and ask again, at the
   * same time (they share the first one's turn) or later (it is off already: nothing to do).
   */
  function disable(subscription: SubscriptionRecord, reason: string): Promise<void> {
    let turn = disabling.get(subscription._id)
    if (!turn) {
      turn = disableOnce(subscription, reason).finally(() => disabling.delete(subscription._id))
      disabling.set(subscription._id, turn)
    }
    return turn
  }

  async function disableOnce(subscription: SubscriptionRecord, reason: string): Promise<void> {
    const current = await repo.findSubscription(subscription._id)
    if (!current?.enabled) return
    const at = now()
    await repo.updateSubscription(subscription._id, {
      enabled: false,
      disabled_reason: reason,
      disabled_at: at,
      updated_at: at,
    })
    logger.warn(
      { subscriptionId: subscription._id, url: subscription.url, reason },
      'webhook subscription disabled',
    )
    await refresh()
  }

  const dispatcher = createDispatcher({
    repo,
    queue,
    metrics,
    logger,
    settings,
    disable,
    // The cache (reloaded every refreshMs): a change made in another instance applies here by then.
    subscription: async (id) => enabled.find((s) => s._id === id) ?? (await repo.findSubscription(id)),
    now: () => now().getTime(),
  })

  /** Puts pending deliveries (of every enabled subscription, or one) back in the schedule. */
  async function enqueuePending(subscriptionId?: string): Promise<number> {
    const enabledIds = new Set(
      subscriptionId ? [subscriptionId] : (await repo.enabledSubscriptions()).map((s) => s._id),
    )
    let after: string | undefined
    let count = 0
    for (;;) {
      const page = await repo.pendingDeliveries({ subscriptionId, limit: 500, after })
      const due = page.filter((d) => enabledIds.has(d.subscription_id))
      await queue.add(due.map((d) => ({ id: d._id, dueAt: d.next_attempt_at?.getTime() ?? now().getTime() })))
      count += due.length
      after = page.at(-1)?._id
      if (page.length < 500 || !after) return count
    }
  }

  /** Rebuilds the schedule from MongoDB when Redis lost it (or at start); one rebuild at a time here. */
  function seedSchedule(force: boolean): Promise<void> {
    seeding ??= (async () => {
      try {
        if (!force && (await queue.isSeeded())) return
        const count = await enqueuePending()
        await queue.markSeeded()
        if (count > 0) logger.info({ count }, 'pending webhook deliveries scheduled')
        dispatcher.wake()
      } catch (error) {
        logger.warn({ err: error }, 'webhook schedule not rebuilt; retried at the next refresh')
      } finally {
        seeding = undefined
      }
    })()
    return seeding
  }

  /**
   * Puts back in the schedule the pending deliveries of enabled subscriptions that were due
   * longer ago than a dispatcher's lease (or held with no due time): a delivery recorded while
   * the schedule could not be written, or whose resume failed, is otherwise found only at the
   * next restart. NX: one in the schedule (due, leased, waiting) keeps its time. A few pages per
   * sweep, the next one going on from there.
   */
  function sweep(): Promise<number> {
    sweeping ??= (async () => {
      try {
        const enabledIds = new Set(enabled.map((s) => s._id))
        // A dispatcher's lease (webhooks.dispatcher.ts): an attempt and its writes are over by then.
        const cutoff = now().getTime() - (settings.timeoutMs * 2 + 30_000)
        let count = 0
        for (let pages = 0; pages < SWEEP_PAGES; pages++) {
          const page = await repo.pendingDeliveries({ limit: SWEEP_PAGE, after: sweptUpTo })
          const lost = page.filter(
            (d) =>
              enabledIds.has(d.subscription_id) &&
              (d.next_attempt_at === null || d.next_attempt_at.getTime() < cutoff),
          )
          await queue.add(lost.map((d) => ({ id: d._id, dueAt: now().getTime() })))
          count += lost.length
          sweptUpTo = page.length < SWEEP_PAGE ? undefined : page.at(-1)?._id
          if (sweptUpTo === undefined) break
        }
        if (count > 0) {
          logger.info({ count }, 'pending webhook deliveries missing from the schedule put back')
          dispatcher.wake()
        }
        return count
      } finally {
        sweeping = undefined
      }
    })()
    return sweeping
  }

  const matches = (subscription: SubscriptionRecord, event: PlatformEvent) =>
    subscription.event_types.includes(event.type) &&
    (subscription.lot_id === null || subscription.lot_id === event.lot_id)

  /** Records events and one delivery per target, then schedules them. */
  async function record(
    targets: { event: RecordedEvent; subscriptions: SubscriptionRecord[] }[],
  ): Promise<void> {
    const wanted = targets.filter((t) => t.subscriptions.length > 0)
    if (wanted.length === 0) return
    const recordedAt = now()
    const events: EventRecord[] = []
    const seen = new Set<string>()
    for (const { event } of wanted) {
      if (seen.has(event.id)) continue
      seen.add(event.id)
      events.push({
        _id: event.id,
        type: event.type,
        occurred_at: event.occurred_at,
        lot_id: event.lot_id,
        data: event.data,
        recorded_at: recordedAt,
      })
    }
    // An event told before keeps its first record: its deliveries' ids derive from that.
    const stored = await repo.recordEvents(events)
    const deliveries = new Map<string, DeliveryRecord>()
    for (const { event, subscriptions } of wanted) {
      const occurredAt = stored.get(event.id)?.occurred_at ?? event.occurred_at
      for (const subscription of subscriptions) {
        const id = deliveryIdOf(event.id, subscription._id, occurredAt)
        deliveries.set(id, {
          _id: id,
          event_id: event.id,
          event_type: event.type,
          subscription_id: subscription._id,
          lot_id: event.lot_id,
          status: 'pending',
          attempts: 0,
          next_attempt_at: recordedAt,
          last_attempt_at: null,
          last_status_code: null,
          last_error: null,
          replay_of: null,
          created_at: recordedAt,
          completed_at: null,
        })
      }
    }
    await repo.insertDeliveries([...deliveries.values()])
    // NX: a delivery scheduled already keeps its time; one finished already is dropped when claimed.
    await queue.add([...deliveries.keys()].map((id) => ({ id, dueAt: recordedAt.getTime() })))
    dispatcher.wake()
  }

  const sink: EventSink = {
    async publish(events) {
      await loaded
      // Threshold crossings are per subscription: they come from availability(), not from here.
      await record(
        events.map((event) => ({
          event,
          subscriptions:
            event.type === THRESHOLD_TYPE
              ? []
              : enabled.filter((subscription) => matches(subscription, event)),
        })),
      )
    },

    wants(type) {
      return enabled.some((subscription) => subscription.event_types.includes(type))
    },

    async availability(lots: readonly LotAvailability[]) {
      await loaded
      const watchers = enabled.filter(
        (s) =>
          s.threshold_free_spaces !== null && s.lot_id !== null && s.event_types.includes(THRESHOLD_TYPE),
      )
      if (watchers.length === 0) return
      const checks = lots.flatMap((lot) =>
        watchers
          .filter((s) => s.lot_id === lot.lot_id)
          .map((subscription) => {
            const threshold = subscription.threshold_free_spaces ?? 0
            return { subscription, lot, threshold, side: lot.free < threshold ? 'below' : 'above' }
          }),
      )
      const previous = await queue.swapSides(
        checks.map((c) => ({
          subscriptionId: c.subscription._id,
          lotId: c.lot.lot_id,
          side: c.side,
          afterChange: c.lot.after_change,
        })),
      )
      const crossings = checks.filter((c, i) => {
        const before = previous[i]
        return before !== undefined && before !== '' && before !== '=' && before !== c.side
      })
      await record(
        crossings.map(({ subscription, lot, threshold, side }) => ({
          event: {
            id: eventId(THRESHOLD_TYPE, subscription._id, lot.lot_id, lot.after_change),
            type: THRESHOLD_TYPE,
            occurred_at: lot.at,
            lot_id: lot.lot_id,
            data: { lot_id: lot.lot_id, threshold, direction: side, free: lot.free, total: lot.total },
          },
          subscriptions: [subscription],
        })),
      )
    },
  }

  async function subscriptionOf(id: string): Promise<SubscriptionRecord> {
    const found = await repo.findSubscription(id)
    if (!found) throw new AppError('NOT_FOUND', `No webhook subscription ${id}`)
    return found
  }

  /** Sends to a disabled subscription are a 409 until an admin enables it. */
  function mustBeEnabled(subscription: SubscriptionRecord): SubscriptionRecord {
    if (!subscription.enabled) {
      throw new AppError('CONFLICT', 'The subscription is disabled: enable it first', {
        extensions: { reason: 'subscription_disabled' },
      })
    }
    return subscription
  }

  function checkUrl(value: string): string {
    let url: URL
    try {
      url = new URL(value)
    } catch {
      throw fieldError('url', 'must be an absolute http or https URL')
    }
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && settings.allowHttp)) {
      throw fieldError('url', settings.allowHttp ? 'must use http or https' : 'must use https')
    }
    if (url.username || url.password) throw fieldError('url', 'must not carry credentials')
    if (!settings.allowPrivateHosts && isPrivateHost(url.hostname)) {
      throw fieldError('url', 'must not name a loopback, private or link-local host')
    }
    url.hash = ''
    return url.toString()
  }

  /** The rules across fields, on the subscription as it would be after the write. */
  async function checkRules(next: {
    event_types: string[]
    lot_id: string | null
    threshold_free_spaces: number | null
  }): Promise<void> {
    const wantsThreshold = next.event_types.includes(THRESHOLD_TYPE)
    if (wantsThreshold && next.threshold_free_spaces === null) {
      throw fieldError('threshold_free_spaces', `is required with ${THRESHOLD_TYPE}`)
    }
    if (!wantsThreshold && next.threshold_free_spaces !== null) {
      throw fieldError('threshold_free_spaces', `applies only with ${THRESHOLD_TYPE}`)
    }
    if (wantsThreshold && next.lot_id === null)
      throw fieldError('lot_id', `is required with ${THRESHOLD_TYPE}`)
    if (next.lot_id !== null && !(await deps.lotExists(next.lot_id))) {
      throw new AppError('NOT_FOUND', `No lot ${next.lot_id}`)
    }
  }

  const unique = <T>(values: readonly T[]) => [...new Set(values)]

  async function get(id: string) {
    const record = await subscriptionOf(id)
    return { ...toSubscriptionView(record, now()), consecutive_failures: await queue.failures(id) }
  }

  async function update(id: string, patch: SubscriptionPatch) {
    const current = await subscriptionOf(id)
    const at = now()
    const fields: Partial<SubscriptionRecord> = { updated_at: at }
    if (patch.url !== undefined) fields.url = checkUrl(patch.url)
    if (patch.event_types !== undefined) fields.event_types = unique(patch.event_types)
    if (patch.lot_id !== undefined) fields.lot_id = patch.lot_id
    if (patch.threshold_free_spaces !== undefined) fields.threshold_free_spaces = patch.threshold_free_spaces
    if (patch.description !== undefined) fields.description = patch.description.trim()
    const next = { ...current, ...fields }
    await checkRules(next)
    const enabling = patch.enabled === true && !current.enabled
    if (patch.enabled !== undefined) {
      fields.enabled = patch.enabled
      fields.disabled_reason = patch.enabled ? null : 'disabled by an admin'
      fields.disabled_at = patch.enabled ? null : at
    }
    if (!(await repo.updateSubscription(id, fields)))
      throw new AppError('NOT_FOUND', `No webhook subscription ${id}`)
    // A new lot or threshold starts from a fresh first observation.
    if (next.lot_id !== current.lot_id || next.threshold_free_spaces !== current.threshold_free_spaces) {
      await queue.forget(id, current.lot_id ? [current.lot_id] : [])
    }
    await refresh()
    if (enabling) await resume(id)
    return await get(id)
  }

  /** After an enable: the failure streak starts over and the pending deliveries go out again. */
  async function resume(id: string): Promise<void> {
    await queue.resetFailures(id)
    const count = await enqueuePending(id)
    if (count > 0) dispatcher.wake()
  }

  return {
    ...sink,
    sink,

    /** Loads the subscriptions, rebuilds the schedule when needed, and starts the delivery loop. */
    async start(): Promise<void> {
      await refresh()
      refreshTimer = setInterval(() => {
        void refresh()
        if (settings.dispatch) void seedSchedule(false)
      }, settings.refreshMs)
      refreshTimer.unref()
      if (settings.dispatch) {
        void seedSchedule(true)
        dispatcher.start()
        sweepTimer = setInterval(() => {
          sweep().catch((error) => logger.warn({ err: error }, 'webhook schedule not swept'))
        }, settings.sweepMs ?? 60_000)
        sweepTimer.unref()
      }
    },

    async stop(): Promise<void> {
      clearInterval(refreshTimer)
      clearInterval(sweepTimer)
      await dispatcher.stop()
      await seeding
      await sweeping?.catch(() => {})
    },

    eventTypes: () =>
      webhookEventTypes.map((type) => ({ type, description: webhookEventDescriptions[type] })),

    /** With an Idempotency-Key, a retry answers the subscription (and secret) the first one made. */
    async create(input: SubscriptionInput, request: Keyed = unkeyed) {
      return await keyedCreate(
        repo.idempotency,
        { kind: 'webhook_subscription', ...request },
        input,
        async (id) => {
          const at = now()
          const record: SubscriptionRecord = {
            _id: id,
            url: checkUrl(input.url),
            event_types: unique(input.event_types),
            lot_id: input.lot_id ?? null,
            threshold_free_spaces: input.threshold_free_spaces ?? null,
            description: input.description?.trim() ?? '',
            enabled: input.enabled ?? true,
            disabled_reason: null,
            disabled_at: input.enabled === false ? at : null,
            secrets: [{ secret: newSigningSecret(), created_at: at, expires_at: null }],
            created_at: at,
            updated_at: at,
          }
          await checkRules(record)
          // A retry whose first attempt got this far answers what that one stored.
          const stored = (await repo.insertSubscription(record)) ? record : await subscriptionOf(id)
          await refresh()
          return withSecret(stored, at)
        },
        async (id) => {
          const stored = await repo.findSubscription(id)
          return stored && withSecret(stored, now())
        },
      )
    },

    async list(page: { limit: number; cursor?: string | undefined }) {
      const rows = await repo.listSubscriptions({
        limit: page.limit + 1,
        after: page.cursor ? decodeCursor(page.cursor) : undefined,
      })
      const data = rows.slice(0, page.limit)
      const last = data.at(-1)
      const at = now()
      return {
        data: data.map((r) => toSubscriptionView(r, at)),
        next_cursor: rows.length > page.limit && last ? encodeCursor(last._id) : null,
      }
    },

    get,

    update,
    resume,

    async enable(id: string) {
      return await update(id, { enabled: true })
    },

    async remove(id: string): Promise<void> {
      const current = await subscriptionOf(id)
      if (!(await repo.deleteSubscription(id)))
        throw new AppError('NOT_FOUND', `No webhook subscription ${id}`)
      await queue.forget(id, current.lot_id ? [current.lot_id] : [])
      await refresh()
      // Its pending deliveries (held ones too) are failed by the dispatcher when due.
      if ((await enqueuePending(id)) > 0) dispatcher.wake()
    },

    /** A new current secret; the old one keeps signing (a second `v1=`) for the overlap. */
    async rotateSecret(id: string) {
      const current = await subscriptionOf(id)
      const at = now()
      const overlapEnd = new Date(at.getTime() + settings.secretOverlapMs)
      const secret = newSigningSecret()
      const secrets = [
        { secret, created_at: at, expires_at: null },
        ...current.secrets
          .map((s) => ({
            ...s,
            expires_at: s.expires_at === null || s.expires_at > overlapEnd ? overlapEnd : s.expires_at,
          }))
          .filter((s) => s.expires_at > at),
      ]
      await repo.updateSubscription(id, { secrets, updated_at: at })
      await refresh()
      return { ...toSubscriptionView({ ...current, secrets, updated_at: at }, at), secret }
    },

    async deliveries(
      subscriptionId: string,
      query: { limit: number; cursor?: string | undefined; status?: DeliveryStatus | undefined },
    ) {
      await subscriptionOf(subscriptionId)
      const rows = await repo.listDeliveries({
        subscriptionId,
        status: query.status,
        limit: query.limit + 1,
        before: query.cursor ? decodeCursor(query.cursor) : undefined,
      })
      const data = rows.slice(0, query.limit)
      const last = data.at(-1)
      return {
        data: data.map(toDeliveryView),
        next_cursor: rows.length > query.limit && last ? encodeCursor(last._id) : null,
      }
    },

    async delivery(id: string) {
      const record = await repo.findDelivery(id)
      if (!record) throw new AppError('NOT_FOUND', `No webhook delivery ${id}`)
      const [attempts, event] = await Promise.all([repo.attemptsOf(id), repo.findEvent(record.event_id)])
      return {
        ...toDeliveryView(record),
        event: event ? payloadOf(event) : null,
        attempt_log: attempts.map(toAttemptView),
      }
    },

    /**
     * A `webhook.test` event to one subscription, through the queue like any other (it is
     * logged). With an Idempotency-Key, a retry answers the test delivery the first one queued.
     */
    async sendTest(id: string, request: Keyed = unkeyed) {
      const deliveryOf = (resourceId: string) =>
        repo.findDelivery(deliveryIdOf(`evt_${hexOf(resourceId)}`, id, timeOf(resourceId)))
      return await keyedCreate(
        repo.idempotency,
        { kind: 'webhook_test', ...request },
        { subscription_id: id },
        async (resourceId) => {
          const subscription = mustBeEnabled(await subscriptionOf(id))
          const test: RecordedEvent = {
            id: `evt_${hexOf(resourceId)}`,
            type: webhookTestEventType,
            occurred_at: timeOf(resourceId),
            lot_id: null,
            data: { subscription_id: id, message: 'A test event sent by an admin; accept it with a 2xx.' },
          }
          await record([{ event: test, subscriptions: [subscription] }])
          const delivery = await deliveryOf(resourceId)
          if (!delivery) throw new Error('the test delivery was not recorded')
          return toDeliveryView(delivery)
        },
        async (resourceId) => {
          const delivery = await deliveryOf(resourceId)
          return delivery && toDeliveryView(delivery)
        },
      )
    },

    /**
     * The same event (same id) to the same subscription again, as a new delivery. With an
     * Idempotency-Key, a retry answers the delivery the first one queued.
     */
    async replay(id: string, request: Keyed = unkeyed) {
      return await keyedCreate(
        repo.idempotency,
        { kind: 'webhook_replay', ...request },
        { delivery_id: id },
        async (resourceId) => {
          const original = await repo.findDelivery(id)
          if (!original) throw new AppError('NOT_FOUND', `No webhook delivery ${id}`)
          const subscription = await repo.findSubscription(original.subscription_id)
          if (!subscription) throw new AppError('CONFLICT', "The delivery's subscription was deleted")
          mustBeEnabled(subscription)
          const at = now()
          const fresh: DeliveryRecord = {
            ...original,
            _id: `whd_${hexOf(resourceId)}`,
            status: 'pending',
            attempts: 0,
            next_attempt_at: at,
            last_attempt_at: null,
            last_status_code: null,
            last_error: null,
            replay_of: original.replay_of ?? original._id,
            created_at: at,
            completed_at: null,
          }
          await repo.insertDeliveries([fresh])
          await queue.add([{ id: fresh._id, dueAt: at.getTime() }])
          dispatcher.wake()
          // A retry whose first attempt got this far answers what that one stored.
          return toDeliveryView((await repo.findDelivery(fresh._id)) ?? fresh)
        },
        async (resourceId) => {
          const delivery = await repo.findDelivery(`whd_${hexOf(resourceId)}`)
          return delivery && toDeliveryView(delivery)
        },
      )
    },

    /** One sweep now (it runs every `sweepMs` in a dispatching instance); answers how many were put back. */
    sweep,

    /**
     * `data.purge`: finished deliveries older than the retention (by their time-prefixed `_id`),
     * their attempts, and the events older than it that no delivery names any more.
     */
    async purgeExpired(at = now()) {
      const before = at.getTime() - (settings.retentionMs ?? 30 * 86_400_000)
      const { deliveries, attempts } = await repo.purgeFinishedDeliveries(`whd_${timeHex(before)}`)
      const events = await repo.purgeUnreferencedEvents(new Date(before))
      return { deliveries, attempts, events }
    },

    /** Test and tool hook: the dispatcher's deliveries in flight in this instance. */
    inFlight: () => dispatcher.inFlight(),
  }
}
