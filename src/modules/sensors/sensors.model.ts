import { Schema } from 'mongoose'
import { type Database, modelOn } from '../../shared/mongo.ts'

/** `charger`: an EV charger that reports its energy meter (and may sense its bay as well). */
export const deviceKinds = ['sensor', 'gateway', 'charger'] as const
export type DeviceKind = (typeof deviceKinds)[number]

/**
 * `_id` is the device id the admin chose (also its broker username, client id and topic level):
 * registering an id twice is a duplicate key. Health (battery, signal, last seen) is not kept
 * here; it lives in the hot state and is merged into the views.
 */
export type DeviceRecord = {
  _id: string
  kind: DeviceKind
  space_id: string | null
  model: string | null
  firmware: string | null
  /** sha256 hex of the secret; the secret is 32 random bytes, so no slow hash is needed. */
  secret_hash: string
  created_at: Date
  updated_at: Date
}

const deviceSchema = new Schema<DeviceRecord>(
  {
    _id: { type: String, required: true },
    kind: { type: String, enum: deviceKinds, required: true },
    space_id: { type: String, default: null },
    model: { type: String, default: null },
    firmware: { type: String, default: null },
    secret_hash: { type: String, required: true },
    created_at: { type: Date, required: true },
    updated_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'devices' },
)
// Admin lists filtered by kind, paged by `_id`.
deviceSchema.index({ kind: 1, _id: 1 })

/**
 * The space id as `_id`: the insert of a binding is what makes "one device per space" hold
 * (one of many concurrent inserts wins, on FerretDB as on MongoDB), and "the device of this
 * space" is a lookup by `_id`.
 */
export type SpaceBindingRecord = { _id: string; device_id: string; created_at: Date }

const spaceBindingSchema = new Schema<SpaceBindingRecord>(
  {
    _id: { type: String, required: true },
    device_id: { type: String, required: true },
    created_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'space_bindings' },
)

export function sensorModels(db: Database) {
  return {
    devices: modelOn(db, 'Device', deviceSchema),
    spaceBindings: modelOn(db, 'SpaceBinding', spaceBindingSchema),
  }
}
