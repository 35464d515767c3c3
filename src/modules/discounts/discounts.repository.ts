import type { QueryFilter } from 'mongoose'
import { type Database, insertOnce, readNumbered, trusted } from '../../shared/mongo.ts'
import {
  type DiscountRecord,
  discountModels,
  type RedemptionRecord,
  type SessionAdjustmentRecord,
  type ValidationRecord,
} from './discounts.model.ts'

export type DiscountsRepository = ReturnType<typeof createDiscountsRepository>

export function createDiscountsRepository(db: Database) {
  const { discounts, redemptions, validations, sessionAdjustments } = discountModels(db)
  const adjustmentEntries = (sessionId: string) =>
    readNumbered((id) => sessionAdjustments.findById(id).lean<SessionAdjustmentRecord>(), sessionId)
  return {
    async insertDiscount(discount: DiscountRecord): Promise<boolean> {
      return await insertOnce(discounts, discount)
    },

    async findDiscount(code: string): Promise<DiscountRecord | undefined> {
      return (await discounts.findById(code).lean<DiscountRecord>()) ?? undefined
    },

    async listDiscounts(filter: { after?: string; active?: boolean; limit: number }) {
      const query: QueryFilter<DiscountRecord> = {}
      if (filter.active !== undefined) query.is_active = filter.active
      if (filter.after) query._id = trusted({ $gt: filter.after })
      return await discounts.find(query).sort({ _id: 1 }).limit(filter.limit).lean<DiscountRecord[]>()
    },

    /** Admin edits: last writer wins, and nothing is counted on the document. */
    async updateDiscount(
      code: string,
      fields: Partial<Omit<DiscountRecord, '_id' | 'created_at'>>,
    ): Promise<DiscountRecord | undefined> {
      await discounts.updateOne({ _id: code }, { $set: { ...fields, updated_at: new Date() } })
      return await this.findDiscount(code)
    },

    async insertRedemption(redemption: RedemptionRecord): Promise<boolean> {
      return await insertOnce(redemptions, redemption)
    },

    async findRedemption(id: string): Promise<RedemptionRecord | undefined> {
      return (await redemptions.findById(id).lean<RedemptionRecord>()) ?? undefined
    },

    /**
     * Adds a redemption or validation to its session's index, once: a number is taken by an
     * insert; a ref listed twice by a race is read once.
     */
    async indexAdjustment(sessionId: string, source: SessionAdjustmentRecord['source'], ref: string) {
      const entries = await adjustmentEntries(sessionId)
      if (entries.some((e) => e.fact.ref === ref)) return
      for (let n = Math.max(-1, ...entries.map((e) => e.index)) + 1; ; n++) {
        const entry = { _id: `${sessionId}:${n}`, session_id: sessionId, source, ref, created_at: new Date() }
        if (await insertOnce(sessionAdjustments, entry)) return
      }
    },

    /** A session's redemptions and validations, through its index, by `_id` only. */
    async adjustmentsOf(sessionId: string) {
      const refs = new Map((await adjustmentEntries(sessionId)).map((e) => [e.fact.ref, e.fact.source]))
      const found = await Promise.all(
        [...refs].map(async ([ref, source]) =>
          source === 'redemption'
            ? { redemption: (await redemptions.findById(ref).lean<RedemptionRecord>()) ?? undefined }
            : { validation: (await validations.findById(ref).lean<ValidationRecord>()) ?? undefined },
        ),
      )
      return {
        redemptions: found.flatMap((f) => ('redemption' in f && f.redemption ? [f.redemption] : [])),
        validations: found.flatMap((f) => ('validation' in f && f.validation ? [f.validation] : [])),
      }
    },

    /** A code's redemptions counted per user (null: sessions without an account). */
    async usesByUser(code: string): Promise<{ user_id: string | null; uses: number }[]> {
      const rows = await redemptions.aggregate<{ _id: string | null; uses: number }>([
        { $match: { code } },
        { $group: { _id: '$user_id', uses: { $sum: 1 } } },
      ])
      return rows.map((row) => ({ user_id: row._id, uses: row.uses }))
    },

    async insertValidation(validation: ValidationRecord): Promise<boolean> {
      return await insertOnce(validations, validation)
    },

    async findValidation(id: string): Promise<ValidationRecord | undefined> {
      return (await validations.findById(id).lean<ValidationRecord>()) ?? undefined
    },

    async validationsOf(sessionId: string, filter: { after?: string; limit: number }) {
      const query: QueryFilter<ValidationRecord> = { session_id: sessionId }
      if (filter.after) query._id = trusted({ $gt: filter.after })
      return await validations.find(query).sort({ _id: 1 }).limit(filter.limit).lean<ValidationRecord[]>()
    },
  }
}
