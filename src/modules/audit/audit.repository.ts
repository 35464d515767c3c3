import type { QueryFilter } from 'mongoose'
import { type Database, trusted } from '../../shared/mongo.ts'
import { type AuditRecord, auditModels } from './audit.model.ts'

export type AuditFilter = {
  actor_id?: string | undefined
  action?: string | undefined
  target_type?: string | undefined
  target_id?: string | undefined
  /** `_id` bounds: ids are UUIDv7, so these are time bounds too. */
  idAtLeast?: string | undefined
  idBelow?: string | undefined
}

export type AuditRepository = ReturnType<typeof createAuditRepository>

export function createAuditRepository(db: Database) {
  const { auditLog } = auditModels(db)
  return {
    async insert(record: AuditRecord): Promise<void> {
      await auditLog.create(record)
    },

    /** One write for many records (all or, on an error, some of them: insert the rest one by one). */
    async insertMany(records: AuditRecord[]): Promise<void> {
      await auditLog.collection.insertMany(records as never[], { ordered: true })
    },

    async find(id: string): Promise<AuditRecord | undefined> {
      return (await auditLog.findById(id).lean<AuditRecord>()) ?? undefined
    },

    /** A page, newest first. Secondary filters scan on FerretDB: an admin screen, bounded pages. */
    async list(filter: AuditFilter, limit: number): Promise<AuditRecord[]> {
      const query: QueryFilter<AuditRecord> = {}
      if (filter.actor_id) query.actor_id = filter.actor_id
      if (filter.action) query.action = filter.action
      if (filter.target_type) query.target_type = filter.target_type
      if (filter.target_id) query.target_id = filter.target_id
      const range: { $gte?: string; $lt?: string } = {}
      if (filter.idAtLeast) range.$gte = filter.idAtLeast
      if (filter.idBelow) range.$lt = filter.idBelow
      if (range.$gte !== undefined || range.$lt !== undefined) query._id = trusted(range)
      return await auditLog.find(query).sort({ _id: -1 }).limit(limit).lean<AuditRecord[]>()
    },

    /** Deletes records whose `_id` sorts below `idBelow` (older), in bounded batches. */
    async purgeBelow(idBelow: string, batchSize = 1_000, batches = 20): Promise<number> {
      let deleted = 0
      for (let i = 0; i < batches; i++) {
        const ids = (
          await auditLog
            .find({ _id: trusted({ $lt: idBelow }) }, { _id: 1 })
            .limit(batchSize)
            .lean<{ _id: string }[]>()
        ).map((r) => r._id)
        if (ids.length === 0) break
        deleted += (await auditLog.deleteMany({ _id: trusted({ $in: ids }) })).deletedCount
        if (ids.length < batchSize) break
      }
      return deleted
    },
  }
}
