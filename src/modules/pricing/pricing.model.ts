import { Schema } from 'mongoose'
import type { Band, RateType } from '../../../workers/fee.ts'
import { rateTypes } from '../../../workers/fee.ts'
import { type Database, modelOn } from '../../shared/mongo.ts'

/** A rate plan of a lot. Plans are never deleted: DELETE deactivates, so old snapshots stay explainable. */
export type RateRecord = {
  _id: string
  name: string
  lot_id: string
  zone_id: string | null
  vehicle_type: string | null
  currency: string
  rate_type: RateType
  amount: number
  step_minutes: number
  grace_period_minutes: number
  daily_max: number | null
  lost_ticket_fee: number
  bands: Band[]
  effective_from: Date
  effective_to: Date | null
  is_active: boolean
  created_at: Date
  updated_at: Date
}

type StoredBand = {
  kind: Band['kind']
  name: string
  days: string[]
  start: string
  end: string
  multiplier_percent?: number
  step_amount?: number
}

// One shape for both kinds: a peak band has multiplier_percent, a price band step_amount (zod
// decides which before a band gets here).
const bandSchema = new Schema<StoredBand>(
  {
    kind: { type: String, enum: ['peak', 'price'], required: true },
    name: { type: String, required: true },
    days: { type: [String], required: true },
    start: { type: String, required: true },
    end: { type: String, required: true },
    multiplier_percent: { type: Number },
    step_amount: { type: Number },
  },
  { _id: false },
)

const rateSchema = new Schema<RateRecord>(
  {
    _id: { type: String, required: true },
    name: { type: String, required: true },
    lot_id: { type: String, required: true },
    zone_id: { type: String, default: null },
    vehicle_type: { type: String, default: null },
    currency: { type: String, required: true },
    rate_type: { type: String, enum: rateTypes, required: true },
    amount: { type: Number, required: true },
    step_minutes: { type: Number, required: true },
    grace_period_minutes: { type: Number, required: true },
    daily_max: { type: Number, default: null },
    lost_ticket_fee: { type: Number, required: true },
    bands: { type: [bandSchema], default: [] },
    effective_from: { type: Date, required: true },
    effective_to: { type: Date, default: null },
    is_active: { type: Boolean, required: true },
    created_at: { type: Date, required: true },
    updated_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'rates' },
)
// A lot's plans, in `_id` order: the list filter and the candidates of tariffFor.
rateSchema.index({ lot_id: 1, _id: 1 })

export function pricingModels(db: Database) {
  return { rates: modelOn(db, 'Rate', rateSchema) }
}
