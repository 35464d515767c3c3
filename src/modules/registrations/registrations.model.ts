import { Schema } from 'mongoose'
import { type Database, modelOn } from '../../shared/mongo.ts'

export const requestStatuses = ['pending', 'approved', 'denied'] as const
export type RequestStatus = (typeof requestStatuses)[number]

export type StoredDocumentInfo = {
  id: string
  file_name: string
  content_type: string
  size: number
  storage_key: string
}

export type RegistrationRequestRecord = {
  _id: string
  user_id: string
  status: RequestStatus
  note: string | null
  documents: StoredDocumentInfo[]
  submitted_at: Date
  decided_at: Date | null
  decided_by: string | null
  reason: string | null
}

/** One open request per account: the insert of `_id` = user id is the arbiter. */
export type OpenRequestRecord = { _id: string; request_id: string; created_at: Date }

/** A decision happens once: the insert of `_id` = request id is the arbiter. */
export type DecisionRecord = {
  _id: string
  decision: 'approved' | 'denied'
  decided_by: string
  decided_at: Date
}

const documentSchema = new Schema<StoredDocumentInfo>(
  {
    id: { type: String, required: true },
    file_name: { type: String, required: true },
    content_type: { type: String, required: true },
    size: { type: Number, required: true },
    storage_key: { type: String, required: true },
  },
  { _id: false },
)

const requestSchema = new Schema<RegistrationRequestRecord>(
  {
    _id: { type: String, required: true },
    user_id: { type: String, required: true },
    status: { type: String, enum: requestStatuses, required: true },
    note: { type: String, default: null },
    documents: { type: [documentSchema], required: true },
    submitted_at: { type: Date, required: true },
    decided_at: { type: Date, default: null },
    decided_by: { type: String, default: null },
    reason: { type: String, default: null },
  },
  { versionKey: false, collection: 'registration_requests' },
)
requestSchema.index({ status: 1 })
requestSchema.index({ user_id: 1 })

const openSchema = new Schema<OpenRequestRecord>(
  {
    _id: { type: String, required: true },
    request_id: { type: String, required: true },
    created_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'open_registration_requests' },
)

const decisionSchema = new Schema<DecisionRecord>(
  {
    _id: { type: String, required: true },
    decision: { type: String, enum: ['approved', 'denied'], required: true },
    decided_by: { type: String, required: true },
    decided_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'registration_decisions' },
)

export function registrationModels(db: Database) {
  return {
    requests: modelOn(db, 'RegistrationRequest', requestSchema),
    open: modelOn(db, 'OpenRegistrationRequest', openSchema),
    decisions: modelOn(db, 'RegistrationDecision', decisionSchema),
  }
}
