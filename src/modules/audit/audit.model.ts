import { Schema } from 'mongoose'
import { type Database, modelOn } from '../../shared/mongo.ts'

export const auditOutcomes = ['succeeded', 'refused', 'failed'] as const
export type AuditOutcome = (typeof auditOutcomes)[number]
export const auditedMethods = ['POST', 'PUT', 'PATCH', 'DELETE'] as const
export type AuditedMethod = (typeof auditedMethods)[number]
export const snapshotNames = ['request_body', 'before', 'after'] as const
export type SnapshotName = (typeof snapshotNames)[number]

/**
 * One recorded request of an operator or admin. Insert-only: written once by the request it
 * describes, read by admins, deleted by the purge when older than the retention. The `_id` is a
 * UUIDv7, so `_id` order is time order (newest first is a descending `_id` sort, no index).
 *
 * The JSON snapshots (request body, before, after) are stored as text: they are the API's JSON,
 * whose keys and nested arrays a client chooses, and FerretDB refuses keys with `.` or `$` and
 * nested arrays (DESIGN.md section 5). Each is at most the snapshot bound; a longer one is cut and
 * named in `truncated`.
 */
export type AuditRecord = {
  _id: string
  at: Date
  actor_id: string
  actor_role: 'operator' | 'admin'
  /** The account's address when the action was recorded; null when it could not be read. */
  actor_email: string | null
  /** The operationId of the route, e.g. `replaceLot`. */
  action: string
  method: AuditedMethod
  /** The concrete path, e.g. /api/v1/lots/0193... */
  path: string
  /** The OpenAPI path template, e.g. /api/v1/lots/{id}. */
  route: string
  target_type: string | null
  target_id: string | null
  status: number
  outcome: AuditOutcome
  /** The problem `code` of a refused or failed request. */
  error_code: string | null
  request_id: string
  ip: string
  user_agent: string | null
  request_body: string | null
  before: string | null
  after: string | null
  truncated: SnapshotName[]
}

const auditSchema = new Schema<AuditRecord>(
  {
    _id: { type: String, required: true },
    at: { type: Date, required: true },
    actor_id: { type: String, required: true },
    actor_role: { type: String, required: true },
    actor_email: { type: String, default: null },
    action: { type: String, required: true },
    method: { type: String, enum: auditedMethods, required: true },
    path: { type: String, required: true },
    route: { type: String, required: true },
    target_type: { type: String, default: null },
    target_id: { type: String, default: null },
    status: { type: Number, required: true },
    outcome: { type: String, enum: auditOutcomes, required: true },
    error_code: { type: String, default: null },
    request_id: { type: String, required: true },
    ip: { type: String, required: true },
    user_agent: { type: String, default: null },
    request_body: { type: String, default: null },
    before: { type: String, default: null },
    after: { type: String, default: null },
    truncated: { type: [String], enum: snapshotNames, default: [] },
  },
  { versionKey: false, collection: 'audit_log' },
)

export function auditModels(db: Database) {
  return { auditLog: modelOn(db, 'AuditLog', auditSchema) }
}
