import { describe, expect, it } from 'vitest'
import {
  defaultBacktestOptions,
  formatReport,
  generateHistory,
  runBacktest,
  shortfalls,
} from '../../scripts/backtest.ts'
import type { OccupancyPoint } from '../../src/modules/analytics/analytics.contract.ts'
import {
  createProfile,
  DEFAULT_DECAY,
  FORECAST_MODEL,
  fitDecay,
  fitModel,
  forecastAt,
  localTimeIn,
  predict,
} from '../../src/modules/analytics/forecast.ts'

const MINUTE = 60_000
const BUCKET = 15 * MINUTE
const DAY = 96

/** Buckets from `start` (UTC, a Monday midnight in UTC), `days` long, occupancy by (weekday, slot). */
function series(start: string, days: number, occupancy: (weekday: number, slot: number) => number) {
  const from = Date.parse(start)
  return Array.from({ length: days * DAY }, (_, i): OccupancyPoint => {
    const day = Math.floor(i / DAY)
    return { at: new Date(from + i * BUCKET), occupancy: occupancy(day % 7, i % DAY), total: 50 }
  })
}

/** A weekly rhythm: a different level each weekday and a morning and an evening peak. */
const weekly = (weekday: number, slot: number) =>
  0.1 +
  0.05 * weekday +
  0.4 * Math.exp(-0.5 * ((slot - 34) / 4) ** 2) +
  (weekday === 5 ? 0.3 * Math.exp(-0.5 * ((slot - 60) / 6) ** 2) : 0)

const MONDAY = '2026-01-05T00:00:00Z'
const mid = (ms: number) => ms + BUCKET / 2

