import type { QueryFilter } from 'mongoose'
import { type Database, insertOnce, trusted } from '../../shared/mongo.ts'
import {
  type ExportClaimRecord,
  type ExportRecord,
  type ExportStatus,
  exportModels,
} from './exports.model.ts'

export type ExportsRepository = ReturnType<typeof createExportsRepository>

export function createExportsRepository(db: Database) {
  const { exports, exportRuns, exportNotices } = exportModels(db)
  return {
    async insertExport(record: ExportRecord): Promise<void> {
      await exports.create(record)
    },

    async findExport(id: string): Promise<ExportRecord | undefined> {
      return (await exports.findById(id).lean<ExportRecord>()) ?? undefined
    },

    /** Only the holder of the export's run claim (or the sweep, for a dead run) writes. */
    async updateExport(id: string, fields: Partial<Omit<ExportRecord, '_id'>>): Promise<void> {
      await exports.updateOne({ _id: id }, { $set: fields })
    },

    async deleteExport(id: string): Promise<void> {
      await exports.deleteOne({ _id: id })
    },

    /** A page of exports in a status, oldest first. */
    async listByStatus(status: ExportStatus, limit: number, after?: string): Promise<ExportRecord[]> {
      const query: QueryFilter<ExportRecord> = { status }
      if (after) query._id = trusted({ $gt: after })
      return await exports.find(query).sort({ _id: 1 }).limit(limit).lean<ExportRecord[]>()
    },

    /** A page of ready exports whose owner was not told yet, oldest first (the sweep's retries). */
    async listUnnotified(limit: number, after?: string): Promise<ExportRecord[]> {
      const query: QueryFilter<ExportRecord> = { status: 'ready', notified: false }
      if (after) query._id = trusted({ $gt: after })
      return await exports.find(query).sort({ _id: 1 }).limit(limit).lean<ExportRecord[]>()
    },

    async listExpired(now: Date, limit: number): Promise<ExportRecord[]> {
      return await exports
        .find({ expires_at: trusted({ $lt: now }) })
        .sort({ _id: 1 })
        .limit(limit)
        .lean<ExportRecord[]>()
    },

    claimRun: (id: string) => insertOnce(exportRuns, { _id: id, created_at: new Date() }),
    async deleteRun(id: string): Promise<void> {
      await exportRuns.deleteOne({ _id: id })
    },
    async findRun(id: string): Promise<ExportClaimRecord | undefined> {
      return (await exportRuns.findById(id).lean<ExportClaimRecord>()) ?? undefined
    },
    /** Drops a run claim whose holder died, only the one seen (its `created_at`). */
    async dropStaleRun(claim: ExportClaimRecord): Promise<void> {
      await exportRuns.deleteOne({ _id: claim._id, created_at: claim.created_at })
    },
    claimNotice: (id: string) => insertOnce(exportNotices, { _id: id, created_at: new Date() }),
    async releaseNotice(id: string): Promise<void> {
      await exportNotices.deleteOne({ _id: id })
    },
    async findNotice(id: string): Promise<ExportClaimRecord | undefined> {
      return (await exportNotices.findById(id).lean<ExportClaimRecord>()) ?? undefined
    },
    /**
     * Drops a claim left by a sender that died, only the one seen (its `created_at`): a claim
     * taken again meanwhile stays. The insert that follows decides who sends.
     */
    async dropStaleNotice(claim: ExportClaimRecord): Promise<void> {
      await exportNotices.deleteOne({ _id: claim._id, created_at: claim.created_at })
    },
  }
}
