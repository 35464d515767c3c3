import { Schema } from 'mongoose'
import { type Database, modelOn } from '../../shared/mongo.ts'

export const exportStatuses = ['queued', 'running', 'ready', 'failed'] as const
export type ExportStatus = (typeof exportStatuses)[number]

/**
 * A customer's export of their parking history. Written by its request (queued), then only by
 * the holder of its run claim (running, ready, failed): one writer at a time, so `$set` is safe.
 */
export type ExportRecord = {
  _id: string
  user_id: string
  kind: 'parking_history'
  /** Sessions that entered in [from, to); null: unbounded. */
  from: Date | null
  to: Date | null
  status: ExportStatus
  rows: number | null
  size: number | null
  storage_key: string | null
  error: string | null
  /** The owner was told by e-mail that it is ready. */
  notified: boolean
  created_at: Date
  started_at: Date | null
  ready_at: Date | null
  /** The purge job removes the file and the record after this. */
  expires_at: Date
}

const exportSchema = new Schema<ExportRecord>(
  {
    _id: { type: String, required: true },
    user_id: { type: String, required: true },
    kind: { type: String, required: true },
    from: { type: Date, default: null },
    to: { type: Date, default: null },
    status: { type: String, enum: exportStatuses, required: true },
    rows: { type: Number, default: null },
    size: { type: Number, default: null },
    storage_key: { type: String, default: null },
    error: { type: String, default: null },
    notified: { type: Boolean, required: true },
    created_at: { type: Date, required: true },
    started_at: { type: Date, default: null },
    ready_at: { type: Date, default: null },
    expires_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'exports' },
)
// The sweep's work lists (queued, running, ready and not yet told), paged by `_id`.
exportSchema.index({ status: 1, _id: 1 })

/**
 * Insert-only facts. `export_runs/_id = exportId`: whoever inserts it runs the export (the
 * request's in-process run, agenda's run, the sweep), once. `export_notices/_id = exportId`: the
 * ready e-mail is sent by whoever inserts it (deleted again when the send fails, for a retry).
 */
export type ExportClaimRecord = { _id: string; created_at: Date }

const exportRunSchema = new Schema<ExportClaimRecord>(
  { _id: { type: String, required: true }, created_at: { type: Date, required: true } },
  { versionKey: false, collection: 'export_runs' },
)

const exportNoticeSchema = new Schema<ExportClaimRecord>(
  { _id: { type: String, required: true }, created_at: { type: Date, required: true } },
  { versionKey: false, collection: 'export_notices' },
)

export function exportModels(db: Database) {
  return {
    exports: modelOn(db, 'Export', exportSchema),
    exportRuns: modelOn(db, 'ExportRun', exportRunSchema),
    exportNotices: modelOn(db, 'ExportNotice', exportNoticeSchema),
  }
}