describe('the forecast model', () => {
  it('predicts flat from a flat history, whatever the horizon', () => {
    const history = series(MONDAY, 21, () => 0.4)
    const now = Date.parse(MONDAY) + 21 * DAY * BUCKET + 37 * MINUTE
    const prediction = predict({
      history,
      timeZone: 'UTC',
      current: { at: now, occupancy: 0.4 },
      horizonMinutes: 60,
    })
    expect(prediction.model).toBe(FORECAST_MODEL)
    expect(prediction.history_days).toBe(21)
    expect(prediction.points.map((p) => p.minutes_ahead)).toEqual([0, 15, 30, 45, 60])
    for (const point of prediction.points) expect(point.occupancy).toBeCloseTo(0.4, 12)
    expect(prediction.next_day.points).toHaveLength(24)
    for (const point of prediction.next_day.points) expect(point.occupancy).toBeCloseTo(0.4, 12)
  })

  it('predicts a pure weekly pattern exactly, 15 minutes to a day ahead', () => {
    const history = series(MONDAY, 28, weekly)
    const model = fitModel(history, 'UTC')
    const start = Date.parse(MONDAY) + 28 * DAY * BUCKET
    // Anchored on the pattern at every bucket of the next week, at each horizon.
    for (let i = 0; i < 7 * DAY; i += 5) {
      const anchor = { at: mid(start + i * BUCKET), occupancy: weekly(Math.floor(i / DAY) % 7, i % DAY) }
      for (const steps of [1, 2, 4, 96]) {
        const j = i + steps
        const forecast = forecastAt(model, anchor, mid(start + j * BUCKET))
        expect(forecast.basis).toBe('weekday_time_of_day')
        expect(forecast.occupancy).toBeCloseTo(weekly(Math.floor(j / DAY) % 7, j % DAY), 9)
      }
    }
    // Tomorrow by the hour: the mean of each hour's four buckets.
    const now = mid(start + 10 * BUCKET)
    const prediction = predict({
      history,
      timeZone: 'UTC',
      current: { at: now, occupancy: weekly(0, 10) },
      horizonMinutes: 60,
    })
    expect(prediction.next_day.date).toBe('2026-02-03')
    for (const hour of prediction.next_day.points) {
      const expected = [0, 1, 2, 3].map((k) => weekly(1, hour.hour * 4 + k)).reduce((a, b) => a + b) / 4
      expect(hour.occupancy).toBeCloseTo(expected, 9)
    }
  })

  it('lets the gap between now and the usual decay exponentially over the horizon', () => {
    const history = series(MONDAY, 14, () => 0.3)
    const model = fitModel(history, 'UTC')
    // A flat history has no residuals to fit: the default decay.
    expect(model.decay).toBe(DEFAULT_DECAY)
    const now = mid(Date.parse(MONDAY) + 14 * DAY * BUCKET)
    const gaps = [1, 2, 3, 4, 8, 40].map(
      (steps) => forecastAt(model, { at: now, occupancy: 0.7 }, now + steps * BUCKET).occupancy - 0.3,
    )
    for (let k = 1; k < gaps.length; k++) expect(gaps[k] as number).toBeLessThan(gaps[k - 1] as number)
    expect(gaps[0]).toBeCloseTo(0.4 * DEFAULT_DECAY, 12)
    expect(gaps[1]).toBeCloseTo(0.4 * DEFAULT_DECAY ** 2, 12)
    expect(gaps[4]).toBeCloseTo(0.4 * DEFAULT_DECAY ** 8, 12)
    expect(gaps[5]).toBeLessThan(0.01)
  })

  it('fits the decay of residuals that follow a known AR(1) process', () => {
    let seed = 7
    const noise = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31
      return seed / 2 ** 31 - 0.5
    }
    const residuals = new Map<number, number>()
    let r = 0
    for (let bucket = 0; bucket < 20_000; bucket++) {
      r = 0.9 * r + 0.05 * noise()
      residuals.set(bucket, r)
    }
    expect(fitDecay(residuals)).toBeGreaterThanOrEqual(0.88)
    expect(fitDecay(residuals)).toBeLessThanOrEqual(0.92)
    // Too few consecutive pairs: the default.
    expect(fitDecay(new Map([...residuals].slice(0, 50)))).toBe(DEFAULT_DECAY)
  })

  it('clamps forecasts and inputs to 0..1', () => {
    const history = series(MONDAY, 14, (_, slot) => (slot < 48 ? 0.05 : 0.95))
    const model = fitModel(history, 'UTC')
    const start = Date.parse(MONDAY) + 14 * DAY * BUCKET
    // Full before the usual rise: usual 0.95 plus a positive gap would exceed 1.
    const high = forecastAt(model, { at: mid(start + 46 * BUCKET), occupancy: 1 }, mid(start + 49 * BUCKET))
    expect(high.occupancy).toBeLessThanOrEqual(1)
    expect(high.occupancy).toBeGreaterThan(0.95)
    // Empty at a busy time, before the usual fall: 0.05 plus a negative gap would go below 0.
    const low = forecastAt(model, { at: mid(start + 94 * BUCKET), occupancy: 0 }, mid(start + 97 * BUCKET))
    expect(low.occupancy).toBeGreaterThanOrEqual(0)
    expect(low.occupancy).toBeLessThan(0.05)
    // An out-of-range reading counts as full, an invalid one as empty.
    const over = predict({
      history,
      timeZone: 'UTC',
      current: { at: start, occupancy: 1.7 },
      horizonMinutes: 60,
    })
    for (const point of over.points) expect(point.occupancy).toBeLessThanOrEqual(1)
    expect(over.points[0]?.occupancy).toBe(1)
    const nan = predict({
      history: [],
      timeZone: 'UTC',
      current: { at: start, occupancy: Number.NaN },
      horizonMinutes: 15,
    })
    expect(nan.points.map((p) => p.occupancy)).toEqual([0, 0])
  })

  it('falls back to the time of day over all days, then to the last value', () => {
    // Monday and Tuesday only: a Wednesday is forecast from the time of day over both days.
    const history = series(MONDAY, 2, (weekday, slot) => (weekday === 0 ? 0.2 : 0.4) + slot / 1000)
    const model = fitModel(history, 'UTC')
    const tuesday = Date.parse(MONDAY) + DAY * BUCKET
    const wednesday = Date.parse(MONDAY) + 2 * DAY * BUCKET
    const known = forecastAt(
      model,
      { at: mid(tuesday + 39 * BUCKET), occupancy: 0.4 + 39 / 1000 },
      mid(tuesday + 40 * BUCKET),
    )
    expect(known.basis).toBe('weekday_time_of_day')
    const fallback = forecastAt(
      model,
      { at: mid(wednesday + 40 * BUCKET), occupancy: 0.3 + 40 / 1000 },
      mid(wednesday + 41 * BUCKET),
    )
    expect(fallback.basis).toBe('time_of_day')
    expect(fallback.occupancy).toBeCloseTo(0.3 + 41 / 1000, 9)

    // No history at all: the last value, flat.
    const none = predict({
      history: [],
      timeZone: 'UTC',
      current: { at: wednesday, occupancy: 0.62 },
      horizonMinutes: 60,
    })
    expect(none.history_days).toBe(0)
    expect(none.points.every((p) => p.basis === 'last_value' && p.occupancy === 0.62)).toBe(true)
    expect(none.next_day.points.every((p) => p.basis === 'last_value' && p.occupancy === 0.62)).toBe(true)
  })

  it('keeps weekdays and times of day local across daylight-saving changes', () => {
    const local = localTimeIn('Europe/Berlin')
    // 08:00 local is 07:00 UTC in winter and 06:00 UTC in summer.
    expect(local(Date.parse('2026-03-27T07:00:00Z'))).toMatchObject({ weekday: 4, minute: 480 })
    expect(local(Date.parse('2026-03-30T06:00:00Z'))).toMatchObject({ weekday: 0, minute: 480 })

    // A rush at 08:00 local every day; history across the spring change still peaks at 08:00.
    const profile = createProfile('Europe/Berlin')
    const from = Date.parse('2026-03-15T23:00:00Z')
    for (let at = from; at < Date.parse('2026-04-05T22:00:00Z'); at += BUCKET) {
      const minute = local(at + BUCKET / 2).minute
      profile.add({ at: new Date(at), occupancy: minute >= 480 && minute < 540 ? 0.9 : 0.1, total: 10 })
    }
    expect(profile.at(Date.parse('2026-04-06T06:07:30Z'))?.occupancy).toBeCloseTo(0.9, 9)
    expect(profile.at(Date.parse('2026-04-06T05:37:30Z'))?.occupancy).toBeCloseTo(0.1, 9)

    // Tomorrow has 23 hours on the spring change and 25 on the autumn one.
    const spring = predict({
      history: [],
      timeZone: 'Europe/Berlin',
      current: { at: Date.parse('2026-03-28T12:00:00Z'), occupancy: 0.5 },
      horizonMinutes: 15,
    })
    expect(spring.next_day.date).toBe('2026-03-29')
    expect(spring.next_day.points.map((p) => p.hour)).toEqual([
      0,
      1,
      ...Array.from({ length: 21 }, (_, h) => h + 3),
    ])
    const autumn = predict({
      history: [],
      timeZone: 'Europe/Berlin',
      current: { at: Date.parse('2026-10-24T12:00:00Z'), occupancy: 0.5 },
      horizonMinutes: 15,
    })
    expect(autumn.next_day.date).toBe('2026-10-25')
    expect(autumn.next_day.points).toHaveLength(25)
    expect(autumn.next_day.points[0]?.at.toISOString()).toBe('2026-10-24T22:00:00.000Z')
  })
})

