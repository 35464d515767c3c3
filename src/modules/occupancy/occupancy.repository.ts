import type { AnyBulkWriteOperation } from 'mongoose'
import { type Database, trusted } from '../../shared/mongo.ts'
import { occupancyModels, type SpaceHistoryRecord, type SpaceStateRecord } from './occupancy.model.ts'

const STATE_WRITE_CHUNK = 50

export type OccupancyRepository = ReturnType<typeof createOccupancyRepository>

export function createOccupancyRepository(db: Database) {
  const { history, states } = occupancyModels(db)
  return {
    /**
     * Writes history rows and state snapshots in unordered batches. A row that exists already
     * (a redelivered stream entry) is skipped; anything else fails the call.
     */
    async persist(
      rows: readonly SpaceHistoryRecord[],
      snapshots: readonly SpaceStateRecord[],
    ): Promise<void> {
      if (rows.length > 0) {
        try {
          await history.insertMany(rows, { ordered: false, lean: true })
        } catch (error) {
          const writeErrors = (error as { writeErrors?: { code?: number; err?: { code?: number } }[] })
            .writeErrors
          const onlyDuplicates =
            (error as { code?: number }).code === 11000 ||
            (writeErrors !== undefined &&
              writeErrors.length > 0 &&
              writeErrors.every((e) => (e.code ?? e.err?.code) === 11000))
          if (!onlyDuplicates) throw error
        }
      }
      // In chunks: FerretDB v1.24 keeps a connection per matched statement of one update command
      // until the command ends (a deferred close in a loop), out of a pool of 100; a command that
      // replaces 100 existing documents waits forever for a connection and stalls the server.
      for (let i = 0; i < snapshots.length; i += STATE_WRITE_CHUNK) {
        const ops: AnyBulkWriteOperation<SpaceStateRecord>[] = snapshots
          .slice(i, i + STATE_WRITE_CHUNK)
          .map((s) => ({ replaceOne: { filter: { _id: s._id }, replacement: s, upsert: true } }))
        await states.bulkWrite(ops, { ordered: false })
      }
    },

    /** A space's history between two times, oldest first, paged by `_id`. */
    async history(spaceId: string, filter: { from: Date; to: Date; after?: string; limit: number }) {
      const lower =
        filter.after && filter.after > `${spaceId}/${filter.from.getTime()}` ? filter.after : undefined
      const range = trusted({
        ...(lower ? { $gt: lower } : { $gte: `${spaceId}/${filter.from.getTime()}` }),
        $lt: `${spaceId}/${filter.to.getTime()}`,
      })
      return await history
        .find({ _id: range })
        .sort({ _id: 1 })
        .limit(filter.limit)
        .lean<SpaceHistoryRecord[]>()
    },

    async countHistory(): Promise<number> {
      return await history.countDocuments()
    },
  }
}
