import { Schema } from 'mongoose'
import { type Database, modelOn } from '../../shared/mongo.ts'
import { type SpaceType, spaceTypes } from '../occupancy/occupancy.contract.ts'

export const reservationStatuses = [
  'pending_payment',
  'confirmed',
  'checked_in',
  'completed',
  'cancelled',
  'no_show',
  'expired',
] as const
export type ReservationStatus = (typeof reservationStatuses)[number]

/** The outcomes that end an open reservation; one per reservation, decided by an insert. */
export const outcomeKinds = ['checked_in', 'cancelled', 'no_show', 'expired'] as const
export type OutcomeKind = (typeof outcomeKinds)[number]

/**
 * The reservation as shown. Its status is a cache of the facts: the outcome fact (one per
 * reservation), the payment fact, the completion; only the writer that won a fact updates it.
 */
export type ReservationRecord = {
  _id: string
  confirmation_number: string
  /** The customer the reservation belongs to (the booker, or the owner of the plate booked by staff). */
  user_id: string | null
  created_by: string
  lot_id: string
  level_id: string
  zone_id: string
  space_id: string
  space_number: string
  space_type: SpaceType
  vehicle_id: string | null
  license_plate: string
  /** Normalised plate. */
  plate: string
  vehicle_type: string
  start_at: Date
  end_at: Date
  /** The slots this reservation claims (`reservation_slots` ids), in claim order. */
  slot_ids: string[]
  special_requests: string | null
  status: ReservationStatus
  prepay: boolean
  /** The prepaid price (minor units), null when not prepaid. */
  amount: number | null
  currency: string
  payment_intent_id: string | null
  /** Unpaid prepay after this -> expired. */
  payment_deadline: Date | null
  paid_at: Date | null
  /** When the hot-state hold is due (start less the early check-in minutes). */
  hold_from: Date
  /** Start plus the no-show grace: check-in closes, the no-show job acts after it. */
  no_show_at: Date
  /** Whether the tick placed the `rsv:` hold (a cache; the hot state decides). */
  held: boolean
  session_id: string | null
  checked_in_at: Date | null
  cancelled_at: Date | null
  refund_amount: number | null
  refund_id: string | null
  created_at: Date
  updated_at: Date
}

const reservationSchema = new Schema<ReservationRecord>(
  {
    _id: { type: String, required: true },
    confirmation_number: { type: String, required: true },
    user_id: { type: String, default: null },
    created_by: { type: String, required: true },
    lot_id: { type: String, required: true },
    level_id: { type: String, required: true },
    zone_id: { type: String, required: true },
    space_id: { type: String, required: true },
    space_number: { type: String, required: true },
    space_type: { type: String, enum: spaceTypes, required: true },
    vehicle_id: { type: String, default: null },
    license_plate: { type: String, required: true },
    plate: { type: String, required: true },
    vehicle_type: { type: String, required: true },
    start_at: { type: Date, required: true },
    end_at: { type: Date, required: true },
    slot_ids: { type: [String], required: true },
    special_requests: { type: String, default: null },
    status: { type: String, enum: reservationStatuses, required: true },
    prepay: { type: Boolean, required: true },
    amount: { type: Number, default: null },
    currency: { type: String, required: true },
    payment_intent_id: { type: String, default: null },
    payment_deadline: { type: Date, default: null },
    paid_at: { type: Date, default: null },
    hold_from: { type: Date, required: true },
    no_show_at: { type: Date, required: true },
    held: { type: Boolean, required: true },
    session_id: { type: String, default: null },
    checked_in_at: { type: Date, default: null },
    cancelled_at: { type: Date, default: null },
    refund_amount: { type: Number, default: null },
    refund_id: { type: String, default: null },
    created_at: { type: Date, required: true },
    updated_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'reservations' },
)
// Lists (own, by lot, by status) page by `_id`; the jobs and availability filter by lot and time.
reservationSchema.index({ user_id: 1, _id: 1 })
reservationSchema.index({ lot_id: 1, _id: 1 })
reservationSchema.index({ status: 1, _id: 1 })
reservationSchema.index({ lot_id: 1, end_at: 1 })

/**
 * `_id = "<spaceId>:<slotStartISO>"`: the insert of a slot is the arbiter of "no double booking";
 * a reservation claims every slot its window overlaps.
 */
export type SlotRecord = { _id: string; reservation_id: string; space_id: string; created_at: Date }