describe('the backtest', () => {
  it('is deterministic for a seed', () => {
    const options = { seed: 9, weeks: 2, zones: 1, spacesPerZone: 20 }
    const a = generateHistory({ ...defaultBacktestOptions, ...options })
    const b = generateHistory({ ...defaultBacktestOptions, ...options })
    expect(a.zones[0]?.points.map((p) => p.occupancy)).toEqual(b.zones[0]?.points.map((p) => p.occupancy))
    const c = generateHistory({ ...defaultBacktestOptions, ...options, seed: 10 })
    expect(c.zones[0]?.points.map((p) => p.occupancy)).not.toEqual(a.zones[0]?.points.map((p) => p.occupancy))
  })

  it('finds the model better than last value and same time last week at 15, 30 and 60 minutes', () => {
    const result = runBacktest({ seed: 42, weeks: 4, zones: 3 })
    expect(result.horizons.map((h) => h.minutes)).toEqual([15, 30, 60])
    for (const horizon of result.horizons) {
      expect(horizon.steps).toBeGreaterThan(1_900)
      expect(horizon.model).toBeLessThan(horizon.lastValue)
      expect(horizon.model).toBeLessThan(horizon.lastWeek)
    }
    // The baselines are not strawmen: last value is hard to beat 15 minutes ahead.
    expect((result.horizons[0]?.model as number) / (result.horizons[0]?.lastValue as number)).toBeGreaterThan(
      0.6,
    )
    expect(shortfalls(result)).toEqual([])
    expect(formatReport(result)).toContain('The model beats both baselines at every horizon.')
    expect(result.milliseconds).toBeLessThan(30_000)
  })
})
