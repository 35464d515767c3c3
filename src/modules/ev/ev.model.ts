import { Schema } from 'mongoose'
import { type Database, modelOn } from '../../shared/mongo.ts'

export const chargerTypes = ['LEVEL1', 'LEVEL2', 'DC_FAST'] as const
export type ChargerType = (typeof chargerTypes)[number]

/** What staff set; the answered status is live (see ev.service.ts). */
export const serviceStatuses = ['available', 'out_of_service'] as const
export type ServiceStatus = (typeof serviceStatuses)[number]

export type EnergySource = 'meter' | 'estimated'

/** A charging station bound to one EV space. */
export type StationRecord = {
  _id: string
  space_id: string
  /** Denormalised from the space when it is set (lists filter by lot). */
  lot_id: string
  zone_id: string
  space_number: string
  /** The lot's currency: `price_per_kwh` and `idle_fee_per_minute` are minor units of it. */
  currency: string
  charger_type: ChargerType
  connector_type: string
  power_kw: number
  price_per_kwh: number
  idle_fee_per_minute: number
  idle_grace_minutes: number
  status: ServiceStatus
  meter_device_id: string | null
  created_at: Date
  updated_at: Date
}

const stationSchema = new Schema<StationRecord>(
  {
    _id: { type: String, required: true },
    space_id: { type: String, required: true },
    lot_id: { type: String, required: true },
    zone_id: { type: String, required: true },
    space_number: { type: String, required: true },
    currency: { type: String, required: true },
    charger_type: { type: String, enum: chargerTypes, required: true },
    connector_type: { type: String, required: true },
    power_kw: { type: Number, required: true },
    price_per_kwh: { type: Number, required: true },
    idle_fee_per_minute: { type: Number, required: true },
    idle_grace_minutes: { type: Number, required: true },
    status: { type: String, enum: serviceStatuses, required: true },
    meter_device_id: { type: String, default: null },
    created_at: { type: Date, required: true },
    updated_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'ev_stations' },
)
// The lists, filtered by lot and charger type, paged by `_id`.
stationSchema.index({ lot_id: 1, _id: 1 })
stationSchema.index({ charger_type: 1, _id: 1 })

/** One station per space: `_id` is the space id, the insert is the arbiter. */
export type StationSpaceClaimRecord = { _id: string; station_id: string; created_at: Date }

const stationSpaceSchema = new Schema<StationSpaceClaimRecord>(
  {
    _id: { type: String, required: true },
    station_id: { type: String, required: true },
    created_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'ev_station_spaces' },
)

/**
 * A running charge's hold: `ev_station_claims/_id = stationId` (one charge per station) and
 * `ev_session_claims/_id = parkingSessionId` (one running charge per parking session). Inserted at
 * start, deleted by their charge at its stop.
 */
export type ChargeClaimRecord = { _id: string; charge_id: string; created_at: Date }

const chargeClaimSchema = (collection: string) =>
  new Schema<ChargeClaimRecord>(
    {
      _id: { type: String, required: true },
      charge_id: { type: String, required: true },
      created_at: { type: Date, required: true },
    },
    { versionKey: false, collection },
  )

/** A charging session. Its end is the stop fact; `status` and the end fields here are its cache. */
export type ChargeRecord = {
  _id: string
  station_id: string
  parking_session_id: string
  vehicle_id: string | null
  /** The owner of the parking session's vehicle, if registered: who may see and stop it. */
  user_id: string | null
  lot_id: string
  space_id: string
  currency: string
  /** Snapshots of the station at start: a later edit does not reprice a charge. */
  charger_type: ChargerType
  price_per_kwh: number
  idle_fee_per_minute: number
  idle_grace_minutes: number
  /** The station's power at the start: the estimate's rate. */
  power_kw: number
  /** As the start asked; information only (nothing enforces it at the charger). */
  max_power_requested: number | null
  meter_device_id: string | null
  /** The meter's cumulative reading at start; null: no meter, or none read yet (estimated). */
  meter_start_wh: number | null
  started_at: Date
  status: 'charging' | 'completed'
  stopped_at: Date | null
  energy_wh: number | null
  energy_source: EnergySource
  meter_end_wh: number | null
  cost: number | null
  stop_reason: StopReason | null
  created_by: string
  created_at: Date
  updated_at: Date
}

