import type { QueryFilter } from 'mongoose'
import { createIdempotencyStore } from '../../shared/idempotency.ts'
import { type Database, trusted } from '../../shared/mongo.ts'
import { pricingModels, type RateRecord } from './pricing.model.ts'

export type PricingRepository = ReturnType<typeof createPricingRepository>

/** More plans than this in one lot is a configuration nobody can reason about. */
export const MAX_PLANS_PER_LOT = 500

export function createPricingRepository(db: Database) {
  const { rates } = pricingModels(db)
  return {
    /** The Idempotency-Key records of rate creates. */
    idempotency: createIdempotencyStore(db),

    /** Rejects (E11000) when the id is taken: the caller's idempotent create expects its own id. */
    async insertRate(rate: RateRecord): Promise<void> {
      await rates.create(rate)
    },

    async findRate(id: string): Promise<RateRecord | undefined> {
      return (await rates.findById(id).lean<RateRecord>()) ?? undefined
    },

    /** Admin writes only; the last one wins, as for any full replacement. */
    async updateRate(
      id: string,
      fields: Omit<RateRecord, '_id' | 'created_at' | 'updated_at' | 'is_active'>,
    ): Promise<RateRecord | undefined> {
      await rates.updateOne({ _id: id }, { $set: { ...fields, updated_at: new Date() } })
      return await this.findRate(id)
    },

    async deactivateRate(id: string): Promise<void> {
      await rates.updateOne({ _id: id }, { $set: { is_active: false, updated_at: new Date() } })
    },

    async listRates(filter: { lot_id?: string; active?: boolean; after?: string; limit: number }) {
      const query: QueryFilter<RateRecord> = {}
      if (filter.lot_id !== undefined) query.lot_id = filter.lot_id
      if (filter.active !== undefined) query.is_active = filter.active
      if (filter.after) query._id = trusted({ $gt: filter.after })
      return await rates.find(query).sort({ _id: 1 }).limit(filter.limit).lean<RateRecord[]>()
    },

    /** The active plans of a lot, the candidates from which a stay's tariff is picked. */
    async activeRatesOfLot(lotId: string): Promise<RateRecord[]> {
      return await rates
        .find({ lot_id: lotId, is_active: true })
        .sort({ _id: 1 })
        .limit(MAX_PLANS_PER_LOT)
        .lean<RateRecord[]>()
    },

    async countActiveRatesOfLot(lotId: string): Promise<number> {
      return await rates.countDocuments({ lot_id: lotId, is_active: true })
    },
  }
}
