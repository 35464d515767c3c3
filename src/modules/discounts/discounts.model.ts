import { Schema } from 'mongoose'
import { type Database, modelOn } from '../../shared/mongo.ts'

export const discountTypes = ['percentage', 'fixed_amount', 'free_hours'] as const
export type DiscountType = (typeof discountTypes)[number]

export const validationKinds = ['full', 'free_minutes', 'fixed', 'percentage'] as const
export type ValidationKind = (typeof validationKinds)[number]

/** `_id` is the code in uppercase: `summer20` and `SUMMER20` are one code, and lookups go by `_id`. */
export type DiscountRecord = {
  _id: string
  name: string
  discount_type: DiscountType
  /** percentage: 1..100; fixed_amount: minor units of `currency`; free_hours: hours, halves allowed. */
  value: number
  /** fixed_amount only. */
  currency: string | null
  valid_from: Date
  valid_to: Date | null
  max_uses: number | null
  max_uses_per_user: number | null
  /** Only valid at this facility, when set. */
  lot_id: string | null
  is_active: boolean
  created_at: Date
  updated_at: Date
}

const discountSchema = new Schema<DiscountRecord>(
  {
    _id: { type: String, required: true },
    name: { type: String, required: true },
    discount_type: { type: String, enum: discountTypes, required: true },
    value: { type: Number, required: true },
    currency: { type: String, default: null },
    valid_from: { type: Date, required: true },
    valid_to: { type: Date, default: null },
    max_uses: { type: Number, default: null },
    max_uses_per_user: { type: Number, default: null },
    lot_id: { type: String, default: null },
    is_active: { type: Boolean, required: true },
    created_at: { type: Date, required: true },
    updated_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'discounts' },
)
// The admin list filtered by state, paged by code.
discountSchema.index({ is_active: 1, _id: 1 })

/**
 * A code redeemed for a session: insert-only, `_id` `${code}:${sessionId}`, so that a second
 * redemption of one code for one session is a duplicate key. The adjustment is fixed at redemption:
 * a later edit of the discount does not change what a session was granted.
 */
export type RedemptionRecord = {
  _id: string
  code: string
  session_id: string
  user_id: string | null
  lot_id: string
  kind: 'percentage' | 'fixed' | 'free_minutes'
  value: number
  label: string
  created_at: Date
}

const redemptionSchema = new Schema<RedemptionRecord>(
  {
    _id: { type: String, required: true },
    code: { type: String, required: true },
    session_id: { type: String, required: true },
    user_id: { type: String, default: null },
    lot_id: { type: String, required: true },
    kind: { type: String, required: true },
    value: { type: Number, required: true },
    label: { type: String, required: true },
    created_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'discount_redemptions' },
)
redemptionSchema.index({ session_id: 1 })
// Rebuilding a code's counters counts its facts.
redemptionSchema.index({ code: 1 })

/**
 * A merchant's validation of a parking ticket: insert-only, `_id` `${sessionId}:${merchant key}`,
 * one per merchant per session.
 */
export type ValidationRecord = {
  _id: string
  session_id: string
  /** As sent, trimmed. */
  merchant: string
  /** Lowercase, inner whitespace collapsed: the part of the `_id` that names the merchant. */
  merchant_key: string
  kind: ValidationKind
  /** null for `full`; minutes, minor units of `currency` or a percentage otherwise. */
  value: number | null
  /** The session's currency, for `fixed`. */
  currency: string | null
  reference: string | null
  label: string
  created_by: string
  created_at: Date
}

const validationSchema = new Schema<ValidationRecord>(
  {
    _id: { type: String, required: true },
    session_id: { type: String, required: true },
    merchant: { type: String, required: true },
    merchant_key: { type: String, required: true },
    kind: { type: String, enum: validationKinds, required: true },
    value: { type: Number, default: null },
    currency: { type: String, default: null },
    reference: { type: String, default: null },
    label: { type: String, required: true },
    created_by: { type: String, required: true },
    created_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'partner_validations' },
)
validationSchema.index({ session_id: 1, _id: 1 })

/**
 * A session's index of its adjustments: `_id` `${sessionId}:${n}`, insert-only, naming a
 * redemption or a validation, so that a session's fee reads them by `_id` (a filter on
 * `session_id` is a full scan on FerretDB: about a second at 20,000 documents).
 */
export type SessionAdjustmentRecord = {
  _id: string
  session_id: string
  source: 'redemption' | 'validation'
  ref: string
  created_at: Date
}

const sessionAdjustmentSchema = new Schema<SessionAdjustmentRecord>(
  {
    _id: { type: String, required: true },
    session_id: { type: String, required: true },
    source: { type: String, enum: ['redemption', 'validation'], required: true },
    ref: { type: String, required: true },
    created_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'session_adjustments' },
)

export function discountModels(db: Database) {
  return {
    discounts: modelOn(db, 'Discount', discountSchema),
    redemptions: modelOn(db, 'DiscountRedemption', redemptionSchema),
    validations: modelOn(db, 'PartnerValidation', validationSchema),
    sessionAdjustments: modelOn(db, 'SessionAdjustment', sessionAdjustmentSchema),
  }
}