export type StopReason = 'stopped' | 'exit'

const chargeSchema = new Schema<ChargeRecord>(
  {
    _id: { type: String, required: true },
    station_id: { type: String, required: true },
    parking_session_id: { type: String, required: true },
    vehicle_id: { type: String, default: null },
    user_id: { type: String, default: null },
    lot_id: { type: String, required: true },
    space_id: { type: String, required: true },
    currency: { type: String, required: true },
    charger_type: { type: String, enum: chargerTypes, required: true },
    price_per_kwh: { type: Number, required: true },
    idle_fee_per_minute: { type: Number, required: true },
    idle_grace_minutes: { type: Number, required: true },
    power_kw: { type: Number, required: true },
    max_power_requested: { type: Number, default: null },
    meter_device_id: { type: String, default: null },
    meter_start_wh: { type: Number, default: null },
    started_at: { type: Date, required: true },
    status: { type: String, enum: ['charging', 'completed'], required: true },
    stopped_at: { type: Date, default: null },
    energy_wh: { type: Number, default: null },
    energy_source: { type: String, enum: ['meter', 'estimated'], required: true },
    meter_end_wh: { type: Number, default: null },
    cost: { type: Number, default: null },
    stop_reason: { type: String, default: null },
    created_by: { type: String, required: true },
    created_at: { type: Date, required: true },
    updated_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'ev_charges' },
)
// Lists: a customer's own, by station, by status; the sweep reads the running ones.
chargeSchema.index({ user_id: 1, _id: 1 })
chargeSchema.index({ station_id: 1, _id: 1 })
chargeSchema.index({ status: 1, _id: 1 })

/** The end of a charge, insert-only (`_id` = the charge id): what a second stop answers. */
export type ChargeStopRecord = {
  _id: string
  stopped_at: Date
  energy_wh: number
  energy_source: EnergySource
  meter_end_wh: number | null
  cost: number
  reason: StopReason
  created_by: string
}

const chargeStopSchema = new Schema<ChargeStopRecord>(
  {
    _id: { type: String, required: true },
    stopped_at: { type: Date, required: true },
    energy_wh: { type: Number, required: true },
    energy_source: { type: String, enum: ['meter', 'estimated'], required: true },
    meter_end_wh: { type: Number, default: null },
    cost: { type: Number, required: true },
    reason: { type: String, required: true },
    created_by: { type: String, required: true },
  },
  { versionKey: false, collection: 'ev_charge_stops' },
)

/**
 * A parking session's index of its charges: `_id` `${parkingSessionId}:${n}`, insert-only, so that
 * the fee reads a session's charges by `_id` (readNumbered), never by a secondary filter.
 */
export type SessionChargeRecord = { _id: string; charge_id: string; created_at: Date }

const sessionChargeSchema = new Schema<SessionChargeRecord>(
  {
    _id: { type: String, required: true },
    charge_id: { type: String, required: true },
    created_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'ev_session_charges' },
)

export function evModels(db: Database) {
  return {
    stations: modelOn(db, 'EvStation', stationSchema),
    stationSpaces: modelOn(db, 'EvStationSpace', stationSpaceSchema),
    stationClaims: modelOn(db, 'EvStationClaim', chargeClaimSchema('ev_station_claims')),
    sessionClaims: modelOn(db, 'EvSessionClaim', chargeClaimSchema('ev_session_claims')),
    charges: modelOn(db, 'EvCharge', chargeSchema),
    chargeStops: modelOn(db, 'EvChargeStop', chargeStopSchema),
    sessionCharges: modelOn(db, 'EvSessionCharge', sessionChargeSchema),
  }
}
