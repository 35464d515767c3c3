// Occupancy forecasts, pure (no I/O): a weekday x time-of-day profile learnt from the 15-minute
// rollups, blended with the current trend.
//
//   forecast(t) = clamp01( profile(t) + gap * decay ^ ((t - now) / 15 min) )
//   gap         = occupancy now - profile(now)
//
// - The profile of a bucket is the median of the same bucket (weekday and local time of day) over
//   the last weeks; a bucket never seen on that weekday falls back to the same time of day over all
//   days; a time of day never seen at all falls back to the last value (pure persistence).
// - Instants between bucket midpoints are interpolated linearly, so that "now" (any minute) and
//   the hours ahead are read off one smooth curve. A bucket's rollup is a time-weighted mean, which
//   is the best single estimate of the occupancy at its midpoint.
// - Weekday and time of day are the facility's local ones (its IANA zone), so that a rush hour stays
//   at 08:00 across a daylight-saving change.
// - `decay` (per 15-minute step, 0..1) says how long today's departure from the usual lasts: a busy
//   morning tends to stay busy for a while, then the usual rhythm takes over. It is fitted on the
//   history itself (fitModel): the value that best predicts the residuals 15 to 60 minutes ahead,
//   with each residual measured against the profile known before it (out of sample).

import { BUCKET_MINUTES, type OccupancyPoint } from './analytics.contract.ts'

export const FORECAST_MODEL = 'weekday_profile_trend_v1'

/** What a forecast point stands on, from the strongest to the weakest. */
export type Basis = 'weekday_time_of_day' | 'time_of_day' | 'last_value'

const BUCKET_MS = BUCKET_MINUTES * 60_000
const SLOTS_PER_DAY = (24 * 60) / BUCKET_MINUTES
const DAY_MS = 86_400_000
/** The decay used until the history has enough consecutive residuals to fit one. */
export const DEFAULT_DECAY = 0.85
/** A weekday cell keeps this many weeks; a time-of-day cell this many days. */
const WEEKS_KEPT = 5
const DAYS_KEPT = 35
/** Residual pairs needed (per horizon) before the decay is fitted rather than defaulted. */
const MIN_FIT_PAIRS = 96

export const clamp01 = (value: number) => (Number.isFinite(value) ? Math.min(1, Math.max(0, value)) : 0)

// ---- local time ------------------------------------------------------------------------------

export type LocalTime = {
  /** 0 Monday .. 6 Sunday. */
  weekday: number
  /** Minutes since local midnight, fractional. */
  minute: number
  /** The local calendar date as a day number (days since 1970-01-01): see dateOfDay. */
  day: number
}

/**
 * Local weekday, time and date of instants in an IANA zone. The zone's UTC offset is asked of Intl
 * once per 15-minute block (offsets change on such boundaries) and cached: the backtest reads tens of
 * thousands of instants.
 */
export function localTimeIn(timeZone: string): (at: Date | number) => LocalTime {
  const format = new Intl.DateTimeFormat('en-US', {
    timeZone,
    hourCycle: 'h23',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  })
  const offsets = new Map<number, number>()
  const offsetOf = (ms: number) => {
    const block = Math.floor(ms / BUCKET_MS)
    let offset = offsets.get(block)
    if (offset === undefined) {
      const start = block * BUCKET_MS
      const parts = Object.fromEntries(format.formatToParts(start).map((p) => [p.type, p.value]))
      const asUtc = Date.UTC(
        Number(parts.year),
        Number(parts.month) - 1,
        Number(parts.day),
        Number(parts.hour),
        Number(parts.minute),
        Number(parts.second),
      )
      offset = asUtc - start
      if (offsets.size > 50_000) offsets.clear()
      offsets.set(block, offset)
    }
    return offset
  }
  let lastBlock = Number.NaN
  let lastOffset = 0
  return (at) => {
    const ms = typeof at === 'number' ? at : at.getTime()
    const block = Math.floor(ms / BUCKET_MS)
    if (block !== lastBlock) {
      lastBlock = block
      lastOffset = offsetOf(ms)
    }
    const localMs = ms + lastOffset
    const day = Math.floor(localMs / DAY_MS)
    const minute = (localMs - day * DAY_MS) / 60_000
    // 1970-01-01 was a Thursday (3 with Monday 0).
    return { weekday: (((day + 3) % 7) + 7) % 7, minute, day }
  }
}

