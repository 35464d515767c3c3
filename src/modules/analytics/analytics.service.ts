import { AppError } from '../../shared/errors.ts'
import type { Logger } from '../../shared/logger.ts'
import type { RedisClient } from '../../shared/redis.ts'
import type { FacilitiesService } from '../facilities/facilities.service.ts'
import type { OccupancyService } from '../occupancy/occupancy.service.ts'
import type { SessionListener } from '../sessions/operations.contract.ts'
import type { OccupancyPoint, OccupancySeriesPort, Scope } from './analytics.contract.ts'
import type { DailyRollupRecord, OccupancyRollupRecord } from './analytics.model.ts'
import type { AnalyticsRepository } from './analytics.repository.ts'
import { createDayCounters, type DayCounters, moneyEventOf } from './day-counters.ts'
import { datesBetween, dayBounds, localDate } from './local-day.ts'
import { BUCKET_MS, floorToBucket, type RollupChange, rollUp, rollupId, type ZoneCounts } from './rollup.ts'

/**
 * What payments, reservations and memberships tell: money in (a payment settled, a reservation
 * prepaid, a membership period paid) or money back (a refund made), once or more.
 */
export type MoneyEvent = {
  kind: 'settled' | 'refunded'
  /** The payment's id or the refund's; the reservation's id (its prepayment and its one refund); the period's id. */
  id: string
  /** Payments when absent; reservations and memberships are counted under their own method. */
  source?: 'payment' | 'reservation' | 'membership' | undefined
  /** For a payment's refund: the payment's id. */
  payment_id?: string | undefined
  lot_id: string
  method: string
  currency: string
  amount: number
  at: Date
}

const DAY_MS = 24 * 3600_000
const PAGE = 5000
const MAX_TREND_DAYS = 366
/** How long the dashboard's live counts of a lot (sessions, charges, reservations) are cached. */
export const LIVE_CACHE_SECONDS = 30

export type LiveCounts = {
  active_sessions: number
  active_ev_charging: number
  pending_reservations: number
}

/** The daily rollups a run writes at most: today and the 6 days before, when the job stopped that long. */
const BACKFILL_DAYS = 7

export type AnalyticsSettings = {
  /** Buckets end this long before now: the persister and the debounce have written their rows. */
  settleMs: number
  /** Changes written this late (an `at` this far behind the newest bucket) are still counted. */
  lookbackMs: number
}

type Facilities = Pick<
  FacilitiesService,
  'listLots' | 'listLevels' | 'listZones' | 'getLot' | 'getZone' | 'exists'
>

/** Every page of a paged facilities list. */
async function allOf<T>(
  list: (page: { limit: number; cursor?: string }) => Promise<{ data: T[]; next_cursor: string | null }>,
) {
  const all: T[] = []
  let cursor: string | undefined
  for (;;) {
    const page = await list(cursor === undefined ? { limit: 100 } : { limit: 100, cursor })
    all.push(...page.data)
    if (!page.next_cursor) return all
    cursor = page.next_cursor
  }
}

/** `to` after `from`, and not more than `max` apart. */
export function rangeRule(spanMs: number, maxMs: number): void {
  const reason = spanMs <= 0 ? 'not_after_from' : spanMs > maxMs ? 'range_too_long' : undefined
  if (!reason) return
  throw new AppError(
    'VALIDATION_FAILED',
    reason === 'not_after_from'
      ? '`to` must be after `from`'
      : `At most ${Math.round(maxMs / DAY_MS)} days at once`,
    { errors: [{ in: 'query', field: 'to', pointer: '/to', reason }] },
  )
}

const share = (part: number, whole: number) => (whole > 0 ? part / whole : 0)
const percent = (part: number, whole: number) => Math.round(share(part, whole) * 1000) / 10
const round4 = (x: number) => Math.round(x * 10_000) / 10_000

