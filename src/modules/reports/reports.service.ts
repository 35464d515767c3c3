import { AppError } from '../../shared/errors.ts'
import type { AnalyticsService } from '../analytics/analytics.service.ts'
import { localDate } from '../analytics/local-day.ts'
import type { FacilitiesService } from '../facilities/facilities.service.ts'
import type { OccupancyService } from '../occupancy/occupancy.service.ts'
import type { Dashboard } from './reports.schemas.ts'

type Lot = { id: string; time_zone: string; currency: string }

/** The admin dashboard: reads of counters and the hot state only, no scan of history. */
export function createReportsService(deps: {
  analytics: Pick<AnalyticsService, 'counters' | 'liveCounts'>
  occupancy: Pick<OccupancyService, 'availability'>
  facilities: Pick<FacilitiesService, 'getLot' | 'listLots'>
  now?: () => Date
}) {
  const { analytics, occupancy, facilities } = deps
  const clock = deps.now ?? (() => new Date())

  async function lotsOf(lotId: string | undefined): Promise<Lot[]> {
    if (lotId) return [await facilities.getLot(lotId)]
    const lots: Lot[] = []
    let cursor: string | undefined
    for (;;) {
      const page = await facilities.listLots(cursor === undefined ? { limit: 100 } : { limit: 100, cursor })
      lots.push(...page.data)
      if (!page.next_cursor) return lots
      cursor = page.next_cursor
    }
  }

  async function countsOf(lotId: string) {
    try {
      return await occupancy.availability('lot', lotId)
    } catch (error) {
      // A lot deleted between the list and this read counts for nothing.
      if (error instanceof AppError && error.code === 'NOT_FOUND') return undefined
      throw error
    }
  }

  return {
    async dashboard(query: { lot_id?: string | undefined }, at?: Date): Promise<Dashboard> {
      const now = at ?? clock()
      const lots = await lotsOf(query.lot_id)
      const figures = await Promise.all(
        lots.map(async (lot) => {
          const date = localDate(now, lot.time_zone)
          const [counts, day, live] = await Promise.all([
            countsOf(lot.id),
            analytics.counters.read(lot.id, date, lot.time_zone),
            analytics.liveCounts(lot.id, now),
          ])
          return { lot, date, counts, day, live }
        }),
      )
      const sum = (pick: (f: (typeof figures)[number]) => number) => figures.reduce((n, f) => n + pick(f), 0)
      const revenue = new Map<string, number>()
      for (const f of figures) {
        revenue.set(f.lot.currency, revenue.get(f.lot.currency) ?? 0)
        for (const line of f.day.money.values())
          revenue.set(line.currency, (revenue.get(line.currency) ?? 0) + line.amount - line.refunded)
      }
      const total = sum((f) => f.counts?.total ?? 0)
      const occupied = sum((f) => f.counts?.occupied ?? 0)
      const dates = new Set(figures.map((f) => f.date))
      const zones = new Set(figures.map((f) => f.lot.time_zone))
      return {
        total_spaces: total,
        occupied_spaces: occupied,
        available_spaces: sum((f) => f.counts?.available ?? 0),
        reserved_spaces: sum((f) => f.counts?.reserved ?? 0),
        occupancy_rate: total > 0 ? Math.round((occupied / total) * 1000) / 10 : 0,
        active_sessions: sum((f) => f.live.active_sessions),
        today_entries: sum((f) => f.day.entries),
        today_exits: sum((f) => f.day.exits),
        today_revenue: [...revenue]
          .sort(([a], [b]) => a.localeCompare(b))
          .map(([currency, amount]) => ({ amount, currency })),
        active_ev_charging: sum((f) => f.live.active_ev_charging),
        pending_reservations: sum((f) => f.live.pending_reservations),
        date: dates.size === 1 ? ([...dates][0] ?? null) : null,
        time_zone: zones.size === 1 ? ([...zones][0] ?? null) : null,
        lots: figures.length,
        as_of: now.toISOString(),
      }
    },
  }
}

export type ReportsService = ReturnType<typeof createReportsService>
