import type { Database } from '../../shared/mongo.ts'
import { trusted } from '../../shared/mongo.ts'
import { occupancyModels } from '../occupancy/occupancy.model.ts'
import {
  analyticsModels,
  type DailyRollupRecord,
  type OccupancyRollupRecord,
  type RollupCheckpointRecord,
} from './analytics.model.ts'
import type { RollupChange } from './rollup.ts'

export type HistoryRow = RollupChange & { _id: string }

/** The only place analytics touches MongoDB: its own rollups, and read-only facts of other capabilities. */
export function createAnalyticsRepository(db: Database) {
  const { rollups, checkpoints, daily } = analyticsModels(db)
  const { history } = occupancyModels(db)
  const sessions = db.collection('sessions')
  const payments = db.collection('payments')
  const refunds = db.collection('refunds')
  const evStations = db.collection('ev_stations')
  const evClaims = db.collection('ev_station_claims')
  const reservations = db.collection('reservations')
  const reservationPayments = db.collection('reservation_payments')
  const reservationRefunds = db.collection('reservation_refunds')
  const memberships = db.collection('memberships')
  const periods = db.collection('membership_periods')
  const periodStates = db.collection('membership_period_states')

  /** The lot of each of some documents read by `_id` (reservations, memberships), asked once each. */
  async function lotsById(collection: typeof reservations, ids: unknown[]) {
    const lots = new Map<string, unknown>()
    for (const id of new Set(ids.map(String))) {
      const row = await collection.findOne({ _id: id as never }, { projection: { lot_id: 1 } })
      lots.set(id, row?.lot_id)
    }
    return lots
  }

  return {
    /** A lot's space changes with `at` in [from, to), in (at, _id) order, after `after`. */
    async historyPage(
      lotId: string,
      window: { from: Date; to: Date },
      after: { at: Date; id: string } | undefined,
      limit: number,
    ): Promise<HistoryRow[]> {
      // trusted() marks each operator object (sanitizeFilter wraps any other one in $eq).
      const filter = after
        ? {
            lot_id: lotId,
            $or: [
              { at: trusted({ $gt: after.at, $lt: window.to }) },
              { at: after.at, _id: trusted({ $gt: after.id }) },
            ],
          }
        : { lot_id: lotId, at: trusted({ $gte: window.from, $lt: window.to }) }
      return await history
        .find(filter)
        .sort({ at: 1, _id: 1 })
        .limit(limit)
        .select({ zone_id: 1, kind: 1, status_from: 1, status_to: 1, at: 1 })
        .lean<HistoryRow[]>()
    },

    async firstHistoryAt(lotId: string): Promise<Date | undefined> {
      const first = await history
        .findOne({ lot_id: lotId })
        .sort({ at: 1 })
        .select({ at: 1 })
        .lean<{ at: Date }>()
      return first?.at
    },

    async checkpoint(lotId: string): Promise<RollupCheckpointRecord | null> {
      return await checkpoints.findById(`occupancy:${lotId}`).lean<RollupCheckpointRecord>()
    },

    async saveCheckpoint(record: RollupCheckpointRecord): Promise<void> {
      await checkpoints.replaceOne({ _id: record._id }, record, { upsert: true })
    },

    async saveBuckets(records: readonly OccupancyRollupRecord[]): Promise<void> {
      for (let i = 0; i < records.length; i += 500) {
        await rollups.bulkWrite(
          records.slice(i, i + 500).map((r) => ({
            replaceOne: { filter: { _id: r._id }, replacement: r, upsert: true },
          })),
          { ordered: false },
        )
      }
    },

    /** A scope's buckets in [from, to), oldest first: an `_id` range. */
    async buckets(kind: 'lot' | 'zone', id: string, from: Date, to: Date): Promise<OccupancyRollupRecord[]> {
      return await rollups
        .find(
          // trusted() marks one object: the operator object itself, or sanitizeFilter wraps it in $eq.
          {
            _id: trusted({
              $gte: `${kind}:${id}:${from.toISOString()}`,
              $lt: `${kind}:${id}:${to.toISOString()}`,
            }),
          },
        )
        .sort({ _id: 1 })
        .lean<OccupancyRollupRecord[]>()
    },

    async saveDaily(record: DailyRollupRecord): Promise<void> {
      await daily.replaceOne({ _id: record._id }, record, { upsert: true })
    },

    /** The date of a lot's newest daily rollup (an `_id` range: `;` follows `:`). */
    async lastDailyDate(lotId: string): Promise<string | undefined> {
      const last = await daily
        .findOne({ _id: trusted({ $gte: `${lotId}:`, $lt: `${lotId};` }) })
        .sort({ _id: -1 })
        .select({ date: 1 })
        .lean<{ date: string }>()
      return last?.date
    },

    /** A lot's days from `from` to `to` (YYYY-MM-DD, both included). */
    async dailyOf(lotId: string, from: string, to: string): Promise<DailyRollupRecord[]> {
      return await daily
        .find({ _id: trusted({ $gte: `${lotId}:${from}`, $lte: `${lotId}:${to}` }) })
        .sort({ _id: 1 })
        .lean<DailyRollupRecord[]>()
    },

    // Facts of other capabilities, read only, to rebuild a day's counters and for bounded counts.

    async sessionsEntered(lotId: string, from: Date, to: Date) {
      return await sessions
        .find(trusted({ lot_id: lotId, entry_at: { $gte: from, $lt: to } }), {
          projection: { _id: 1, entry_at: 1 },
        })
        .toArray()
    },

    async sessionsExited(lotId: string, from: Date, to: Date) {
      return await sessions
        .find(trusted({ lot_id: lotId, exit_at: { $gte: from, $lt: to } }), {
          projection: { _id: 1, entry_at: 1, exit_at: 1 },
        })
        .toArray()
    },

    async activeSessions(lotId: string): Promise<number> {
      return await sessions.countDocuments({ status: 'active', lot_id: lotId })
    },

    async paymentsSettled(lotId: string, from: Date, to: Date) {
      return await payments
        .find(trusted({ lot_id: lotId, settled_at: { $gte: from, $lt: to } }), {
          projection: { _id: 1, method: 1, amount: 1, currency: 1, settled_at: 1 },
        })
        .toArray()
    },

    /** Refunds made in [from, to) of payments of the lot. */
    async refundsMade(lotId: string, from: Date, to: Date) {
      const made = await refunds
        .find(trusted({ created_at: { $gte: from, $lt: to } }), {
          projection: { _id: 1, payment_id: 1, amount: 1, currency: 1, created_at: 1 },
        })
        .toArray()
      const found: {
        _id: unknown
        method: string
        currency: unknown
        amount: unknown
        created_at: unknown
      }[] = []
      for (const refund of made) {
        const payment = await payments.findOne(
          { _id: refund.payment_id },
          { projection: { lot_id: 1, method: 1, duplicate: 1 } },
        )
        // A duplicate payment's refund gives back money never counted (it has no settled_at).
        if (payment?.lot_id === lotId && payment.duplicate !== true)
          found.push({
            _id: refund._id,
            method: String(payment.method),
            currency: refund.currency,
            amount: refund.amount,
            created_at: refund.created_at,
          })
      }
      return found
    },

    /** Reservation prepayments that arrived in [from, to), of reservations of the lot. */
    async reservationPaymentsMade(lotId: string, from: Date, to: Date) {
      const paid = await reservationPayments
        .find(trusted({ at: { $gte: from, $lt: to } }), {
          projection: { _id: 1, amount: 1, currency: 1, at: 1 },
        })
        .toArray()
      const lots = await lotsById(
        reservations,
        paid.map((p) => p._id),
      )
      return paid
        .filter((p) => lots.get(String(p._id)) === lotId)
        .map((p) => ({
          id: String(p._id),
          amount: Number(p.amount),
          currency: String(p.currency),
          at: p.at as Date,
        }))
    },

    /** Reservation refunds Stripe took (a provider refund id) claimed in [from, to), of the lot. */
    async reservationRefundsMade(lotId: string, from: Date, to: Date) {
      const made = await reservationRefunds
        .find(trusted({ at: { $gte: from, $lt: to }, provider_refund_id: { $ne: null } }), {
          projection: { _id: 1, amount: 1, at: 1 },
        })
        .toArray()
      const found: { id: string; amount: number; currency: string; at: Date }[] = []
      for (const refund of made) {
        const r = await reservations.findOne(
          { _id: refund._id as never },
          { projection: { lot_id: 1, currency: 1 } },
        )
        if (r?.lot_id === lotId)
          found.push({
            id: String(refund._id),
            amount: Number(refund.amount),
            currency: String(r.currency),
            at: refund.at as Date,
          })
      }
      return found
    },

    /**
     * Membership periods of the lot paid in [from, to) for a price: cash and card-terminal periods
     * are paid at insert (`paid_at`), Stripe ones by their `paid` state fact.
     */
    async membershipPaymentsMade(lotId: string, from: Date, to: Date) {
      const atInsert = await periods
        .find(trusted({ paid_at: { $gte: from, $lt: to } }), {
          projection: { _id: 1, membership_id: 1, terms: 1, paid_at: 1 },
        })
        .toArray()
      const states = await periodStates
        .find(trusted({ state: 'paid', created_at: { $gte: from, $lt: to } }), {
          projection: { _id: 1, period_id: 1, created_at: 1 },
        })
        .toArray()
      const paid = atInsert.map((p) => ({ period: p, at: p.paid_at as Date }))
      for (const state of states) {
        const period = await periods.findOne(
          { _id: state.period_id },
          { projection: { _id: 1, membership_id: 1, terms: 1, paid_at: 1 } },
        )
        if (period && !period.paid_at) paid.push({ period, at: state.created_at as Date })
      }
      const lots = await lotsById(
        memberships,
        paid.map((p) => p.period.membership_id),
      )
      return paid
        .filter(
          (p) => lots.get(String(p.period.membership_id)) === lotId && Number(p.period.terms?.price) > 0,
        )
        .map((p) => ({
          id: String(p.period._id),
          amount: Number(p.period.terms.price),
          currency: String(p.period.terms.currency),
          at: p.at,
        }))
    },

    /** Whether a payment was taken twice for a settled session (refunded in full, never settled). */
    async isDuplicatePayment(paymentId: string): Promise<boolean> {
      const payment = await payments.findOne({ _id: paymentId as never }, { projection: { duplicate: 1 } })
      return payment?.duplicate === true
    },

    /** Charges running now in a lot: its stations' claims (a claim lives from start to stop). */
    async chargingNow(lotId: string): Promise<number> {
      const stations = await evStations.find({ lot_id: lotId }, { projection: { _id: 1 } }).toArray()
      if (stations.length === 0) return 0
      const claims = await Promise.all(
        stations.map((s) => evClaims.findOne({ _id: s._id }, { projection: { _id: 1 } })),
      )
      return claims.filter(Boolean).length
    },

    /** Reservations of a lot still to check in (awaiting payment or confirmed) that end after `now`. */
    async pendingReservations(lotId: string, now: Date): Promise<number> {
      return await reservations.countDocuments(
        trusted({ lot_id: lotId, status: { $in: ['pending_payment', 'confirmed'] }, end_at: { $gt: now } }),
      )
    },
  }
}

export type AnalyticsRepository = ReturnType<typeof createAnalyticsRepository>
