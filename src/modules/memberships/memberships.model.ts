import { Schema } from 'mongoose'
import { type Database, modelOn } from '../../shared/mongo.ts'

export const membershipStatuses = ['pending_payment', 'active', 'canceled', 'expired'] as const
export type MembershipStatus = (typeof membershipStatuses)[number]

export const paymentMethods = ['stripe', 'cash', 'card', 'free'] as const
export type MembershipPaymentMethod = (typeof paymentMethods)[number]

/** What a period was bought with: a later edit of the plan never changes a period sold. */
export type PlanTerms = {
  name: string
  duration_months: number
  price: number
  currency: string
  vehicle_limit: number
  included_hours: number | null
  unlimited: boolean
  discount_percentage: number
}

export type PlanRecord = PlanTerms & {
  _id: string
  description: string | null
  lot_id: string
  is_active: boolean
  created_at: Date
  updated_at: Date
}

const planSchema = new Schema<PlanRecord>(
  {
    _id: { type: String, required: true },
    name: { type: String, required: true },
    description: { type: String, default: null },
    lot_id: { type: String, required: true },
    duration_months: { type: Number, required: true },
    price: { type: Number, required: true },
    currency: { type: String, required: true },
    vehicle_limit: { type: Number, required: true },
    included_hours: { type: Number, default: null },
    unlimited: { type: Boolean, required: true },
    discount_percentage: { type: Number, required: true },
    is_active: { type: Boolean, required: true },
    created_at: { type: Date, required: true },
    updated_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'membership_plans' },
)
// Lists by facility, paged by `_id`.
planSchema.index({ lot_id: 1, _id: 1 })

/**
 * A subscription. Its state is derived from insert-only facts (periods, their payment states, the
 * cancellation); `status` is a cache that lists and the renewals job read.
 */
export type MembershipRecord = {
  _id: string
  user_id: string
  plan_id: string
  lot_id: string
  /** The vehicle limit of the plan when subscribed: the slot claims are numbered 1..limit. */
  vehicle_limit: number
  auto_renew: boolean
  status: MembershipStatus
  /** When the claims (customer and lot, vehicles, slots) were given back; null while held. */
  released_at: Date | null
  created_by: string
  created_at: Date
  updated_at: Date
}

const membershipSchema = new Schema<MembershipRecord>(
  {
    _id: { type: String, required: true },
    user_id: { type: String, required: true },
    plan_id: { type: String, required: true },
    lot_id: { type: String, required: true },
    vehicle_limit: { type: Number, required: true },
    auto_renew: { type: Boolean, required: true },
    status: { type: String, enum: membershipStatuses, required: true },
    released_at: { type: Date, default: null },
    created_by: { type: String, required: true },
    created_at: { type: Date, required: true },
    updated_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'memberships' },
)
membershipSchema.index({ user_id: 1, _id: 1 })
membershipSchema.index({ lot_id: 1, _id: 1 })
membershipSchema.index({ status: 1, _id: 1 })

/**
 * A period, `_id` `${membershipId}:${n}` (n from 0): its insert is the arbiter of a renewal, so
 * that 20 concurrent renewals make one period. Cash, card-terminal and free periods are paid at
 * insert; a Stripe period is paid by its `paid` state fact.
 */
export type PeriodRecord = {
  _id: string
  membership_id: string
  index: number
  starts_at: Date
  ends_at: Date
  terms: PlanTerms
  payment_method: MembershipPaymentMethod
  /** Set at insert for cash, card-terminal and free periods. */
  paid_at: Date | null
  payment_intent_id: string | null
  client_secret: string | null
  /** 'subscribe', 'renew' or 'auto_renew'. */
  origin: string
  created_by: string
  created_at: Date
}

const termsSchema = new Schema<PlanTerms>(
  {
    name: { type: String, required: true },
    duration_months: { type: Number, required: true },
    price: { type: Number, required: true },
    currency: { type: String, required: true },
    vehicle_limit: { type: Number, required: true },
    included_hours: { type: Number, default: null },
    unlimited: { type: Boolean, required: true },
    discount_percentage: { type: Number, required: true },
  },
  { _id: false },
)

const periodSchema = new Schema<PeriodRecord>(
  {
    _id: { type: String, required: true },
    membership_id: { type: String, required: true },
    index: { type: Number, required: true },
    starts_at: { type: Date, required: true },
    ends_at: { type: Date, required: true },
    terms: { type: termsSchema, required: true },
    payment_method: { type: String, enum: paymentMethods, required: true },
    paid_at: { type: Date, default: null },
    payment_intent_id: { type: String, default: null },
    client_secret: { type: String, default: null },
    origin: { type: String, required: true },
    created_by: { type: String, required: true },
    created_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'membership_periods' },
)

export const periodStates = ['paid', 'failed', 'canceled'] as const
export type PeriodState = (typeof periodStates)[number]

/** `_id` `${periodId}:${state}`: insert-only; `paid` outranks the others. */
export type PeriodStateRecord = {
  _id: string
  period_id: string
  state: PeriodState
  /** The Stripe payment method that paid, saved for the automatic renewal. */
  payment_method_ref: string | null
  source: string
  created_at: Date
}

const periodStateSchema = new Schema<PeriodStateRecord>(
  {
    _id: { type: String, required: true },
    period_id: { type: String, required: true },
    state: { type: String, enum: periodStates, required: true },
    payment_method_ref: { type: String, default: null },
    source: { type: String, required: true },
    created_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'membership_period_states' },
)

/** `_id` = PaymentIntent id -> its period: webhooks find the period by `_id`. */
export type IntentRecord = { _id: string; period_id: string; created_at: Date }

