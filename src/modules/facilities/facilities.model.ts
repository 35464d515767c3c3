import { Schema } from 'mongoose'
import { type Database, modelOn } from '../../shared/mongo.ts'
import type { Overlay, SpaceType } from '../occupancy/occupancy.contract.ts'
import { overlays, spaceTypes } from '../occupancy/occupancy.contract.ts'

export const weekdays = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const
export type Weekday = (typeof weekdays)[number]

/** One opening interval; `closes` at or before `opens` means it closes the next day. */
export type OpeningInterval = { day: Weekday; opens: string; closes: string }

export type LotRecord = {
  _id: string
  name: string
  /** Lowercased name: the `name_prefix` filter is a range on it (no collation on FerretDB). */
  name_key: string
  address: string
  latitude: number
  longitude: number
  /** Canonical IANA name, as Intl resolves it. */
  time_zone: string
  currency: string
  /** null: always open. */
  opening_hours: OpeningInterval[] | null
  created_at: Date
  updated_at: Date
}

const openingIntervalSchema = new Schema<OpeningInterval>(
  {
    day: { type: String, enum: weekdays, required: true },
    opens: { type: String, required: true },
    closes: { type: String, required: true },
  },
  { _id: false },
)

const lotSchema = new Schema<LotRecord>(
  {
    _id: { type: String, required: true },
    name: { type: String, required: true },
    name_key: { type: String, required: true },
    address: { type: String, required: true },
    latitude: { type: Number, required: true },
    longitude: { type: Number, required: true },
    time_zone: { type: String, required: true },
    currency: { type: String, required: true },
    opening_hours: { type: [openingIntervalSchema], default: null },
    created_at: { type: Date, required: true },
    updated_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'lots' },
)
lotSchema.index({ name_key: 1, _id: 1 })

export type LevelRecord = {
  _id: string
  lot_id: string
  name: string
  /** Negative below ground; levels list in floor order. */
  floor: number
  created_at: Date
  updated_at: Date
}

const levelSchema = new Schema<LevelRecord>(
  {
    _id: { type: String, required: true },
    lot_id: { type: String, required: true },
    name: { type: String, required: true },
    floor: { type: Number, required: true },
    created_at: { type: Date, required: true },
    updated_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'levels' },
)
levelSchema.index({ lot_id: 1, floor: 1, _id: 1 })
levelSchema.index({ floor: 1, _id: 1 })

export type ZoneRecord = {
  _id: string
  /** Denormalised from the level, which never changes lots. */
  lot_id: string
  level_id: string
  name: string
  description: string | null
  created_at: Date
  updated_at: Date
}

const zoneSchema = new Schema<ZoneRecord>(
  {
    _id: { type: String, required: true },
    lot_id: { type: String, required: true },
    level_id: { type: String, required: true },
    name: { type: String, required: true },
    description: { type: String, default: null },
    created_at: { type: Date, required: true },
    updated_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'zones' },
)
zoneSchema.index({ level_id: 1, _id: 1 })
zoneSchema.index({ lot_id: 1, _id: 1 })

export type SpaceRecord = {
  _id: string
  /** Denormalised from the zone; a move to another zone rewrites them. */
  lot_id: string
  level_id: string
  zone_id: string
  /** Uppercase; unique per lot through its claim. */
  number: string
  type: SpaceType
  /** Sorted, without duplicates. */
  flags: string[]
  /** Set by operators; the sensed state lives in the occupancy capability, never here. */
  overlay: Overlay | null
  overlay_reason: string | null
  overlay_set_at: Date | null
  created_at: Date
  updated_at: Date
}

const spaceSchema = new Schema<SpaceRecord>(
  {
    _id: { type: String, required: true },
    lot_id: { type: String, required: true },
    level_id: { type: String, required: true },
    zone_id: { type: String, required: true },
    number: { type: String, required: true },
    type: { type: String, enum: spaceTypes, required: true },
    flags: { type: [String], default: [] },
    overlay: { type: String, enum: [...overlays, null], default: null },
    overlay_reason: { type: String, default: null },
    overlay_set_at: { type: Date, default: null },
    created_at: { type: Date, required: true },
    updated_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'spaces' },
)
spaceSchema.index({ zone_id: 1, _id: 1 })
spaceSchema.index({ level_id: 1, _id: 1 })
spaceSchema.index({ lot_id: 1, _id: 1 })

/**
 * `_id` is `${lotId}:${number}`: the insert of a claim is what makes a number unique in its lot
 * (of concurrent inserts exactly one wins, on FerretDB as on MongoDB).
 */
export type SpaceNumberClaimRecord = { _id: string; space_id: string; created_at: Date }

const spaceNumberClaimSchema = new Schema<SpaceNumberClaimRecord>(
  {
    _id: { type: String, required: true },
    space_id: { type: String, required: true },
    created_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'space_number_claims' },
)

export function facilityModels(db: Database) {
  return {
    lots: modelOn(db, 'Lot', lotSchema),
    levels: modelOn(db, 'Level', levelSchema),
    zones: modelOn(db, 'Zone', zoneSchema),
    spaces: modelOn(db, 'Space', spaceSchema),
    spaceNumberClaims: modelOn(db, 'SpaceNumberClaim', spaceNumberClaimSchema),
  }
}
