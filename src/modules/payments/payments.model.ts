import { Schema } from 'mongoose'
import { type Database, modelOn } from '../../shared/mongo.ts'
import type { FeeLine } from '../sessions/operations.contract.ts'

export const paymentMethods = ['cash', 'card', 'mobile'] as const
export type PaymentMethod = (typeof paymentMethods)[number]

/** What a payment shows; derived from its state facts and refunds (see README), cached here. */
export const paymentStatuses = [
  'pending',
  'processing',
  'succeeded',
  'failed',
  'canceled',
  'partially_refunded',
  'refunded',
] as const
export type PaymentStatus = (typeof paymentStatuses)[number]

/** The states a payment reaches by facts; refunds add the refunded ones by amounts. */
export const stateFacts = ['processing', 'canceled', 'failed', 'succeeded'] as const
export type StateFact = (typeof stateFacts)[number]

export type PaymentRecord = {
  _id: string
  session_id: string
  ticket_number: string
  lot_id: string
  plate: string
  /** The session's customer (who sees it in "my payments"), else the payer when a customer paid. */
  user_id: string | null
  /** Who recorded or started it. */
  payer_id: string
  method: PaymentMethod
  provider: 'stripe' | null
  payment_intent_id: string | null
  /** For the app to confirm the intent; only its owner and staff ever read it back. */
  client_secret: string | null
  amount: number
  currency: string
  tendered: number | null
  change: number | null
  discount_code: string | null
  /** The settlement this payment claims: the fact `${session_id}:${settlement_index}`. */
  settlement_index: number
  /** The fee as it stood when the payment was made: the receipt's lines. */
  entry_at: Date
  exit_at: Date | null
  duration_minutes: number
  lines: FeeLine[]
  /** Cache of the facts; GET of one payment recomputes it. */
  status: PaymentStatus
  receipt_number: string | null
  settled_at: Date | null
  /** A successful intent for a session another payment had settled: refunded automatically. */
  duplicate: boolean
  created_at: Date
  updated_at: Date
}

const feeLineSchema = new Schema<FeeLine>(
  {
    kind: { type: String, required: true },
    description: { type: String, required: true },
    amount: { type: Number, required: true },
  },
  { _id: false },
)

const paymentSchema = new Schema<PaymentRecord>(
  {
    _id: { type: String, required: true },
    session_id: { type: String, required: true },
    ticket_number: { type: String, required: true },
    lot_id: { type: String, required: true },
    plate: { type: String, required: true },
    user_id: { type: String, default: null },
    payer_id: { type: String, required: true },
    method: { type: String, enum: paymentMethods, required: true },
    provider: { type: String, default: null },
    payment_intent_id: { type: String, default: null },
    client_secret: { type: String, default: null },
    amount: { type: Number, required: true },
    currency: { type: String, required: true },
    tendered: { type: Number, default: null },
    change: { type: Number, default: null },
    discount_code: { type: String, default: null },
    settlement_index: { type: Number, required: true },
    entry_at: { type: Date, required: true },
    exit_at: { type: Date, default: null },
    duration_minutes: { type: Number, required: true },
    lines: { type: [feeLineSchema], default: [] },
    status: { type: String, enum: paymentStatuses, required: true },
    receipt_number: { type: String, default: null },
    settled_at: { type: Date, default: null },
    duplicate: { type: Boolean, required: true },
    created_at: { type: Date, required: true },
    updated_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'payments' },
)
// Lists page by `_id` (uuidv7: oldest first) within a customer, a session, or a status.
paymentSchema.index({ user_id: 1, _id: 1 })
paymentSchema.index({ session_id: 1, _id: 1 })
paymentSchema.index({ status: 1, _id: 1 })

/**
 * `_id` `${sessionId}:${n}`: the n-th settlement of a session. Insert-only; the insert that wins may
 * take the money, and a charge that fails deletes its own fact (compensation).
 */
export type SettlementRecord = {
  _id: string
  session_id: string
  payment_id: string
  amount: number
  currency: string
  receipt_number: string
  created_at: Date
}

const settlementSchema = new Schema<SettlementRecord>(
  {
    _id: { type: String, required: true },
    session_id: { type: String, required: true },
    payment_id: { type: String, required: true },
    amount: { type: Number, required: true },
    currency: { type: String, required: true },
    receipt_number: { type: String, required: true },
    created_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'settlements' },
)

/** `_id` `${paymentId}:${state}`: a payment reached this state (insert-only, so events dedup). */
export type PaymentStateRecord = {
  _id: string
  payment_id: string
  state: StateFact
  source: string
  created_at: Date
}

const paymentStateSchema = new Schema<PaymentStateRecord>(
  {
    _id: { type: String, required: true },
    payment_id: { type: String, required: true },
    state: { type: String, enum: stateFacts, required: true },
    source: { type: String, required: true },
    created_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'payment_states' },
)

/** `_id` `${paymentId}:${k}`: the k-th refund of a payment; the insert of k decides who refunds. */
export type RefundRecord = {
  _id: string
  payment_id: string
  session_id: string
  amount: number
  currency: string
  reason: string
  /** 'stripe' when the money goes back through Stripe (absent on refunds written before). */
  provider?: 'stripe' | null
  /**
   * Stripe's refund id once Stripe took it; null for cash and card-terminal payments, and for a
   * Stripe refund whose answer was lost (in doubt: asked again with its own key).
   */
  provider_refund_id: string | null
  refunded_by: string
  created_at: Date
}

const refundSchema = new Schema<RefundRecord>(
  {
    _id: { type: String, required: true },
    payment_id: { type: String, required: true },
    session_id: { type: String, required: true },
    amount: { type: Number, required: true },
    currency: { type: String, required: true },
    reason: { type: String, required: true },
    provider: { type: String, default: null },
    provider_refund_id: { type: String, default: null },
    refunded_by: { type: String, required: true },
    created_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'refunds' },
)

/** `_id` is the Stripe event id: an event handled once is skipped when delivered again. */
export type StripeEventRecord = { _id: string; type: string; created_at: Date }

const stripeEventSchema = new Schema<StripeEventRecord>(
  {
    _id: { type: String, required: true },
    type: { type: String, required: true },
    created_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'stripe_events' },
)

/** `_id` is a PaymentIntent id: confirm and webhook find their payment by `_id`. */
export type StripeIntentRecord = { _id: string; payment_id: string; created_at: Date }

const stripeIntentSchema = new Schema<StripeIntentRecord>(
  {
    _id: { type: String, required: true },
    payment_id: { type: String, required: true },
    created_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'stripe_intents' },
)

export function paymentModels(db: Database) {
  return {
    payments: modelOn(db, 'Payment', paymentSchema),
    settlements: modelOn(db, 'Settlement', settlementSchema),
    paymentStates: modelOn(db, 'PaymentState', paymentStateSchema),
    refunds: modelOn(db, 'Refund', refundSchema),
    stripeEvents: modelOn(db, 'StripeEvent', stripeEventSchema),
    stripeIntents: modelOn(db, 'StripeIntent', stripeIntentSchema),
  }
}
