import type { QueryFilter } from 'mongoose'
import { type Database, insertOnce, readNumbered, trusted } from '../../shared/mongo.ts'
import {
  type CodeRecord,
  type OutcomeRecord,
  type PaidRecord,
  type RefundRecord,
  type ReservationRecord,
  type ReservationStatus,
  reservationModels,
  type SlotRecord,
} from './reservations.model.ts'

export type ReservationsRepository = ReturnType<typeof createReservationsRepository>

/** The statuses whose window still holds its space. */
export const openStatuses: readonly ReservationStatus[] = ['pending_payment', 'confirmed', 'checked_in']

export function createReservationsRepository(db: Database) {
  const m = reservationModels(db)
  const byId = <T>(model: { findById(id: string): { lean<R>(): Promise<R | null> } }, id: string) =>
    model.findById(id).lean<T>()

  return {
    /**
     * Claims the slots in order; on a duplicate, deletes exactly the ones this call inserted and
     * answers the id of the slot that was taken. null: every slot is claimed.
     */
    async claimSlots(
      reservationId: string,
      slotIds: readonly string[],
      spaceId: string,
    ): Promise<string | null> {
      if (slotIds.length === 0) return null
      const now = new Date()
      const docs = slotIds.map((_id) => ({
        _id,
        reservation_id: reservationId,
        space_id: spaceId,
        created_at: now,
      }))
      try {
        await m.reservationSlots.collection.insertMany(docs as never[], { ordered: true })
        return null
      } catch (error) {
        const failure = error as {
          code?: number
          writeErrors?: { index: number; code?: number }[] | { index: number; code?: number }
          insertedCount?: number
        }
        const writeErrors = Array.isArray(failure.writeErrors)
          ? failure.writeErrors
          : failure.writeErrors
            ? [failure.writeErrors]
            : []
        const first = writeErrors[0]
        const duplicate = failure.code === 11000 || first?.code === 11000
        // Whatever this call may have inserted goes, and only what it inserted (the filter).
        const upTo = first ? first.index : slotIds.length
        await this.releaseSlots(reservationId, slotIds.slice(0, upTo))
        if (!duplicate) {
          await this.releaseSlots(reservationId, slotIds.slice(upTo))
          throw error
        }
        return slotIds[upTo] ?? slotIds[0] ?? null
      }
    },

    async releaseSlots(reservationId: string, slotIds: readonly string[]): Promise<void> {
      await Promise.all(
        slotIds.map((_id) => m.reservationSlots.deleteOne({ _id, reservation_id: reservationId })),
      )
    },

    findSlot: (id: string) => byId<SlotRecord>(m.reservationSlots, id),

    async claimCode(code: string, reservationId: string): Promise<boolean> {
      return await insertOnce<CodeRecord>(m.reservationCodes, {
        _id: code,
        reservation_id: reservationId,
        created_at: new Date(),
      })
    },
    findCode: (code: string) => byId<CodeRecord>(m.reservationCodes, code),
    async releaseCode(code: string, reservationId: string) {
      await m.reservationCodes.deleteOne({ _id: code, reservation_id: reservationId })
    },

    async indexPlate(plate: string, reservationId: string): Promise<void> {
      const existing = await readNumbered(
        (id) => byId<{ reservation_id: string }>(m.reservationPlates, id),
        plate,
      )
      if (existing.some((e) => e.fact.reservation_id === reservationId)) return
      for (let n = (existing.at(-1)?.index ?? -1) + 1; ; n++) {
        const inserted = await insertOnce(m.reservationPlates, {
          _id: `${plate}:${n}`,
          reservation_id: reservationId,
          created_at: new Date(),
        })
        if (inserted) return
      }
    },
    async reservationsOfPlate(plate: string): Promise<string[]> {
      const found = await readNumbered(
        (id) => byId<{ reservation_id: string }>(m.reservationPlates, id),
        plate,
      )
      return found.map((e) => e.fact.reservation_id)
    },

    async insertReservation(reservation: ReservationRecord): Promise<void> {
      await m.reservations.create(reservation)
    },
    async findReservation(id: string): Promise<ReservationRecord | undefined> {
      return (await byId<ReservationRecord>(m.reservations, id)) ?? undefined
    },
    async updateReservation(id: string, fields: Partial<Omit<ReservationRecord, '_id'>>): Promise<void> {
      await m.reservations.updateOne({ _id: id }, { $set: { ...fields, updated_at: new Date() } })
    },

    async listReservations(filter: {
      userId?: string | undefined
      lotId?: string | undefined
      status?: ReservationStatus | undefined
      after?: string | undefined
      limit: number
    }): Promise<ReservationRecord[]> {
      const query: QueryFilter<ReservationRecord> = {}
      if (filter.userId) query.user_id = filter.userId
      if (filter.lotId) query.lot_id = filter.lotId
      if (filter.status) query.status = filter.status
      if (filter.after) query._id = trusted({ $gt: filter.after })
      return await m.reservations.find(query).sort({ _id: 1 }).limit(filter.limit).lean<ReservationRecord[]>()
    },

    /** Open reservations of a lot whose window overlaps [start, end): availability's view. */
    async overlapping(lotId: string, start: Date, end: Date): Promise<Pick<ReservationRecord, 'space_id'>[]> {
      return await m.reservations
        .find(
          {
            lot_id: lotId,
            status: trusted({ $in: [...openStatuses] }),
            start_at: trusted({ $lt: end }),
            end_at: trusted({ $gt: start }),
          },
          { space_id: 1 },
        )
        .lean<Pick<ReservationRecord, 'space_id'>[]>()
    },

    /** A page of reservations in a status, with a time field at or before `before`, after the `_id` `after` (jobs). */
    async due(
      status: ReservationStatus,
      field: 'hold_from' | 'no_show_at' | 'payment_deadline',
      before: Date,
      extra: QueryFilter<ReservationRecord> = {},
      after = '',
      limit = 200,
    ): Promise<ReservationRecord[]> {
      return await m.reservations
        .find({ ...extra, status, [field]: trusted({ $lte: before }), _id: trusted({ $gt: after }) })
        .sort({ _id: 1 })
        .limit(limit)
        .lean<ReservationRecord[]>()
    },

    /** Reservations that ended but whose hold may still stand (the release was not finished). */
    async heldButClosed(limit = 200): Promise<ReservationRecord[]> {
      return await m.reservations
        .find({
          held: true,
          status: trusted({ $nin: ['pending_payment', 'confirmed'] as ReservationStatus[] }),
        })
        .limit(limit)
        .lean<ReservationRecord[]>()
    },

    /** Confirmed reservations whose hold the tick placed: the hot state's rebuild. */
    async *holds(pageSize = 500): AsyncIterable<{ sessionId: string; spaceId: string }[]> {
      let after = ''
      for (;;) {
        const rows = await m.reservations
          .find({ status: 'confirmed', held: true, _id: trusted({ $gt: after }) }, { _id: 1, space_id: 1 })
          .sort({ _id: 1 })
          .limit(pageSize)
          .lean<Pick<ReservationRecord, '_id' | 'space_id'>[]>()
        if (rows.length > 0) yield rows.map((r) => ({ sessionId: `rsv:${r._id}`, spaceId: r.space_id }))
        if (rows.length < pageSize) return
        after = rows[rows.length - 1]?._id ?? after
      }
    },

    async claimOutcome(outcome: OutcomeRecord): Promise<boolean> {
      return await insertOnce(m.reservationOutcomes, outcome)
    },
    findOutcome: (id: string) => byId<OutcomeRecord>(m.reservationOutcomes, id),
    async dropOutcome(id: string, token: string) {
      await m.reservationOutcomes.deleteOne({ _id: id, token })
    },

    async indexIntent(intentId: string, reservationId: string): Promise<void> {
      await insertOnce(m.reservationIntents, {
        _id: intentId,
        reservation_id: reservationId,
        created_at: new Date(),
      })
    },
    async reservationOfIntent(intentId: string): Promise<string | undefined> {
      return (await byId<{ reservation_id: string }>(m.reservationIntents, intentId))?.reservation_id
    },

    async recordPaid(paid: PaidRecord): Promise<boolean> {
      return await insertOnce(m.reservationPayments, paid)
    },
    findPaid: (id: string) => byId<PaidRecord>(m.reservationPayments, id),

    async claimRefund(refund: RefundRecord): Promise<boolean> {
      return await insertOnce(m.reservationRefunds, refund)
    },
    findRefund: (id: string) => byId<RefundRecord>(m.reservationRefunds, id),
    async settleRefund(id: string, providerRefundId: string) {
      await m.reservationRefunds.updateOne(
        { _id: id },
        { $set: { provider_refund_id: providerRefundId, refusal: null, retry_at: null } },
      )
    },
    /** Stripe refused the attempt: no money moved; the next attempt (another key) waits until `retryAt`. */
    async refuseRefund(id: string, refusal: string, attempts: number, retryAt: Date) {
      await m.reservationRefunds.updateOne(
        { _id: id, provider_refund_id: null },
        { $set: { refusal, attempts, retry_at: retryAt } },
      )
    },
    /** A refused refund is asked again: in doubt until Stripe answers. */
    async retryRefund(id: string) {
      await m.reservationRefunds.updateOne(
        { _id: id, provider_refund_id: null },
        { $set: { refusal: null, retry_at: null } },
      )
    },
    /** Unsettled refunds (in doubt or refused), a page at a time by `_id` (the jobs). */
    async unsettledRefunds(after: string, limit = 100): Promise<RefundRecord[]> {
      return await m.reservationRefunds
        .find({ provider_refund_id: null, _id: trusted({ $gt: after }) })
        .sort({ _id: 1 })
        .limit(limit)
        .lean<RefundRecord[]>()
    },
  }
}
