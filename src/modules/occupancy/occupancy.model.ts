import { Schema } from 'mongoose'
import { type Database, modelOn } from '../../shared/mongo.ts'
import type { Overlay, SensedState, SpaceStatus, SpaceType } from './occupancy.contract.ts'

/**
 * One committed change of a space, written by the persister. `_id` is `<space>/<stream entry id>`
 * (its sequence part zero-padded, see historyId):
 * a redelivered entry is a duplicate key (no second row), and a space's history is an `_id` range
 * in time order (entry ids start with their epoch milliseconds), so no secondary index is needed.
 */
export type SpaceHistoryRecord = {
  _id: string
  space_id: string
  lot_id: string
  level_id: string
  zone_id: string
  number: string
  type: SpaceType
  kind: string
  sensed_from: SensedState
  sensed_to: SensedState
  status_from: SpaceStatus
  status_to: SpaceStatus
  overlay: Overlay | null
  at: Date
  device_id: string | null
  boot: string | null
  seq: number | null
  session_id: string | null
  recorded_at: Date
}

const historySchema = new Schema<SpaceHistoryRecord>(
  {
    _id: { type: String, required: true },
    space_id: { type: String, required: true },
    lot_id: { type: String, required: true },
    level_id: { type: String, required: true },
    zone_id: { type: String, required: true },
    number: { type: String, required: true },
    type: { type: String, required: true },
    kind: { type: String, required: true },
    sensed_from: { type: String, required: true },
    sensed_to: { type: String, required: true },
    status_from: { type: String, required: true },
    status_to: { type: String, required: true },
    overlay: { type: String, default: null },
    at: { type: Date, required: true },
    device_id: { type: String, default: null },
    boot: { type: String, default: null },
    seq: { type: Number, default: null },
    session_id: { type: String, default: null },
    recorded_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'space_history' },
)
// Lot-wide reports (analytics) read by lot and time.
historySchema.index({ lot_id: 1, at: 1 })

export function occupancyModels(db: Database) {
  return {
    history: modelOn(db, 'SpaceHistory', historySchema),
  }
}
