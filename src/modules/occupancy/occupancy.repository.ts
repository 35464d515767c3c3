import { type Database, trusted } from '../../shared/mongo.ts'
import { occupancyModels, type SpaceHistoryRecord } from './occupancy.model.ts'

export type OccupancyRepository = ReturnType<typeof createOccupancyRepository>

export function createOccupancyRepository(db: Database) {
  const { history } = occupancyModels(db)
  return {
    /**
     * Writes history rows in one unordered batch, through the driver (the rows are built by our
     * code, no casting needed). A row that exists already (a redelivered stream entry) is skipped;
     * anything else fails the call.
     */
    async persist(rows: readonly SpaceHistoryRecord[]): Promise<void> {
      if (rows.length === 0) return
      try {
        await history.collection.insertMany(rows as never[], { ordered: false })
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
    },

    /** A space's history between two times, oldest first, paged by `_id`. */
    async history(spaceId: string, filter: { from: Date; to: Date; after?: string; limit: number }) {
      // `_id`s hold 13-digit epoch milliseconds: bounds are clamped and padded to compare as strings.
      const key = (date: Date) =>
        `${spaceId}/${String(Math.min(Math.max(date.getTime(), 0), 9_999_999_999_999)).padStart(13, '0')}`
      const from = key(filter.from)
      const lower = filter.after && filter.after > from ? filter.after : undefined
      const range = trusted({ ...(lower ? { $gt: lower } : { $gte: from }), $lt: key(filter.to) })
      return await history
        .find({ _id: range })
        .sort({ _id: 1 })
        .limit(filter.limit)
        .lean<SpaceHistoryRecord[]>()
    },
  }
}
