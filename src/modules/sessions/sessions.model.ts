import { Schema } from 'mongoose'
import { type Database, modelOn } from '../../shared/mongo.ts'
import type { TariffSnapshot } from './operations.contract.ts'

export const sessionStatuses = ['active', 'closed'] as const
export type SessionStatus = (typeof sessionStatuses)[number]

/** How a car is let in at a gate; `reservation`: a check-in at a reservation. */
export const gateEntrySources = ['operator', 'gate', 'lpr'] as const
export const entrySources = [...gateEntrySources, 'reservation'] as const
export type EntrySource = (typeof entrySources)[number]

/** A stay of one vehicle in one lot, from entry to exit. */
export type SessionRecord = {
  _id: string
  ticket_number: string
  lot_id: string
  level_id: string | null
  zone_id: string | null
  space_id: string | null
  space_number: string | null
  /** Normalised: uppercase letters and digits. */
  plate: string
  /** As read or typed at the gate. */
  license_plate: string
  vehicle_id: string | null
  vehicle_type: string
  /** The registered vehicle's owner, if any. */
  user_id: string | null
  entry_at: Date
  entry_gate: string | null
  entry_source: EntrySource
  lpr_confidence: number | null
  /** The rate plan in force at entry: it prices the whole stay. */
  tariff: TariffSnapshot | null
  currency: string
  time_zone: string
  status: SessionStatus
  /** Declared at an exit without the ticket: the tariff's lost-ticket fee is added. */
  lost_ticket: boolean
  exit_at: Date | null
  exit_gate: string | null
  /** The fee at exit, in minor units. */
  fee_total: number | null
  /** The reservation the session was checked in from (absent on sessions older than reservations). */
  reservation_id?: string | null
  created_by: string
  created_at: Date
  updated_at: Date
}

const sessionSchema = new Schema<SessionRecord>(
  {
    _id: { type: String, required: true },
    ticket_number: { type: String, required: true },
    lot_id: { type: String, required: true },
    level_id: { type: String, default: null },
    zone_id: { type: String, default: null },
    space_id: { type: String, default: null },
    space_number: { type: String, default: null },
    plate: { type: String, required: true },
    license_plate: { type: String, required: true },
    vehicle_id: { type: String, default: null },
    vehicle_type: { type: String, required: true },
    user_id: { type: String, default: null },
    entry_at: { type: Date, required: true },
    entry_gate: { type: String, default: null },
    entry_source: { type: String, enum: entrySources, required: true },
    lpr_confidence: { type: Number, default: null },
    tariff: { type: Schema.Types.Mixed, default: null },
    currency: { type: String, required: true },
    time_zone: { type: String, required: true },
    status: { type: String, enum: sessionStatuses, required: true },
    lost_ticket: { type: Boolean, default: false },
    exit_at: { type: Date, default: null },
    exit_gate: { type: String, default: null },
    fee_total: { type: Number, default: null },
    reservation_id: { type: String, default: null },
    created_by: { type: String, required: true },
    created_at: { type: Date, required: true },
    updated_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'sessions', minimize: false },
)
// Lists: a lot's active sessions, a customer's sessions.
sessionSchema.index({ status: 1, lot_id: 1, _id: 1 })
sessionSchema.index({ user_id: 1, _id: 1 })

/**
 * Insert-only claims (DESIGN.md section 5). `active_plates`: `_id` the normalised plate, held from
 * entry to exit, so that a plate has at most one active session. `session_tickets`: `_id` the
 * ticket number, the lookup of a ticket by `_id`. `session_exits`: `_id` the session id, the fact
 * that the session ended, written once.
 */
export type ActivePlateRecord = { _id: string; session_id: string; created_at: Date }
export type TicketRecord = { _id: string; session_id: string; created_at: Date }
export type ExitRecord = {
  _id: string
  exit_at: Date
  exit_gate: string | null
  fee_total: number
  paid: number
  created_by: string
}

const activePlateSchema = new Schema<ActivePlateRecord>(
  {
    _id: { type: String, required: true },
    session_id: { type: String, required: true },
    created_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'active_plates' },
)

const ticketSchema = new Schema<TicketRecord>(
  {
    _id: { type: String, required: true },
    session_id: { type: String, required: true },
    created_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'session_tickets' },
)

const exitSchema = new Schema<ExitRecord>(
  {
    _id: { type: String, required: true },
    exit_at: { type: Date, required: true },
    exit_gate: { type: String, default: null },
    fee_total: { type: Number, required: true },
    paid: { type: Number, required: true },
    created_by: { type: String, required: true },
  },
  { versionKey: false, collection: 'session_exits' },
)

export function sessionModels(db: Database) {
  return {
    sessions: modelOn(db, 'Session', sessionSchema),
    activePlates: modelOn(db, 'ActivePlate', activePlateSchema),
    tickets: modelOn(db, 'SessionTicket', ticketSchema),
    exits: modelOn(db, 'SessionExit', exitSchema),
  }
}