/** The local calendar date (YYYY-MM-DD) of a LocalTime's day number. */
export const dateOfDay = (day: number) => new Date(day * DAY_MS).toISOString().slice(0, 10)

// ---- the profile -----------------------------------------------------------------------------

export type ProfileValue = { occupancy: number; basis: Exclude<Basis, 'last_value'> }

export type Profile = {
  readonly timeZone: string
  /** Adds a rollup bucket (oldest first); cells keep the most recent weeks or days. */
  add(point: OccupancyPoint): void
  /** The usual occupancy at an instant, or undefined when that time of day was never seen. */
  at(instant: Date | number): ProfileValue | undefined
  /** Local dates with at least one bucket. */
  days(): number
}

const mean = (values: readonly number[]) => values.reduce((sum, v) => sum + v, 0) / values.length
/** The smoothing kernel over neighbouring buckets (+-30 minutes), triangular. */
const KERNEL = [1, 2, 3, 2, 1]

export function createProfile(timeZone: string): Profile {
  const local = localTimeIn(timeZone)
  const cells = 7 * SLOTS_PER_DAY
  const weekly: number[][] = Array.from({ length: cells }, () => [])
  const daily: number[][] = Array.from({ length: SLOTS_PER_DAY }, () => [])
  const dates = new Set<number>()
  // Cell estimates, recomputed on the first read after an add.
  let estimates: (ProfileValue | undefined)[] | undefined
  const push = (cell: number[], value: number, keep: number) => {
    cell.push(value)
    if (cell.length > keep) cell.shift()
  }

  /**
   * The mean of each weekday cell (or, never seen on that weekday, of its time of day over all
   * days), shrunk towards its smoothed neighbourhood by how much of its departure from it is noise:
   * weight = d^2 / (d^2 + s^2/n), d the cell's distance to the smoothed value, s^2 the pooled
   * variance of a cell across weeks, n its weeks. A rush-hour edge that every week shows stays
   * sharp; a bump one noisy week made is smoothed away. Without noise (s = 0) the means stand.
   */
  const estimate = (): (ProfileValue | undefined)[] => {
    let squares = 0
    let freedom = 0
    const raw = new Float64Array(cells)
    const counts = new Float64Array(cells)
    const bases: (ProfileValue['basis'] | undefined)[] = new Array(cells)
    for (let index = 0; index < cells; index++) {
      const week = weekly[index] as number[]
      const values = week.length > 0 ? week : (daily[index % SLOTS_PER_DAY] as number[])
      if (values.length === 0) continue
      const m = mean(values)
      raw[index] = m
      counts[index] = values.length
      bases[index] = week.length > 0 ? 'weekday_time_of_day' : 'time_of_day'
      if (week.length < 2) continue
      for (const v of week) squares += (v - m) ** 2
      freedom += week.length - 1
    }
    const variance = freedom > 0 ? squares / freedom : 0
    const half = KERNEL.length >> 1
    const result: (ProfileValue | undefined)[] = new Array(cells)
    for (let index = 0; index < cells; index++) {
      const basis = bases[index]
      if (!basis) continue
      let sum = 0
      let weights = 0
      for (let k = -half; k <= half; k++) {
        const neighbour = (index + k + cells) % cells
        if (!bases[neighbour]) continue
        const w = KERNEL[k + half] as number
        sum += w * (raw[neighbour] as number)
        weights += w
      }
      const own = raw[index] as number
      const smooth = sum / weights
      const distance = (own - smooth) ** 2
      const noise = variance / (counts[index] as number)
      const keep = distance + noise > 0 ? distance / (distance + noise) : 1
      result[index] = { occupancy: smooth + keep * (own - smooth), basis }
    }
    return result
  }
  const cell = (weekday: number, slot: number): ProfileValue | undefined => {
    estimates ??= estimate()
    return estimates[weekday * SLOTS_PER_DAY + slot]
  }

  return {
    timeZone,
    add(point) {
      const t = local(point.at.getTime() + BUCKET_MS / 2)
      const slot = Math.min(SLOTS_PER_DAY - 1, Math.floor(t.minute / BUCKET_MINUTES))
      const value = clamp01(point.occupancy)
      push(weekly[t.weekday * SLOTS_PER_DAY + slot] as number[], value, WEEKS_KEPT)
      push(daily[slot] as number[], value, DAYS_KEPT)
      dates.add(t.day)
      estimates = undefined
    },
    at(instant) {
      const t = local(instant)
      // Slot midpoints sit at 7.5, 22.5, ... minutes: interpolate between the two around t.
      const position = t.minute / BUCKET_MINUTES - 0.5
      let slot0 = Math.floor(position)
      const fraction = position - slot0
      let day0 = t.weekday
      if (slot0 < 0) {
        slot0 += SLOTS_PER_DAY
        day0 = (day0 + 6) % 7
      }
      let slot1 = slot0 + 1
      let day1 = day0
      if (slot1 >= SLOTS_PER_DAY) {
        slot1 -= SLOTS_PER_DAY
        day1 = (day1 + 1) % 7
      }
      const a = cell(day0, slot0)
      const b = fraction > 0 ? cell(day1, slot1) : a
      if (!a || !b) return a ?? b
      return {
        occupancy: a.occupancy + (b.occupancy - a.occupancy) * fraction,
        basis:
          a.basis === 'weekday_time_of_day' && b.basis === 'weekday_time_of_day' ? a.basis : 'time_of_day',
      }
    },
    days: () => dates.size,
  }
}

