import { AppError } from '../../shared/errors.ts'
import type { FacilitiesService } from '../facilities/facilities.service.ts'
import { BUCKET_MINUTES, type OccupancySeriesPort, type Scope } from './analytics.contract.ts'
import { clamp01, FORECAST_MODEL, fitModel, type Model, predictWith } from './forecast.ts'
import type { PredictionDto, PredictionQuery } from './predictions.schemas.ts'

// Forecasts read the rollups through OccupancySeriesPort, bound late: the composition root hands a
// getter, so that predictions can be made before (or without) the capability that keeps the
// rollups; until it is there the route answers 503.

export type PredictionSettings = {
  /** Days of rollups the profile learns from (its weekday cells keep at most 5 weeks). */
  historyDays: number
}

const BUCKET_MS = BUCKET_MINUTES * 60_000
const DAY_MS = 86_400_000
/** Fitted models kept, by scope, until the next bucket starts. */
const CACHE_LIMIT = 1_000

const round4 = (x: number) => Math.round(x * 10_000) / 10_000

export function createPredictionsService(deps: {
  series: () => OccupancySeriesPort | undefined
  facilities: Pick<FacilitiesService, 'getLot' | 'getZone'>
  settings: PredictionSettings
  now?: () => Date
}) {
  const clock = deps.now ?? (() => new Date())
  const models = new Map<string, { bucket: number; model: Model; from: Date }>()

  async function scopeOf(query: PredictionQuery): Promise<{ scope: Scope; lotId: string; timeZone: string }> {
    if (query.zone_id) {
      const zone = await deps.facilities.getZone(query.zone_id)
      if (query.lot_id && query.lot_id !== zone.lot_id)
        throw new AppError('NOT_FOUND', `No zone ${query.zone_id} in the lot ${query.lot_id}`)
      const lot = await deps.facilities.getLot(zone.lot_id)
      return { scope: { kind: 'zone', id: zone.id }, lotId: lot.id, timeZone: lot.time_zone }
    }
    if (query.lot_id) {
      const lot = await deps.facilities.getLot(query.lot_id)
      return { scope: { kind: 'lot', id: lot.id }, lotId: lot.id, timeZone: lot.time_zone }
    }
    throw new AppError('VALIDATION_FAILED', 'Say what to forecast: lot_id or zone_id', {
      errors: [{ in: 'query', field: 'lot_id', pointer: '/lot_id', reason: 'lot_id or zone_id is required' }],
    })
  }

  /** The model of a scope, fitted once per bucket: the rollups change only as buckets close. */
  async function modelOf(port: OccupancySeriesPort, scope: Scope, timeZone: string, now: Date) {
    const key = `${scope.kind}:${scope.id}:${timeZone}`
    const bucket = Math.floor(now.getTime() / BUCKET_MS)
    const cached = models.get(key)
    if (cached && cached.bucket === bucket) return cached
    const from = new Date((bucket - (deps.settings.historyDays * DAY_MS) / BUCKET_MS) * BUCKET_MS)
    const history = await port.series(scope, from, now)
    const entry = { bucket, model: fitModel(history, timeZone), from }
    models.delete(key)
    if (models.size >= CACHE_LIMIT) models.delete(models.keys().next().value as string)
    models.set(key, entry)
    return entry
  }

  return {
    async predict(query: PredictionQuery): Promise<PredictionDto> {
      const { scope, lotId, timeZone } = await scopeOf(query)
      const port = deps.series()
      if (!port) {
        throw new AppError(
          'DEPENDENCY_UNAVAILABLE',
          'Occupancy rollups are not available yet: predictions need the analytics rollups',
          { headers: { 'Retry-After': '60' } },
        )
      }
      const now = clock()
      const [{ model, from }, current] = await Promise.all([
        modelOf(port, scope, timeZone, now),
        port.current(scope),
      ])
      const total = current.total
      const occupied = (share: number) => Math.round(clamp01(share) * total)
      const prediction = predictWith(model, {
        timeZone,
        current: { at: now, occupancy: current.occupancy },
        horizonMinutes: query.horizon_minutes,
      })
      return {
        scope: { kind: scope.kind, id: scope.id },
        lot_id: lotId,
        time_zone: timeZone,
        model: FORECAST_MODEL,
        generated_at: now.toISOString(),
        history_from: from.toISOString(),
        history_days: prediction.history_days,
        decay_per_step: prediction.decay,
        total_spaces: total,
        current: {
          at: now.toISOString(),
          occupancy: round4(clamp01(current.occupancy)),
          occupied: occupied(current.occupancy),
        },
        step_minutes: BUCKET_MINUTES,
        horizon_minutes: query.horizon_minutes,
        points: prediction.points.map((p) => ({
          at: p.at.toISOString(),
          minutes_ahead: p.minutes_ahead,
          occupancy: round4(p.occupancy),
          expected_occupied: occupied(p.occupancy),
          expected_free: total - occupied(p.occupancy),
          basis: p.basis,
        })),
        next_day: {
          date: prediction.next_day.date,
          points: prediction.next_day.points.map((p) => ({
            at: p.at.toISOString(),
            hour: p.hour,
            occupancy: round4(p.occupancy),
            expected_occupied: occupied(p.occupancy),
            basis: p.basis,
          })),
        },
      }
    },
  }
}

export type PredictionsService = ReturnType<typeof createPredictionsService>
