import type { Filter } from 'mongodb'
import { type Database, insertOnce } from '../../shared/mongo.ts'
import { jobModels, type SentFactRecord } from './jobs.model.ts'

// The mail and purge jobs read other capabilities' records for reports and delete their expired
// ones. They go through the raw collections (like migrations), read-only except for the purge,
// in bounded pages by `_id`: never a hot path, and never a write to a live document.

/** The smallest UUIDv7 of a millisecond: `_id >= lowerId(t)` keeps what was made at or after t. */
export function lowerId(ms: number): string {
  const hex = Math.max(0, Math.floor(ms)).toString(16).padStart(12, '0')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-0000-0000-000000000000`
}

type Doc = { _id: string } & Record<string, unknown>

export type SessionRow = {
  _id: string
  lot_id: string
  user_id: string | null
  status: string
  entry_at: Date
  exit_at: Date | null
}
export type PaymentRow = {
  _id: string
  lot_id: string
  amount: number
  currency: string
  status: string
  settled_at: Date | null
}
export type RefundRow = { _id: string; payment_id: string; amount: number; created_at: Date }
export type ReservationRow = { _id: string; lot_id: string; start_at: Date; status: string }

export type JobsRepository = ReturnType<typeof createJobsRepository>

export function createJobsRepository(db: Database) {
  const { remindersSent, monthlyReports, purgeCursors } = jobModels(db)
  const raw = <T extends Doc>(name: string) => {
    const handle = db.db
    if (!handle) throw new Error('not connected to the database')
    return handle.collection<T>(name)
  }

  /** Every document of the filter, in pages of `pageSize` by `_id`. */
  async function* pages<T extends Doc>(
    collection: string,
    filter: Filter<T>,
    projection: Record<string, 1>,
    pageSize = 1_000,
  ): AsyncIterable<T[]> {
    let after: string | undefined
    for (;;) {
      const query = (after === undefined ? filter : { $and: [filter, { _id: { $gt: after } }] }) as Filter<T>
      const rows = (await raw<T>(collection)
        .find(query, { projection })
        .sort({ _id: 1 })
        .limit(pageSize)
        .toArray()) as T[]
      if (rows.length > 0) yield rows
      if (rows.length < pageSize) return
      after = rows[rows.length - 1]?._id
    }
  }

  /** Deletes by `_id` what `filter` finds, at most `batches` x `batchSize` documents per call. */
  async function deleteOlder(collection: string, filter: Filter<Doc>, batchSize = 1_000, batches = 20) {
    let deleted = 0
    for (let i = 0; i < batches; i++) {
      const ids = (
        await raw<Doc>(collection)
          .find(filter, { projection: { _id: 1 } })
          .limit(batchSize)
          .toArray()
      ).map((d) => d._id)
      if (ids.length === 0) break
      deleted += (await raw<Doc>(collection).deleteMany({ _id: { $in: ids } })).deletedCount
      if (ids.length < batchSize) break
    }
    return deleted
  }

  return {
    claimReminder: (id: string, recipients: number) =>
      insertOnce<SentFactRecord>(remindersSent, { _id: id, recipients, created_at: new Date() }),
    async releaseReminder(id: string) {
      await remindersSent.deleteOne({ _id: id })
    },
    /** `<YYYY-MM>:<adminId>`: that admin's report of that month. */
    claimMonthlyReport: (id: string, recipients: number) =>
      insertOnce<SentFactRecord>(monthlyReports, { _id: id, recipients, created_at: new Date() }),
    async releaseMonthlyReport(id: string) {
      await monthlyReports.deleteOne({ _id: id })
    },
    /** The fact of a month sent to every admin at once, as written before the claims were per admin. */
    async monthlyReportSentWhole(month: string): Promise<boolean> {
      return (await monthlyReports.findById(month).lean()) !== null
    },

    /**
     * Customers who parked since `since`: sessions made since then, those that ended since then
     * (a long stay that began before is activity too), and those still open.
     */
    async activeUsersSince(since: Date): Promise<Set<string>> {
      const users = new Set<string>()
      const filter: Filter<Doc> = {
        $or: [
          { _id: { $gte: lowerId(since.getTime()) } },
          { exit_at: { $gte: since } },
          { status: 'active' },
        ],
        user_id: { $ne: null },
      }
      for await (const rows of pages<Doc>('sessions', filter, { _id: 1, user_id: 1 })) {
        for (const row of rows) if (typeof row.user_id === 'string') users.add(row.user_id)
      }
      return users
    },

    /** Sessions that entered or left in [from, to), made at most `lookbackMs` before `from`. */
    sessionsBetween(from: Date, to: Date, lookbackMs: number): AsyncIterable<SessionRow[]> {
      return pages<SessionRow & Doc>(
        'sessions',
        {
          _id: { $gte: lowerId(from.getTime() - lookbackMs), $lt: lowerId(to.getTime()) },
          $or: [{ entry_at: { $gte: from, $lt: to } }, { exit_at: { $gte: from, $lt: to } }],
        },
        { _id: 1, lot_id: 1, user_id: 1, status: 1, entry_at: 1, exit_at: 1 },
      )
    },

    paymentsSettledBetween(from: Date, to: Date): AsyncIterable<PaymentRow[]> {
      return pages<PaymentRow & Doc>(
        'payments',
        { settled_at: { $gte: from, $lt: to } },
        { _id: 1, lot_id: 1, amount: 1, currency: 1, status: 1, settled_at: 1 },
      )
    },

    refundsBetween(from: Date, to: Date): AsyncIterable<RefundRow[]> {
      return pages<RefundRow & Doc>(
        'refunds',
        { created_at: { $gte: from, $lt: to } },
        { _id: 1, payment_id: 1, amount: 1, created_at: 1 },
      )
    },

    /**
     * The lot a refund counts in: its payment's. None for a duplicate payment's refund: the
     * duplicate was never settled (never revenue), as the analytics day counters skip it.
     */
    async paymentLot(paymentId: string): Promise<string | undefined> {
      const row = await raw<Doc>('payments').findOne(
        { _id: paymentId },
        { projection: { lot_id: 1, duplicate: 1 } },
      )
      if (row?.duplicate === true) return undefined
      return typeof row?.lot_id === 'string' ? row.lot_id : undefined
    },

    /**
     * Money of reservations and memberships in [from, to), each with its lot: prepayments
     * (`reservation_payments` by `at`), their refunds Stripe took (`reservation_refunds` by `at`),
     * and periods paid for a price (at insert by `paid_at`, or by their `paid` state) — the facts
     * the analytics day counters count.
     */
    async otherMoneyBetween(from: Date, to: Date) {
      const lotOf = new Map<string, string | undefined>()
      const lot = async (collection: string, id: string) => {
        const key = `${collection}:${id}`
        if (!lotOf.has(key)) {
          const row = await raw<Doc>(collection).findOne({ _id: id }, { projection: { lot_id: 1 } })
          lotOf.set(key, typeof row?.lot_id === 'string' ? row.lot_id : undefined)
        }
        return lotOf.get(key)
      }
      const money: { lot_id: string | undefined; amount: number; refunded: number; at: Date }[] = []
      const range = { $gte: from, $lt: to }
      for await (const rows of pages<Doc>(
        'reservation_payments',
        { at: range },
        { _id: 1, amount: 1, at: 1 },
      ))
        for (const r of rows)
          money.push({
            lot_id: await lot('reservations', r._id),
            amount: Number(r.amount),
            refunded: 0,
            at: r.at as Date,
          })
      const refunds = { at: range, provider_refund_id: { $ne: null } }
      for await (const rows of pages<Doc>('reservation_refunds', refunds, { _id: 1, amount: 1, at: 1 }))
        for (const r of rows)
          money.push({
            lot_id: await lot('reservations', r._id),
            amount: 0,
            refunded: Number(r.amount),
            at: r.at as Date,
          })
      const period = { _id: 1, membership_id: 1, terms: 1, paid_at: 1 } as const
      const paidPeriod = async (p: Doc, at: Date) => {
        const price = Number((p.terms as { price?: number } | undefined)?.price ?? 0)
        if (price > 0)
          money.push({
            lot_id: await lot('memberships', String(p.membership_id)),
            amount: price,
            refunded: 0,
            at,
          })
      }
      for await (const rows of pages<Doc>('membership_periods', { paid_at: range }, period))
        for (const p of rows) await paidPeriod(p, p.paid_at as Date)
      const states = { state: 'paid', created_at: range }
      for await (const rows of pages<Doc>('membership_period_states', states, {
        _id: 1,
        period_id: 1,
        created_at: 1,
      }))
        for (const s of rows) {
          const p = await raw<Doc>('membership_periods').findOne(
            { _id: String(s.period_id) },
            { projection: period },
          )
          if (p && !p.paid_at) await paidPeriod(p, s.created_at as Date)
        }
      return money
    },

    reservationsStartingBetween(from: Date, to: Date): AsyncIterable<ReservationRow[]> {
      return pages<ReservationRow & Doc>(
        'reservations',
        { start_at: { $gte: from, $lt: to } },
        { _id: 1, lot_id: 1, start_at: 1, status: 1 },
      )
    },

    /** Where a paged job stopped (`purge_cursors/<name>`), '' for the start. */
    async readCursor(name: string): Promise<string> {
      return (await purgeCursors.findById(name).lean<{ after: string }>())?.after ?? ''
    },
    /** Written by its job only (one writer). */
    async writeCursor(name: string, after: string): Promise<void> {
      await purgeCursors.updateOne(
        { _id: name },
        { $set: { after, updated_at: new Date() } },
        { upsert: true },
      )
    },

    // Purge

    purgeIdempotencyKeys: (before: Date) => deleteOlder('idempotency_keys', { created_at: { $lt: before } }),
    purgeStripeEvents: (before: Date) => deleteOlder('stripe_events', { created_at: { $lt: before } }),

    /**
     * Reservation slot claims (`<spaceId>:<slotStartISO>`) whose slot ended before `before`, read
     * in pages from where the last run stopped (at most `maxPages` per run, then from the start).
     */
    async purgeSlots(before: Date, slotMs: number, pageSize = 500, maxPages = 100) {
      const cursorId = 'reservation_slots'
      let after = (await purgeCursors.findById(cursorId).lean<{ after: string }>())?.after ?? ''
      let deleted = 0
      let scanned = 0
      for (let page = 0; page < maxPages; page++) {
        const rows = await raw<Doc>('reservation_slots')
          .find({ _id: { $gt: after } }, { projection: { _id: 1 } })
          .sort({ _id: 1 })
          .limit(pageSize)
          .toArray()
        scanned += rows.length
        const old = rows
          .map((r) => r._id)
          .filter((id) => {
            const start = Date.parse(id.slice(id.indexOf(':') + 1))
            return Number.isFinite(start) && start + slotMs < before.getTime()
          })
        if (old.length > 0)
          deleted += (await raw<Doc>('reservation_slots').deleteMany({ _id: { $in: old } })).deletedCount
        if (rows.length < pageSize) {
          after = ''
          break
        }
        after = rows[rows.length - 1]?._id ?? ''
      }
      await purgeCursors.updateOne(
        { _id: cursorId },
        { $set: { after, updated_at: new Date() } },
        { upsert: true },
      )
      return { deleted, scanned }
    },
  }
}