const slotSchema = new Schema<SlotRecord>(
  {
    _id: { type: String, required: true },
    reservation_id: { type: String, required: true },
    space_id: { type: String, required: true },
    created_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'reservation_slots' },
)

/** `_id` = the confirmation code (natural key): unique by insert, found by `_id`. */
export type CodeRecord = { _id: string; reservation_id: string; created_at: Date }

const codeSchema = new Schema<CodeRecord>(
  {
    _id: { type: String, required: true },
    reservation_id: { type: String, required: true },
    created_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'reservation_codes' },
)

/** `_id = reservationId`: the one outcome of an open reservation (cancel vs check-in vs no-show vs expiry). */
export type OutcomeRecord = {
  _id: string
  outcome: OutcomeKind
  at: Date
  by: string
  /** Tells the writer's own outcome from another's (a failed check-in deletes only its own). */
  token: string
}

const outcomeSchema = new Schema<OutcomeRecord>(
  {
    _id: { type: String, required: true },
    outcome: { type: String, enum: outcomeKinds, required: true },
    at: { type: Date, required: true },
    by: { type: String, required: true },
    token: { type: String, required: true },
  },
  { versionKey: false, collection: 'reservation_outcomes' },
)

/** `_id = reservationId`: the prepayment succeeded at Stripe (once). */
export type PaidRecord = { _id: string; intent_id: string; amount: number; currency: string; at: Date }

const paidSchema = new Schema<PaidRecord>(
  {
    _id: { type: String, required: true },
    intent_id: { type: String, required: true },
    amount: { type: Number, required: true },
    currency: { type: String, required: true },
    at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'reservation_payments' },
)

/**
 * `_id = reservationId`: the one refund of a prepayment, written before Stripe is asked (key
 * `reservation-refund:<id>`, then `:<n>` after n refusals); without `provider_refund_id` it is in
 * doubt and asked again with the same key, or refused by Stripe (`refusal`) and tried again with
 * the next key after `retry_at`, a bounded number of times.
 */
export type RefundRecord = {
  _id: string
  amount: number
  intent_id: string
  provider_refund_id: string | null
  at: Date
  /** Stripe's message when it refused the last attempt (no money moved); null otherwise. */
  refusal?: string | null
  /** Refusals so far: the attempt's key suffix. */
  attempts?: number
  /** A refused refund is tried again from then on. */
  retry_at?: Date | null
}

const refundSchema = new Schema<RefundRecord>(
  {
    _id: { type: String, required: true },
    amount: { type: Number, required: true },
    intent_id: { type: String, required: true },
    provider_refund_id: { type: String, default: null },
    at: { type: Date, required: true },
    refusal: { type: String, default: null },
    attempts: { type: Number, default: 0 },
    retry_at: { type: Date, default: null },
  },
  { versionKey: false, collection: 'reservation_refunds' },
)

/** `_id = "<plate>:<n>"`: a plate's reservations, numbered, read by `_id` (check-in by plate). */
export type PlateIndexRecord = { _id: string; reservation_id: string; created_at: Date }

const plateIndexSchema = new Schema<PlateIndexRecord>(
  {
    _id: { type: String, required: true },
    reservation_id: { type: String, required: true },
    created_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'reservation_plates' },
)

/** `_id` = the Stripe PaymentIntent id: which reservation a webhook's intent pays. */
export type IntentIndexRecord = { _id: string; reservation_id: string; created_at: Date }

const intentIndexSchema = new Schema<IntentIndexRecord>(
  {
    _id: { type: String, required: true },
    reservation_id: { type: String, required: true },
    created_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'reservation_intents' },
)

export function reservationModels(db: Database) {
  return {
    reservations: modelOn(db, 'Reservation', reservationSchema),
    reservationSlots: modelOn(db, 'ReservationSlot', slotSchema),
    reservationCodes: modelOn(db, 'ReservationCode', codeSchema),
    reservationOutcomes: modelOn(db, 'ReservationOutcome', outcomeSchema),
    reservationPayments: modelOn(db, 'ReservationPayment', paidSchema),
    reservationRefunds: modelOn(db, 'ReservationRefund', refundSchema),
    reservationPlates: modelOn(db, 'ReservationPlate', plateIndexSchema),
    reservationIntents: modelOn(db, 'ReservationIntent', intentIndexSchema),
  }
}
