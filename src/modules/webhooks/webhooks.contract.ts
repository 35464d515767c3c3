import { createHash } from 'node:crypto'

/**
 * What the webhooks capability offers the capabilities that produce events (occupancy, sessions,
 * payments, reservations, sensors) and what it promises receivers. Producers hand over facts that
 * are already durable; the webhooks capability records them as events, fans them out to the
 * subscriptions that want them, and delivers each from a durable queue with retries.
 */

/** The event types a subscription may ask for. */
export const webhookEventTypes = [
  /** A space's status (the one that counts: overlay, else sensed) changed. */
  'space.state_changed',
  /** A lot's free spaces went below, or back to at least, a subscription's threshold. */
  'lot.availability_threshold_crossed',
  'session.started',
  'session.closed',
  'payment.succeeded',
  'payment.refunded',
  'reservation.created',
  'reservation.cancelled',
  'reservation.checked_in',
  /** A sensor stopped reporting for longer than the staleness window; its space went to unknown. */
  'sensor.stale',
] as const
export type WebhookEventType = (typeof webhookEventTypes)[number]

/**
 * Sent only by an admin's "send a test event" to one subscription: not subscribable, never
 * published by producers. Receivers should accept it (2xx) and may otherwise ignore it.
 */
export const webhookTestEventType = 'webhook.test'

/**
 * An event as a producer hands it over. `id` is derived from the fact it reports (a stream id, a
 * session id and its transition, a refund id): telling the same fact twice gives the same id, so
 * it is recorded and delivered once. Receivers deduplicate by it too.
 */
export type PlatformEvent = {
  /** `evt_` and a stable digest of the fact; see `eventId`. */
  id: string
  type: WebhookEventType
  occurred_at: Date
  /** The lot it happened in (subscriptions may be limited to one lot); null when none applies. */
  lot_id: string | null
  /** The payload's `data` member: snake_case, JSON-safe, no secrets, no personal documents. */
  data: Record<string, unknown>
}

/** The id of the event reporting a fact: the same type and fact parts give the same id. */
export function eventId(type: WebhookEventType, ...fact: readonly string[]): string {
  return `evt_${createHash('sha256')
    .update([type, ...fact].join('\u0000'))
    .digest('hex')
    .slice(0, 32)}`
}

/** A lot's counts after a batch of space changes; the webhooks capability turns them into threshold crossings. */
export type LotAvailability = {
  lot_id: string
  /** The change (stream id) after which the counts were read: the crossing event's id derives from it. */
  after_change: string
  at: Date
  total: number
  free: number
}

/** The port producers call. Every method resolves after the durable step and is idempotent by event id. */
export interface EventSink {
  /** Records events for the subscriptions that want them (cheap no-op when none does). */
  publish(events: readonly PlatformEvent[]): Promise<void>
  /** Whether any enabled subscription wants this type: producers skip building events otherwise. In memory. */
  wants(type: WebhookEventType): boolean
  /** Lots' free-space counts after changes: crossings of each subscription's threshold become events. */
  availability(lots: readonly LotAvailability[]): Promise<void>
}

/** An event sink that drops everything: for tools and tests that run a capability alone. */
export const noEvents: EventSink = {
  publish: async () => {},
  wants: () => false,
  availability: async () => {},
}

/**
 * Delivery headers (documented in the README with the verification recipe):
 *   Webhook-Id         the event id (stable across retries and replays)
 *   Webhook-Timestamp  unix seconds of this attempt
 *   Webhook-Signature  `v1=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>`; during a secret
 *                      rotation, one `v1=` per active secret, separated by a space.
 */
export const webhookHeaders = {
  id: 'Webhook-Id',
  timestamp: 'Webhook-Timestamp',
  signature: 'Webhook-Signature',
} as const