const intentSchema = new Schema<IntentRecord>(
  {
    _id: { type: String, required: true },
    period_id: { type: String, required: true },
    created_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'membership_intents' },
)

/** `_id` = membership id: insert-only; `immediately` ends it now, else at the period's end. */
export type CancellationRecord = {
  _id: string
  immediately: boolean
  canceled_by: string
  created_at: Date
}

const cancellationSchema = new Schema<CancellationRecord>(
  {
    _id: { type: String, required: true },
    immediately: { type: Boolean, required: true },
    canceled_by: { type: String, required: true },
    created_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'membership_cancellations' },
)

/** `_id` `${userId}:${lotId}`: one live membership per customer per facility. */
export type ClaimRecord = { _id: string; membership_id: string; created_at: Date }

const claimSchema = new Schema<ClaimRecord>(
  {
    _id: { type: String, required: true },
    membership_id: { type: String, required: true },
    created_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'membership_claims' },
)

/** `_id` = vehicle id: one membership per vehicle. `slot` is set once the slot is won. */
export type VehicleClaimRecord = {
  _id: string
  membership_id: string
  slot: number | null
  created_at: Date
}

const vehicleClaimSchema = new Schema<VehicleClaimRecord>(
  {
    _id: { type: String, required: true },
    membership_id: { type: String, required: true },
    slot: { type: Number, default: null },
    created_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'membership_vehicles' },
)

/**
 * `_id` `${vehicleId}:${n}` (n from 0), insert-only and read by `_id` (readNumbered): when a vehicle
 * joined or left a membership. It outlives the claims (released when a membership ends), so that a
 * session is priced by the vehicle's membership at its entry, however the membership ended since.
 */
export type VehicleHistoryRecord = {
  _id: string
  vehicle_id: string
  membership_id: string
  event: 'added' | 'removed'
  at: Date
}

const vehicleHistorySchema = new Schema<VehicleHistoryRecord>(
  {
    _id: { type: String, required: true },
    vehicle_id: { type: String, required: true },
    membership_id: { type: String, required: true },
    event: { type: String, enum: ['added', 'removed'], required: true },
    at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'membership_vehicle_history' },
)

/** `_id` `${membershipId}:${n}`, n in 1..vehicle_limit: the limit holds under concurrency. */
export type SlotRecord = { _id: string; membership_id: string; vehicle_id: string; created_at: Date }

const slotSchema = new Schema<SlotRecord>(
  {
    _id: { type: String, required: true },
    membership_id: { type: String, required: true },
    vehicle_id: { type: String, required: true },
    created_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'membership_vehicle_slots' },
)

/**
 * A closed session of a member's vehicle, `_id` = session id (told twice = recorded once), with
 * the adjustments it was granted, so that a closed session is always priced the same.
 */
export type UsageRecord = {
  _id: string
  membership_id: string
  period_index: number
  minutes: number
  included_minutes_used: number
  savings: number
  currency: string
  adjustments: { kind: string; value: number; label: string }[]
  /** The numbered index entry `${membershipId}:${period}:${k}`; null until it is written. */
  index_id: string | null
  closed_at: Date
  created_at: Date
}

const grantedSchema = new Schema<UsageRecord['adjustments'][number]>(
  {
    kind: { type: String, required: true },
    value: { type: Number, required: true },
    label: { type: String, required: true },
  },
  { _id: false },
)

const usageSchema = new Schema<UsageRecord>(
  {
    _id: { type: String, required: true },
    membership_id: { type: String, required: true },
    period_index: { type: Number, required: true },
    minutes: { type: Number, required: true },
    included_minutes_used: { type: Number, required: true },
    savings: { type: Number, required: true },
    currency: { type: String, required: true },
    adjustments: { type: [grantedSchema], default: [] },
    index_id: { type: String, default: null },
    closed_at: { type: Date, required: true },
    created_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'membership_usage' },
)

/** `_id` `${membershipId}:${period}:${k}`: a period's usage, read by `_id` (readNumbered). */
export type UsageIndexRecord = {
  _id: string
  session_id: string
  minutes: number
  included_minutes_used: number
  savings: number
  created_at: Date
}

const usageIndexSchema = new Schema<UsageIndexRecord>(
  {
    _id: { type: String, required: true },
    session_id: { type: String, required: true },
    minutes: { type: Number, required: true },
    included_minutes_used: { type: Number, required: true },
    savings: { type: Number, required: true },
    created_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'membership_usage_index' },
)

export function membershipModels(db: Database) {
  return {
    membershipPlans: modelOn(db, 'MembershipPlan', planSchema),
    memberships: modelOn(db, 'Membership', membershipSchema),
    membershipPeriods: modelOn(db, 'MembershipPeriod', periodSchema),
    membershipPeriodStates: modelOn(db, 'MembershipPeriodState', periodStateSchema),
    membershipIntents: modelOn(db, 'MembershipIntent', intentSchema),
    membershipCancellations: modelOn(db, 'MembershipCancellation', cancellationSchema),
    membershipClaims: modelOn(db, 'MembershipClaim', claimSchema),
    membershipVehicles: modelOn(db, 'MembershipVehicle', vehicleClaimSchema),
    membershipVehicleSlots: modelOn(db, 'MembershipVehicleSlot', slotSchema),
    membershipVehicleHistory: modelOn(db, 'MembershipVehicleHistory', vehicleHistorySchema),
    membershipUsage: modelOn(db, 'MembershipUsage', usageSchema),
    membershipUsageIndex: modelOn(db, 'MembershipUsageIndex', usageIndexSchema),
  }
}