// ---- the model -------------------------------------------------------------------------------

export type Model = { profile: Profile; decay: number }

const DECAY_GRID = Array.from({ length: 100 }, (_, i) => i / 100)
const FIT_STEPS = [1, 2, 3, 4]

/**
 * Learns the profile from the history (oldest first) and fits the decay: each day's residuals are
 * taken against the profile of the days before it (out of sample, as a forecast would see them),
 * then the decay is the one (0.00..0.99) that best predicts the residuals 1 to 4 steps later from
 * the current one, by least squares.
 */
export function fitModel(history: readonly OccupancyPoint[], timeZone: string): Model {
  const profile = createProfile(timeZone)
  const local = localTimeIn(timeZone)
  const residuals = new Map<number, number>()
  let day: OccupancyPoint[] = []
  let date = Number.NaN
  const learnDay = () => {
    for (const point of day) {
      const usual = profile.at(point.at.getTime() + BUCKET_MS / 2)
      if (usual)
        residuals.set(Math.round(point.at.getTime() / BUCKET_MS), clamp01(point.occupancy) - usual.occupancy)
    }
    for (const point of day) profile.add(point)
    day = []
  }
  for (const point of history) {
    const pointDate = local(point.at).day
    if (pointDate !== date) {
      learnDay()
      date = pointDate
    }
    day.push(point)
  }
  learnDay()
  return { profile, decay: fitDecay(residuals) }
}

/** Residuals by bucket number; the decay minimising the squared error of gap * decay^s. */
export function fitDecay(residuals: ReadonlyMap<number, number>): number {
  // Per step s: sums of now^2, now*later and later^2 give the error of every decay at once.
  const stats = FIT_STEPS.map((s) => ({ s, pairs: 0, nn: 0, nl: 0, ll: 0 }))
  for (const [bucket, now] of residuals) {
    for (const stat of stats) {
      const later = residuals.get(bucket + stat.s)
      if (later === undefined) continue
      stat.pairs++
      stat.nn += now * now
      stat.nl += now * later
      stat.ll += later * later
    }
  }
  const pairs = stats.reduce((sum, stat) => sum + stat.pairs, 0)
  const energy = stats.reduce((sum, stat) => sum + stat.nn, 0)
  if (pairs < MIN_FIT_PAIRS * FIT_STEPS.length || energy < 1e-9) return DEFAULT_DECAY
  let best = DEFAULT_DECAY
  let bestError = Number.POSITIVE_INFINITY
  for (const decay of DECAY_GRID) {
    let error = 0
    for (const stat of stats) {
      const weight = decay ** stat.s
      error += stat.ll - 2 * weight * stat.nl + weight * weight * stat.nn
    }
    if (error < bestError) {
      bestError = error
      best = decay
    }
  }
  return best
}