export function createAnalyticsService(deps: {
  repo: AnalyticsRepository
  redis: RedisClient
  occupancy: Pick<OccupancyService, 'availability'>
  facilities: Facilities
  logger: Logger
  settings: AnalyticsSettings
  now?: () => Date
}) {
  const { repo, occupancy, facilities, settings } = deps
  const clock = deps.now ?? (() => new Date())
  // A lot's time zone, asked once a minute at most: every hook needs it to find its local day.
  const zones = new Map<string, { timeZone: string; until: number }>()
  const timeZoneOf = async (lotId: string): Promise<string> => {
    const cached = zones.get(lotId)
    if (cached && cached.until > Date.now()) return cached.timeZone
    const timeZone = (await facilities.getLot(lotId)).time_zone
    zones.set(lotId, { timeZone, until: Date.now() + 60_000 })
    return timeZone
  }
  const counters: DayCounters = createDayCounters({ redis: deps.redis, repo, timeZoneOf })

  async function readChanges(lotId: string, from: Date, to: Date): Promise<RollupChange[]> {
    const changes: RollupChange[] = []
    let after: { at: Date; id: string } | undefined
    for (;;) {
      const rows = await repo.historyPage(lotId, { from, to }, after, PAGE)
      changes.push(...rows)
      const last = rows.at(-1)
      if (rows.length < PAGE || !last) return changes
      after = { at: last.at, id: last._id }
    }
  }

  /** Rolls one lot's new history into buckets up to `now` less the settle time. */
  async function rollLot(lotId: string, now: Date): Promise<{ buckets: number }> {
    const end = floorToBucket(now.getTime() - settings.settleMs)
    const checkpoint = await repo.checkpoint(lotId)
    let from: number
    let counts = new Map<string, ZoneCounts>()
    if (checkpoint) {
      from = checkpoint.at.getTime()
      for (const z of checkpoint.zones)
        counts.set(z.zone_id, { total: z.total, occupied: z.occupied, reserved: z.reserved })
    } else {
      const first = await repo.firstHistoryAt(lotId)
      if (!first) return { buckets: 0 }
      from = floorToBucket(first.getTime())
    }
    // Everything from the checkpoint is recomputed each run, and the checkpoint stays `lookbackMs`
    // behind: rows the persister writes late still land in their buckets.
    const keepFrom = Math.max(from, floorToBucket(end - settings.lookbackMs))
    let written = 0
    while (from < end) {
      const to = Math.min(end, from + DAY_MS)
      const snapshot = keepFrom > from && keepFrom <= to ? keepFrom : undefined
      const changes = await readChanges(lotId, new Date(from), new Date(to))
      const result = rollUp({
        lotId,
        from: new Date(from),
        to: new Date(to),
        start: counts,
        changes,
        ...(snapshot === undefined ? {} : { snapshotAt: new Date(snapshot) }),
      })
      const updatedAt = clock()
      const records: OccupancyRollupRecord[] = result.buckets
        .filter((b) => b.space_ms > 0)
        .map((b) => ({
          _id: rollupId(b.scope_kind, b.scope_id, b.at),
          lot_id: lotId,
          updated_at: updatedAt,
          ...b,
        }))
      await repo.saveBuckets(records)
      written += records.length
      const keep =
        snapshot !== undefined
          ? { at: snapshot, zones: result.atSnapshot }
          : to <= keepFrom
            ? { at: to, zones: result.atEnd }
            : undefined
      if (keep) {
        await repo.saveCheckpoint({
          _id: `occupancy:${lotId}`,
          lot_id: lotId,
          at: new Date(keep.at),
          zones: [...keep.zones].map(([zone_id, c]) => ({ zone_id, ...c })),
          updated_at: updatedAt,
        })
      }
      counts = result.atEnd
      from = to
    }
    return { buckets: written }
  }

  /**
   * Copies a lot's day counters, recounted from the facts, into its daily rollups: the days from
   * the newest one written (at most 7 days back, and yesterday at least) to today, local.
   */
  async function snapshotDays(lotId: string, timeZone: string, now: Date): Promise<number> {
    const today = localDate(now, timeZone)
    const before = (date: string) =>
      localDate(new Date(dayBounds(date, timeZone).start.getTime() - 1), timeZone)
    const yesterday = before(today)
    // From the newest day written (the job may have stopped for days), at most BACKFILL_DAYS back,
    // and always yesterday: its late facts count once it is over.
    let oldest = today
    for (let i = 1; i < BACKFILL_DAYS; i++) oldest = before(oldest)
    const last = await repo.lastDailyDate(lotId)
    const from = [yesterday, last && last > oldest ? last : oldest].sort()[0] ?? yesterday
    const dates = last === undefined ? [yesterday, today] : datesBetween(from, today)
    let spaces = 0
    try {
      spaces = (await occupancy.availability('lot', lotId)).total
    } catch (error) {
      if (!(error instanceof AppError && error.code === 'NOT_FOUND')) throw error
    }
    for (const date of dates) {
      // From the facts, not only from what the hooks told: a hook that failed once the day was
      // built would otherwise be lost for good.
      await counters.recount(lotId, date, timeZone)
      const day = await counters.read(lotId, date, timeZone)
      const record: DailyRollupRecord = {
        _id: `${lotId}:${date}`,
        lot_id: lotId,
        date,
        time_zone: timeZone,
        entries: day.entries,
        exits: day.exits,
        revenue: [...day.money.values()].sort((a, b) =>
          (a.currency + a.method).localeCompare(b.currency + b.method),
        ),
        stays: day.stays,
        stay_minutes: day.stay_minutes,
        spaces,
        updated_at: now,
      }
      await repo.saveDaily(record)
    }
    return dates.length
  }

  async function lotsOf(lotId: string | undefined) {
    if (lotId) return [await facilities.getLot(lotId)]
    return await allOf((page) => facilities.listLots(page))
  }

  async function scopeExists(scope: Scope) {
    if (!(await facilities.exists(scope.kind, scope.id)))
      throw new AppError('NOT_FOUND', `No ${scope.kind} ${scope.id}`)
  }

  const series: OccupancySeriesPort = {
    async series(scope, from, to) {
      const rows = await repo.buckets(scope.kind, scope.id, from, to)
      return rows.map(
        (r): OccupancyPoint => ({
          at: r.at,
          occupancy: share(r.occupied_ms, r.space_ms),
          total: Math.round(r.space_ms / BUCKET_MS),
        }),
      )
    },
    async current(scope) {
      const view = await occupancy.availability(scope.kind, scope.id)
      return { at: clock(), occupancy: share(view.occupied, view.total), total: view.total }
    },
  }

  /** A range of local dates: `to` defaults to today (UTC), `from` to 30 days before; at most 366 days. */
  function dayRange(input: {
    from?: string | undefined
    to?: string | undefined
    lot_id?: string | undefined
  }) {
    const to = input.to ?? clock().toISOString().slice(0, 10)
    const from = input.from ?? new Date(Date.parse(to) - 30 * DAY_MS).toISOString().slice(0, 10)
    const span = Date.parse(to) - Date.parse(from) + DAY_MS
    if (Number.isNaN(span)) {
      throw new AppError('VALIDATION_FAILED', 'Not a calendar date', {
        errors: [{ in: 'query', field: 'from', pointer: '/from', reason: 'not_a_date' }],
      })
    }
    rangeRule(span, MAX_TREND_DAYS * DAY_MS)
    return { from, to, lot_id: input.lot_id }
  }

  /** Hooks must not fail the operation they hear of: a lost count is rebuilt from the facts. */
  const quietly = async (what: string, count: () => Promise<void>) => {
    try {
      await count()
    } catch (error) {
      deps.logger.warn({ err: error, what }, 'a day counter was not updated')
    }
  }

  const sessionListener: SessionListener = {
    async sessionStarted(session) {
      await quietly('entry', () =>
        counters.count(session.lot_id, { kind: 'entry', sessionId: session.id, at: session.entry_at }),
      )
    },
    async sessionClosed(session) {
      const at = session.exit_at ?? clock()
      await quietly('exit', () =>
        counters.count(session.lot_id, {
          kind: 'exit',
          sessionId: session.id,
          entryAt: session.entry_at,
          at,
        }),
      )
    },
  }

  return {
    /** The OccupancySeriesPort over the rollups (trends, predictions, backtest). */
    series,
    /** The day counters (entries, exits, stays, money) the dashboard reads. */
    counters,
    timeZoneOf,
    /** Counts of a lot that are not per day: sessions and charges running, reservations to come. */
    async liveCounts(lotId: string, now: Date): Promise<LiveCounts> {
      // Counting queries (FerretDB scans), so asked once per lot per LIVE_CACHE_SECONDS at most.
      const key = `ana:live:${lotId}`
      const cached = await deps.redis.get(key)
      if (cached) return JSON.parse(cached) as LiveCounts
      const [sessions, charging, reservations] = await Promise.all([
        repo.activeSessions(lotId),
        repo.chargingNow(lotId),
        repo.pendingReservations(lotId, now),
      ])
      const counts = {
        active_sessions: sessions,
        active_ev_charging: charging,
        pending_reservations: reservations,
      }
      await deps.redis.set(key, JSON.stringify(counts), 'EX', LIVE_CACHE_SECONDS)
      return counts
    },
    /** Counts entries and exits in the lot's local day. */
    sessionListener,
    /**
     * Counts money in or back in its lot's local day: payments.onSettled, and the reservations'
     * and memberships' money hooks.
     */
    async moneyMoved(event: MoneyEvent) {
      await quietly(event.kind, async () => {
        // A duplicate payment is never counted (no settled_at), so neither is its refund: as in the rebuild.
        if (
          event.kind === 'refunded' &&
          event.payment_id &&
          (await repo.isDuplicatePayment(event.payment_id))
        )
          return
        await counters.count(event.lot_id, moneyEventOf(event))
      })
    },

    /**
     * The `analytics.rollup` job: every lot's new space history into 15-minute buckets, and its
     * day counters into daily rollups. Recomputed from facts and written whole: twice = once.
     */
    async runRollup(now = clock()): Promise<{ lots: number; buckets: number; days: number }> {
      const lots = await allOf((page) => facilities.listLots(page))
      let buckets = 0
      let days = 0
      for (const lot of lots) {
        try {
          buckets += (await rollLot(lot.id, now)).buckets
          days += await snapshotDays(lot.id, lot.time_zone, now)
        } catch (error) {
          deps.logger.warn(
            { err: error, lotId: lot.id },
            'analytics rollup of a lot failed; the next run retries',
          )
        }
      }
      return { lots: lots.length, buckets, days }
    },

    /** Current occupancy per lot, level and zone, from the hot state. */
    async occupancyNow(query: { lot_id?: string | undefined }) {
      const lots = await lotsOf(query.lot_id)
      const data = []
      for (const lot of lots) {
        const [levels, zones] = await Promise.all([
          allOf((page) => facilities.listLevels({ ...page, lot_id: lot.id })),
          allOf((page) => facilities.listZones({ ...page, lot_id: lot.id })),
        ])
        const stat = async (kind: 'lot' | 'level' | 'zone', id: string) => {
          const v = await occupancy.availability(kind, id)
          return {
            total: v.total,
            occupied: v.occupied,
            available: v.available,
            reserved: v.reserved,
            unknown: v.unknown,
            out_of_service: v.maintenance + v.closed,
            occupancy_rate: percent(v.occupied, v.total),
          }
        }
        data.push({
          lot_id: lot.id,
          name: lot.name,
          ...(await stat('lot', lot.id)),
          levels: await Promise.all(
            levels.map(async (l) => ({
              level_id: l.id,
              name: l.name,
              floor: l.floor,
              ...(await stat('level', l.id)),
            })),
          ),
          zones: await Promise.all(
            zones.map(async (z) => ({
              zone_id: z.id,
              level_id: z.level_id,
              name: z.name,
              ...(await stat('zone', z.id)),
            })),
          ),
        })
      }
      return { as_of: clock().toISOString(), data }
    },

    /** Occupancy by hour (UTC hours) or by local day of the lot, from the 15-minute rollups. */
    async trends(query: { scope: Scope; from: Date; to: Date; granularity: 'hour' | 'day' }) {
      rangeRule(query.to.getTime() - query.from.getTime(), MAX_TREND_DAYS * DAY_MS)
      await scopeExists(query.scope)
      if (query.to <= query.from)
        throw new AppError('VALIDATION_FAILED', '`to` must be after `from`', {
          errors: [{ field: 'to', reason: 'not_after_from' }],
        } as never)
      if (query.to.getTime() - query.from.getTime() > MAX_TREND_DAYS * DAY_MS)
        throw new AppError('VALIDATION_FAILED', `At most ${MAX_TREND_DAYS} days at once`)
      const lotId =
        query.scope.kind === 'lot' ? query.scope.id : (await facilities.getZone(query.scope.id)).lot_id
      const timeZone = (await facilities.getLot(lotId)).time_zone
      const rows = await repo.buckets(query.scope.kind, query.scope.id, query.from, query.to)
      const groups = new Map<
        string,
        { at: Date; space_ms: number; occupied_ms: number; reserved_ms: number; peak: number }
      >()
      for (const r of rows) {
        const key =
          query.granularity === 'hour'
            ? new Date(Math.floor(r.at.getTime() / 3_600_000) * 3_600_000).toISOString()
            : localDate(r.at, timeZone)
        const start = query.granularity === 'hour' ? new Date(key) : dayBounds(key, timeZone).start
        const g = groups.get(key) ?? { at: start, space_ms: 0, occupied_ms: 0, reserved_ms: 0, peak: 0 }
        g.space_ms += r.space_ms
        g.occupied_ms += r.occupied_ms
        g.reserved_ms += r.reserved_ms
        g.peak = Math.max(g.peak, share(r.occupied_ms, r.space_ms))
        groups.set(key, g)
      }
      return {
        scope_kind: query.scope.kind,
        scope_id: query.scope.id,
        granularity: query.granularity,
        time_zone: timeZone,
        from: query.from.toISOString(),
        to: query.to.toISOString(),
        data: [...groups.entries()].map(([key, g]) => ({
          period: key,
          start: g.at.toISOString(),
          occupancy: round4(share(g.occupied_ms, g.space_ms)),
          reserved: round4(share(g.reserved_ms, g.space_ms)),
          peak_occupancy: round4(g.peak),
          space_hours: Math.round(g.space_ms / 36_000) / 100,
          occupied_hours: Math.round(g.occupied_ms / 36_000) / 100,
        })),
      }
    },

    /** The trends route: exactly one of lot_id and zone_id, `to` defaults to now, `from` to a week before. */
    async trendsQuery(query: {
      lot_id?: string | undefined
      zone_id?: string | undefined
      from?: string | undefined
      to?: string | undefined
      granularity: 'hour' | 'day'
    }) {
      if ((query.lot_id === undefined) === (query.zone_id === undefined)) {
        throw new AppError('VALIDATION_FAILED', 'Give exactly one of lot_id and zone_id', {
          errors: [{ in: 'query', field: 'lot_id', pointer: '/lot_id', reason: 'one_of_lot_id_zone_id' }],
        })
      }
      const to = query.to ? new Date(query.to) : clock()
      const from = query.from ? new Date(query.from) : new Date(to.getTime() - 7 * DAY_MS)
      const scope: Scope = query.lot_id
        ? { kind: 'lot', id: query.lot_id }
        : { kind: 'zone', id: query.zone_id ?? '' }
      return await this.trends({ scope, from, to, granularity: query.granularity })
    },

    /** Revenue by local day, payment method and lot, from the daily rollups. */
    async revenue(input: {
      from?: string | undefined
      to?: string | undefined
      lot_id?: string | undefined
    }) {
      const query = dayRange(input)
      const lots = await lotsOf(query.lot_id)
      const data = []
      const totals = new Map<
        string,
        { currency: string; amount: number; refunded: number; net: number; payments: number }
      >()
      for (const lot of lots) {
        for (const day of await repo.dailyOf(lot.id, query.from, query.to)) {
          for (const line of day.revenue) {
            data.push({
              date: day.date,
              lot_id: lot.id,
              method: line.method,
              currency: line.currency,
              amount: line.amount,
              refunded: line.refunded,
              net: line.amount - line.refunded,
              payments: line.payments,
            })
            const t = totals.get(line.currency) ?? {
              currency: line.currency,
              amount: 0,
              refunded: 0,
              net: 0,
              payments: 0,
            }
            t.amount += line.amount
            t.refunded += line.refunded
            t.net += line.amount - line.refunded
            t.payments += line.payments
            totals.set(line.currency, t)
          }
        }
      }
      data.sort(
        (a, b) =>
          a.date.localeCompare(b.date) ||
          a.lot_id.localeCompare(b.lot_id) ||
          a.method.localeCompare(b.method),
      )
      return { from: query.from, to: query.to, data, totals: [...totals.values()] }
    },

    /** Average stay and turnover (sessions closed per space per day), from the daily rollups. */
    async stays(input: { from?: string | undefined; to?: string | undefined; lot_id?: string | undefined }) {
      const query = dayRange(input)
      const lots = await lotsOf(query.lot_id)
      const data = []
      for (const lot of lots) {
        const days = await repo.dailyOf(lot.id, query.from, query.to)
        for (const day of days) {
          data.push({
            date: day.date,
            lot_id: lot.id,
            entries: day.entries,
            exits: day.exits,
            average_stay_minutes: day.stays > 0 ? Math.round((day.stay_minutes / day.stays) * 10) / 10 : null,
            spaces: day.spaces,
            turnover: day.spaces > 0 ? Math.round((day.exits / day.spaces) * 100) / 100 : null,
          })
        }
      }
      data.sort((a, b) => a.date.localeCompare(b.date) || a.lot_id.localeCompare(b.lot_id))
      const stays = data.reduce((n, d) => n + d.exits, 0)
      return { from: query.from, to: query.to, data, dates: datesBetween(query.from, query.to).length, stays }
    },
  }
}

export type AnalyticsService = ReturnType<typeof createAnalyticsService>
