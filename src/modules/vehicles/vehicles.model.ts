import { Schema } from 'mongoose'
import { type Database, modelOn } from '../../shared/mongo.ts'

export const sizeCategories = ['MOTORCYCLE', 'COMPACT', 'STANDARD', 'LARGE'] as const
export type SizeCategory = (typeof sizeCategories)[number]

/** `_id` is the type's short code (`standard`, `van`): creating a type twice is a duplicate key. */
export type VehicleTypeRecord = {
  _id: string
  name: string
  size_category: SizeCategory
  description: string | null
  created_at: Date
}

const vehicleTypeSchema = new Schema<VehicleTypeRecord>(
  {
    _id: { type: String, required: true },
    name: { type: String, required: true },
    size_category: { type: String, enum: sizeCategories, required: true },
    description: { type: String, default: null },
    created_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'vehicle_types' },
)

export type VehicleRecord = {
  _id: string
  owner_id: string
  /** As entered, trimmed. */
  license_plate: string
  /** Uppercase, without spaces, dashes and dots; also the `_id` of the vehicle's plate claim. */
  plate_normalized: string
  vehicle_type_id: string
  make: string | null
  model: string | null
  color: string | null
  is_ev: boolean
  created_at: Date
  updated_at: Date
}

const vehicleSchema = new Schema<VehicleRecord>(
  {
    _id: { type: String, required: true },
    owner_id: { type: String, required: true },
    license_plate: { type: String, required: true },
    plate_normalized: { type: String, required: true },
    vehicle_type_id: { type: String, required: true },
    make: { type: String, default: null },
    model: { type: String, default: null },
    color: { type: String, default: null },
    is_ev: { type: Boolean, required: true },
    created_at: { type: Date, required: true },
    updated_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'vehicles' },
)
// "My vehicles", oldest first, paged by `_id`.
vehicleSchema.index({ owner_id: 1, _id: 1 })

/**
 * The normalised plate as `_id`: the insert of a claim is what makes a plate unique platform-wide
 * (one of many concurrent inserts wins, on FerretDB as on MongoDB), and plate lookups go by `_id`.
 */
export type PlateClaimRecord = { _id: string; vehicle_id: string; created_at: Date }

const plateClaimSchema = new Schema<PlateClaimRecord>(
  {
    _id: { type: String, required: true },
    vehicle_id: { type: String, required: true },
    created_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'plate_claims' },
)

export function vehicleModels(db: Database) {
  return {
    vehicleTypes: modelOn(db, 'VehicleType', vehicleTypeSchema),
    vehicles: modelOn(db, 'Vehicle', vehicleSchema),
    plateClaims: modelOn(db, 'PlateClaim', plateClaimSchema),
  }
}