export type Anchor = { at: Date | number; occupancy: number }
export type Forecast = { occupancy: number; basis: Basis }

/** The expected occupancy at `target`, seen from the occupancy at `anchor` (now). */
export function forecastAt(model: Model, anchor: Anchor, target: Date | number): Forecast {
  const anchorMs = typeof anchor.at === 'number' ? anchor.at : anchor.at.getTime()
  const targetMs = typeof target === 'number' ? target : target.getTime()
  const current = clamp01(anchor.occupancy)
  const usual = model.profile.at(targetMs)
  if (!usual) return { occupancy: current, basis: 'last_value' }
  const usualNow = model.profile.at(anchorMs)
  const gap = usualNow ? current - usualNow.occupancy : 0
  const steps = Math.max(0, targetMs - anchorMs) / BUCKET_MS
  return { occupancy: clamp01(usual.occupancy + gap * model.decay ** steps), basis: usual.basis }
}

// ---- what the API answers --------------------------------------------------------------------

export type PredictionPoint = { at: Date; minutes_ahead: number; occupancy: number; basis: Basis }
export type HourlyPoint = { at: Date; hour: number; occupancy: number; basis: Basis }

export type Prediction = {
  model: string
  decay: number
  /** Local dates the history had buckets on. */
  history_days: number
  points: PredictionPoint[]
  next_day: { date: string; points: HourlyPoint[] }
}

const weakest = (bases: readonly Basis[]): Basis =>
  bases.includes('last_value')
    ? 'last_value'
    : bases.includes('time_of_day')
      ? 'time_of_day'
      : 'weekday_time_of_day'

/**
 * The next `horizonMinutes` in 15-minute steps (0 = now), and tomorrow (local date) hour by hour:
 * each hour the mean of its four buckets' forecasts at their midpoints. A day with a
 * daylight-saving change has 23 or 25 hours.
 */
export function predict(input: {
  history: readonly OccupancyPoint[]
  timeZone: string
  current: Anchor
  horizonMinutes: number
}): Prediction {
  return predictWith(fitModel(input.history, input.timeZone), input)
}

/** predict() with a model fitted already (the service keeps one per scope until the next bucket). */
export function predictWith(
  model: Model,
  input: { timeZone: string; current: Anchor; horizonMinutes: number },
): Prediction {
  const now = typeof input.current.at === 'number' ? input.current.at : input.current.at.getTime()
  const points: PredictionPoint[] = []
  for (let minutes = 0; minutes <= input.horizonMinutes; minutes += BUCKET_MINUTES) {
    const forecast =
      minutes === 0
        ? { occupancy: clamp01(input.current.occupancy), basis: 'last_value' as const }
        : forecastAt(model, input.current, now + minutes * 60_000)
    points.push({ at: new Date(now + minutes * 60_000), minutes_ahead: minutes, ...forecast })
  }

  const local = localTimeIn(input.timeZone)
  const today = local(now).day
  let tomorrow: number | undefined
  const hours: { at: number; hour: number; values: Forecast[] }[] = []
  // Walk the UTC bucket grid for up to 50 hours and keep the buckets of the next local date.
  const first = Math.ceil(now / BUCKET_MS) * BUCKET_MS
  for (let start = first; start < first + 50 * 3_600_000; start += BUCKET_MS) {
    const t = local(start)
    if (t.day === today) continue
    tomorrow ??= t.day
    if (t.day !== tomorrow) break
    const hour = Math.floor(t.minute / 60)
    const last = hours.at(-1)
    const forecast = forecastAt(model, input.current, start + BUCKET_MS / 2)
    if (last && last.hour === hour && start - last.at < 3_600_000) last.values.push(forecast)
    else hours.push({ at: start, hour, values: [forecast] })
  }
  return {
    model: FORECAST_MODEL,
    decay: model.decay,
    history_days: model.profile.days(),
    points,
    next_day: {
      date: dateOfDay(tomorrow ?? today + 1),
      points: hours.map((h) => ({
        at: new Date(h.at),
        hour: h.hour,
        occupancy: h.values.reduce((sum, v) => sum + v.occupancy, 0) / h.values.length,
        basis: weakest(h.values.map((v) => v.basis)),
      })),
    },
  }
}
