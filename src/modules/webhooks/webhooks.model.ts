import { Schema } from 'mongoose'
import { type Database, modelOn } from '../../shared/mongo.ts'

/** A signing secret; a rotated-out one keeps signing until `expires_at` (null: the current one). */
export type SigningSecret = { secret: string; created_at: Date; expires_at: Date | null }

/**
 * An admin's webhook endpoint. Written by admins (create, edit, rotate, enable) and by the
 * dispatcher's auto-disable; each write `$set`s the fields it decides, none is a counter.
 */
export type SubscriptionRecord = {
  _id: string
  url: string
  event_types: string[]
  lot_id: string | null
  threshold_free_spaces: number | null
  description: string
  enabled: boolean
  disabled_reason: string | null
  disabled_at: Date | null
  /** Newest first: the current secret, then rotated-out ones until they expire. */
  secrets: SigningSecret[]
  created_at: Date
  updated_at: Date
}

const secretSchema = new Schema<SigningSecret>(
  {
    secret: { type: String, required: true },
    created_at: { type: Date, required: true },
    expires_at: { type: Date, default: null },
  },
  { _id: false },
)

const subscriptionSchema = new Schema<SubscriptionRecord>(
  {
    _id: { type: String, required: true },
    url: { type: String, required: true },
    event_types: { type: [String], required: true },
    lot_id: { type: String, default: null },
    threshold_free_spaces: { type: Number, default: null },
    description: { type: String, default: '' },
    enabled: { type: Boolean, required: true },
    disabled_reason: { type: String, default: null },
    disabled_at: { type: Date, default: null },
    secrets: { type: [secretSchema], required: true },
    created_at: { type: Date, required: true },
    updated_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'webhook_subscriptions' },
)

/** An event as recorded once (insert-only; `_id` is the event id, so telling it twice is one event). */
export type EventRecord = {
  _id: string
  type: string
  occurred_at: Date
  lot_id: string | null
  data: Record<string, unknown>
  recorded_at: Date
}

const eventSchema = new Schema<EventRecord>(
  {
    _id: { type: String, required: true },
    type: { type: String, required: true },
    occurred_at: { type: Date, required: true },
    lot_id: { type: String, default: null },
    data: { type: Schema.Types.Mixed, required: true },
    recorded_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'webhook_events', minimize: false },
)

export const deliveryStatuses = ['pending', 'succeeded', 'failed'] as const
export type DeliveryStatus = (typeof deliveryStatuses)[number]

/**
 * One event owed to one subscription. Inserted once (deterministic `_id`), then written only by
 * the dispatcher that holds its lease in the Redis schedule: one writer at a time, so `$set` is
 * safe. Replays are new deliveries (`replay_of` names the first).
 */
export type DeliveryRecord = {
  _id: string
  event_id: string
  event_type: string
  subscription_id: string
  lot_id: string | null
  status: DeliveryStatus
  /** Attempts made so far (the facts `${_id}:1` .. `${_id}:${attempts}`). */
  attempts: number
  next_attempt_at: Date | null
  last_attempt_at: Date | null
  last_status_code: number | null
  last_error: string | null
  replay_of: string | null
  created_at: Date
  completed_at: Date | null
}

const deliverySchema = new Schema<DeliveryRecord>(
  {
    _id: { type: String, required: true },
    event_id: { type: String, required: true },
    event_type: { type: String, required: true },
    subscription_id: { type: String, required: true },
    lot_id: { type: String, default: null },
    status: { type: String, enum: deliveryStatuses, required: true },
    attempts: { type: Number, required: true },
    next_attempt_at: { type: Date, default: null },
    last_attempt_at: { type: Date, default: null },
    last_status_code: { type: Number, default: null },
    last_error: { type: String, default: null },
    replay_of: { type: String, default: null },
    created_at: { type: Date, required: true },
    completed_at: { type: Date, default: null },
  },
  { versionKey: false, collection: 'webhook_deliveries' },
)
// The per-subscription log (newest first) and the re-enqueue of pending deliveries, paged by `_id`.
deliverySchema.index({ subscription_id: 1, _id: -1 })
deliverySchema.index({ status: 1, _id: 1 })

/** One HTTP attempt of a delivery: an insert-only fact, `_id` `${deliveryId}:${n}` (n from 1). */
export type AttemptRecord = {
  _id: string
  delivery_id: string
  subscription_id: string
  n: number
  at: Date
  succeeded: boolean
  status_code: number | null
  duration_ms: number
  error: string | null
  /** The first KiB of the receiver's answer. */
  response_body: string | null
}

const attemptSchema = new Schema<AttemptRecord>(
  {
    _id: { type: String, required: true },
    delivery_id: { type: String, required: true },
    subscription_id: { type: String, required: true },
    n: { type: Number, required: true },
    at: { type: Date, required: true },
    succeeded: { type: Boolean, required: true },
    status_code: { type: Number, default: null },
    duration_ms: { type: Number, required: true },
    error: { type: String, default: null },
    response_body: { type: String, default: null },
  },
  { versionKey: false, collection: 'webhook_attempts' },
)

export function webhookModels(db: Database) {
  return {
    subscriptions: modelOn(db, 'WebhookSubscription', subscriptionSchema),
    events: modelOn(db, 'WebhookEvent', eventSchema),
    deliveries: modelOn(db, 'WebhookDelivery', deliverySchema),
    attempts: modelOn(db, 'WebhookAttempt', attemptSchema),
  }
}
