import { Schema } from 'mongoose'
import { type Database, modelOn } from '../../shared/mongo.ts'

/**
 * Insert-only facts that make the mail jobs idempotent. `reminders_sent/_id =
 * "<userId>:<yyyy-mm-dd of the period's start>"`: one reminder per customer per period.
 * `monthly_reports/_id = "YYYY-MM:<adminId>"`: the month's report is sent once to each admin
 * (a bare `"YYYY-MM"`, written before the claims were per admin, means sent to all). Each is inserted before the
 * e-mail goes and deleted again when the send fails, so that the next run retries.
 */
export type SentFactRecord = { _id: string; recipients: number; created_at: Date }

const sentFact = (collection: string) =>
  new Schema<SentFactRecord>(
    {
      _id: { type: String, required: true },
      recipients: { type: Number, required: true },
      created_at: { type: Date, required: true },
    },
    { versionKey: false, collection },
  )

/** Where a paged purge stopped, so that the next run goes on from there (written by the job only). */
export type PurgeCursorRecord = { _id: string; after: string; updated_at: Date }

const purgeCursorSchema = new Schema<PurgeCursorRecord>(
  {
    _id: { type: String, required: true },
    after: { type: String, required: true },
    updated_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'purge_cursors' },
)

export function jobModels(db: Database) {
  return {
    remindersSent: modelOn(db, 'ReminderSent', sentFact('reminders_sent')),
    monthlyReports: modelOn(db, 'MonthlyReport', sentFact('monthly_reports')),
    purgeCursors: modelOn(db, 'PurgeCursor', purgeCursorSchema),
  }
}
