import { Schema } from 'mongoose'
import { type Database, modelOn } from '../../shared/mongo.ts'

/**
 * One 15-minute bucket of a lot's or a zone's occupancy: space-milliseconds in the bucket, and of
 * them those occupied (or held by a session) and reserved. `_id` is
 * `<scopeKind>:<scopeId>:<bucketStartISO>`, so a scope's series is an `_id` range in time order.
 * Written only by the rollup job (one writer), recomputed from facts, so a rewrite is idempotent.
 */
export type OccupancyRollupRecord = {
  _id: string
  scope_kind: 'lot' | 'zone'
  scope_id: string
  lot_id: string
  at: Date
  space_ms: number
  occupied_ms: number
  reserved_ms: number
  updated_at: Date
}

const rollupSchema = new Schema<OccupancyRollupRecord>(
  {
    _id: { type: String, required: true },
    scope_kind: { type: String, required: true },
    scope_id: { type: String, required: true },
    lot_id: { type: String, required: true },
    at: { type: Date, required: true },
    space_ms: { type: Number, required: true },
    occupied_ms: { type: Number, required: true },
    reserved_ms: { type: Number, required: true },
    updated_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'occupancy_rollups' },
)

/**
 * Where the rollup of a lot stands: every change before `at` is folded into `zones` (the counts
 * each zone had at `at`). Only the rollup job writes it.
 */
export type RollupCheckpointRecord = {
  _id: string
  lot_id: string
  at: Date
  zones: { zone_id: string; total: number; occupied: number; reserved: number }[]
  updated_at: Date
}

const checkpointSchema = new Schema<RollupCheckpointRecord>(
  {
    _id: { type: String, required: true },
    lot_id: { type: String, required: true },
    at: { type: Date, required: true },
    zones: {
      type: [
        new Schema(
          {
            zone_id: { type: String, required: true },
            total: { type: Number, required: true },
            occupied: { type: Number, required: true },
            reserved: { type: Number, required: true },
          },
          { _id: false },
        ),
      ],
      default: [],
    },
    updated_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'analytics_checkpoints' },
)

/** Money of one day by payment method and currency, in minor units. */
export type RevenueLine = {
  method: string
  currency: string
  amount: number
  refunded: number
  payments: number
}

/**
 * One lot's local day: entries, exits, revenue, stays. `_id` is `<lotId>:<YYYY-MM-DD>` (the day in
 * the lot's time zone). Copied by the rollup job from the day's Redis counters (one writer,
 * overwritten whole, so idempotent).
 */
export type DailyRollupRecord = {
  _id: string
  lot_id: string
  date: string
  time_zone: string
  entries: number
  exits: number
  revenue: RevenueLine[]
  stays: number
  stay_minutes: number
  spaces: number
  updated_at: Date
}

const dailySchema = new Schema<DailyRollupRecord>(
  {
    _id: { type: String, required: true },
    lot_id: { type: String, required: true },
    date: { type: String, required: true },
    time_zone: { type: String, required: true },
    entries: { type: Number, required: true },
    exits: { type: Number, required: true },
    revenue: {
      type: [
        new Schema(
          {
            method: { type: String, required: true },
            currency: { type: String, required: true },
            amount: { type: Number, required: true },
            refunded: { type: Number, required: true },
            payments: { type: Number, required: true },
          },
          { _id: false },
        ),
      ],
      default: [],
    },
    stays: { type: Number, required: true },
    stay_minutes: { type: Number, required: true },
    spaces: { type: Number, required: true },
    updated_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'daily_rollups' },
)

export function analyticsModels(db: Database) {
  return {
    rollups: modelOn(db, 'OccupancyRollup', rollupSchema),
    checkpoints: modelOn(db, 'RollupCheckpoint', checkpointSchema),
    daily: modelOn(db, 'DailyRollup', dailySchema),
  }
}
