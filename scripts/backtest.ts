import { parseArgs } from 'node:util'
import { BUCKET_MINUTES, type OccupancyPoint } from '../src/modules/analytics/analytics.contract.ts'
import { clamp01, FORECAST_MODEL, fitModel, forecastAt } from '../src/modules/analytics/forecast.ts'

// `npm run backtest`: the occupancy forecast against two naive baselines on held-out history.
//
// A generator drives lots of the kind the demo makes (zones of 50 spaces) minute by minute for
// several weeks: cars arrive by a time-varying Poisson process (weekday and weekend rhythms, rush
// hours, a slowly wandering "weather" factor, a day-to-day factor) and stay for the simulator's
// dwell times (scripts/simulate.ts: log-normal, median 35 minutes) or, for commuters, a working
// day; a full zone turns cars away. A few irregular days (a public holiday, an evening event, a
// closed floor) break the rhythm. Each zone's occupancy is rolled up into 15-minute buckets as the
// platform's rollups are (time-weighted means). The last week is held out: at every bucket of it
// the model, fitted on what came before (and growing as the week goes on), predicts 15, 30 and 60
// minutes ahead, as do "last value" and "same time last week"; the mean absolute errors are
// compared in percentage points.

const BUCKET_MS = BUCKET_MINUTES * 60_000
const WEEK_BUCKETS = (7 * 24 * 60) / BUCKET_MINUTES
const DAY_MINUTES = 24 * 60

export type BacktestOptions = {
  seed: number
  /** Weeks of history in all; the last one is held out. */
  weeks: number
  zones: number
  spacesPerZone: number
  /** The lot's time zone: weekdays and rush hours are local. */
  timeZone: string
  /** The first simulated day (a Monday, local midnight is found from it). */
  start: string
  horizons: readonly number[]
}

export const defaultBacktestOptions: BacktestOptions = {
  seed: 42,
  weeks: 6,
  zones: 6,
  spacesPerZone: 50,
  timeZone: 'Europe/Berlin',
  // Six weeks from here cross the spring daylight-saving change (29 March 2026) in week 4.
  start: '2026-03-02',
  horizons: [15, 30, 60],
}

// ---- randomness (deterministic by seed) ------------------------------------------------------

/** mulberry32: small, fast, and the same sequence on every machine for a seed. */
function random(seed: number) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
}

type Rng = () => number
const normal = (rng: Rng) => Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng())
function poisson(rng: Rng, mean: number): number {
  if (mean <= 0) return 0
  const limit = Math.exp(-mean)
  let k = 0
  let p = rng()
  while (p > limit) {
    k++
    p *= rng()
  }
  return k
}
const bell = (minute: number, centre: number, width: number) =>
  Math.exp(-0.5 * ((minute - centre) / width) ** 2)
/** The simulator's car: log-normal, median 35 minutes, from 3 minutes to 10 hours. */
const visitorStay = (rng: Rng) => Math.min(600, Math.max(3, 35 * Math.exp(0.9 * normal(rng))))
/** A commuter: a working day, 8.5 h +- 1 h. */
const commuterStay = (rng: Rng) => Math.min(12 * 60, Math.max(4 * 60, 510 + 60 * normal(rng)))
/** A shopper: log-normal, median 75 minutes. */
const shopperStay = (rng: Rng) => Math.min(6 * 60, Math.max(10, 75 * Math.exp(0.6 * normal(rng))))

// ---- the generator ---------------------------------------------------------------------------

export type ZoneKind = 'office' | 'retail' | 'mixed'
const zoneKinds: ZoneKind[] = ['office', 'retail', 'mixed']

type Irregular = { day: number; kind: 'holiday' | 'event' | 'closure' }

/** Cars arriving per minute in a zone, by kind of car, at a local weekday and minute. */
function demand(kind: ZoneKind, weekday: number, minute: number, holiday: boolean) {
  const workday = weekday < 5 && !holiday
  const saturday = weekday === 5
  const office = kind === 'office' ? 1 : kind === 'mixed' ? 0.45 : 0
  const retail = kind === 'retail' ? 1 : kind === 'mixed' ? 0.55 : 0
  // Commuters arrive around 08:15 (a few at 07:00-10:00); about 42 per office zone on a workday.
  const commuters = workday ? office * 0.38 * bell(minute, 495, 40) : 0
  // Shoppers: a midday peak and an after-work peak; Saturday busiest, Sunday quiet.
  const dayScale = saturday ? 1.35 : weekday === 6 ? 0.55 : holiday ? 0.8 : 1
  const open = minute >= 8 * 60 && minute < 21 * 60 ? 1 : 0.08
  const shoppers =
    retail *
    dayScale *
    open *
    (0.12 + 0.35 * bell(minute, 12.5 * 60, 90) + 0.45 * bell(minute, 17.5 * 60, 80))
  // Visitors with short stays all day, fewer at night.
  const visitors = (kind === 'office' ? 0.1 : 0.06) * (minute >= 7 * 60 && minute < 20 * 60 ? 1 : 0.15)
  return { commuters, shoppers, visitors }
}

export type ZoneSeries = { id: string; kind: ZoneKind; points: OccupancyPoint[] }

export type GeneratedHistory = {
  zones: ZoneSeries[]
  irregular: { date: string; kind: Irregular['kind'] }[]
  startMs: number
}

/** Midnight at the start of a local date, as a UTC instant (DST-safe for a whole-hour zone). */
function localMidnight(date: string, timeZone: string): number {
  const guess = Date.parse(`${date}T00:00:00Z`)
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
    })
      .formatToParts(guess)
      .map((p) => [p.type, p.value]),
  )
  const offset =
    Date.UTC(
      Number(parts.year),
      Number(parts.month) - 1,
      Number(parts.day),
      Number(parts.hour),
      Number(parts.minute),
    ) - guess
  return guess - offset
}

export function generateHistory(options: BacktestOptions): GeneratedHistory {
  const rng = random(options.seed)
  const days = options.weeks * 7
  const startMs = localMidnight(options.start, options.timeZone)
  const localParts = new Intl.DateTimeFormat('en-US', {
    timeZone: options.timeZone,
    hourCycle: 'h23',
    weekday: 'short',
    hour: '2-digit',
    minute: '2-digit',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
  })
  const weekdays = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun']

  // A few irregular days, a different kind in each third of the history, one in the held-out week.
  const candidates: Irregular[] = [
    { day: 7 + Math.floor(rng() * 5), kind: 'holiday' },
    { day: 14 + Math.floor(rng() * 14), kind: 'closure' },
    { day: (options.weeks - 1) * 7 + Math.floor(rng() * 5), kind: 'event' },
  ]
  const irregular = candidates.filter((d) => d.day < days)
  const irregularOn = new Map(irregular.map((d) => [d.day, d.kind]))
  // A day-to-day factor for the whole lot, and a slowly wandering one (weather, traffic) per hour.
  const dayFactor = Array.from({ length: days + 1 }, () => Math.exp(0.1 * normal(rng)))

  const zones = Array.from({ length: options.zones }, (_, z) => ({
    id: `zone-${z + 1}`,
    kind: zoneKinds[z % zoneKinds.length] as ZoneKind,
    scale: Math.exp(0.1 * normal(rng)),
    cars: [] as number[],
    sum: 0,
    points: [] as OccupancyPoint[],
  }))
  let weather = 0
  let dayIndex = -1
  let lastDate = ''
  let minuteOfDay = 0
  let weekday = 0
  const totalMinutes = Math.round(
    (localMidnight(addDays(options.start, days), options.timeZone) - startMs) / 60_000,
  )
  for (let m = 0; m < totalMinutes; m++) {
    const at = startMs + m * 60_000
    if (m % 15 === 0) {
      // Local calendar, read once per bucket.
      const parts = Object.fromEntries(localParts.formatToParts(at).map((p) => [p.type, p.value]))
      const date = `${parts.year}-${parts.month}-${parts.day}`
      if (date !== lastDate) {
        lastDate = date
        dayIndex++
      }
      weekday = weekdays.indexOf(parts.weekday as string)
      minuteOfDay = Number(parts.hour) * 60 + Number(parts.minute)
      weather = 0.93 * weather + 0.06 * normal(rng)
    } else {
      minuteOfDay = (minuteOfDay + 1) % DAY_MINUTES
    }
    const special = irregularOn.get(dayIndex)
    const factor = (dayFactor[dayIndex] ?? 1) * Math.exp(weather)
    for (const zone of zones) {
      const rates = demand(zone.kind, weekday, minuteOfDay, special === 'holiday')
      let eventBoost = 1
      if (special === 'event' && minuteOfDay >= 17 * 60 && minuteOfDay < 22 * 60) eventBoost = 3
      // A closed floor on a closure day: half the zones lose a third of their spaces from 10:00 to 16:00.
      const capacity =
        special === 'closure' && zone.kind !== 'office' && minuteOfDay >= 600 && minuteOfDay < 960
          ? Math.round(options.spacesPerZone * 0.66)
          : options.spacesPerZone
      let kept = 0
      for (const leave of zone.cars) if (leave > m) zone.cars[kept++] = leave
      zone.cars.length = kept
      const arrivals: number[] = []
      for (let i = poisson(rng, rates.commuters * zone.scale * factor); i > 0; i--)
        arrivals.push(m + commuterStay(rng))
      for (let i = poisson(rng, rates.shoppers * zone.scale * factor * eventBoost); i > 0; i--)
        arrivals.push(m + shopperStay(rng))
      for (let i = poisson(rng, rates.visitors * zone.scale * factor); i > 0; i--)
        arrivals.push(m + visitorStay(rng))
      for (const leave of arrivals) if (zone.cars.length < capacity) zone.cars.push(leave)
      zone.sum += zone.cars.length / options.spacesPerZone
      if (m % 15 === 14) {
        zone.points.push({
          at: new Date(at - 14 * 60_000),
          occupancy: zone.sum / 15,
          total: options.spacesPerZone,
        })
        zone.sum = 0
      }
    }
  }
  return {
    zones: zones.map((z) => ({ id: z.id, kind: z.kind, points: z.points })),
    irregular: irregular.map((d) => ({ date: addDays(options.start, d.day), kind: d.kind })),
    startMs,
  }
}

function addDays(date: string, days: number): string {
  return new Date(Date.parse(`${date}T12:00:00Z`) + days * 86_400_000).toISOString().slice(0, 10)
}

// ---- the backtest ----------------------------------------------------------------------------

export type HorizonResult = {
  minutes: number
  steps: number
  /** Mean absolute errors, in percentage points. */
  model: number
  lastValue: number
  lastWeek: number
}

export type BacktestResult = {
  options: BacktestOptions
  horizons: HorizonResult[]
  byKind: { kind: ZoneKind; horizons: HorizonResult[] }[]
  irregular: GeneratedHistory['irregular']
  decays: number[]
  buckets: number
  milliseconds: number
}

export function runBacktest(overrides: Partial<BacktestOptions> = {}): BacktestResult {
  const options = { ...defaultBacktestOptions, ...overrides }
  if (options.weeks < 2) throw new Error('a backtest needs at least 2 weeks: one to learn from, one held out')
  const begin = performance.now()
  const history = generateHistory(options)
  const tally = () =>
    new Map(options.horizons.map((h) => [h, { steps: 0, model: 0, lastValue: 0, lastWeek: 0 }]))
  const overall = tally()
  const perKind = new Map<ZoneKind, ReturnType<typeof tally>>()
  const decays: number[] = []
  let buckets = 0
  for (const zone of history.zones) {
    const points = zone.points
    buckets += points.length
    // The held-out week starts at its local Monday midnight: the last WEEK_BUCKETS buckets, give or
    // take the hour a daylight-saving change adds or removes.
    const heldOutFrom = Math.max(WEEK_BUCKETS, points.length - WEEK_BUCKETS)
    const model = fitModel(points.slice(0, heldOutFrom), options.timeZone)
    decays.push(model.decay)
    const kindTally = perKind.get(zone.kind) ?? tally()
    perKind.set(zone.kind, kindTally)
    // Anchored on each bucket from the last one learnt from; the profile learns each bucket once it is past.
    for (let a = heldOutFrom - 1; a < points.length - 1; a++) {
      const anchor = points[a] as OccupancyPoint
      if (a >= heldOutFrom) model.profile.add(anchor)
      const anchorAt = anchor.at.getTime() + BUCKET_MS / 2
      for (const minutes of options.horizons) {
        const steps = minutes / BUCKET_MINUTES
        const target = points[a + steps]
        const lastWeek = points[a + steps - WEEK_BUCKETS]
        if (!target || !lastWeek) continue
        // Same time last week by the clock: a DST change shifts indices by 4 buckets; look it up by time.
        const weekAgo =
          byTime(points, target.at.getTime() - 7 * 86_400_000, a + steps - WEEK_BUCKETS) ?? lastWeek
        const predicted = forecastAt(
          model,
          { at: anchorAt, occupancy: anchor.occupancy },
          target.at.getTime() + BUCKET_MS / 2,
        )
        const actual = target.occupancy
        for (const t of [overall.get(minutes), kindTally.get(minutes)]) {
          if (!t) continue
          t.steps++
          t.model += Math.abs(predicted.occupancy - actual)
          t.lastValue += Math.abs(clamp01(anchor.occupancy) - actual)
          t.lastWeek += Math.abs(weekAgo.occupancy - actual)
        }
      }
    }
  }
  const summarise = (t: ReturnType<typeof tally>): HorizonResult[] =>
    [...t].map(([minutes, v]) => ({
      minutes,
      steps: v.steps,
      model: (100 * v.model) / Math.max(1, v.steps),
      lastValue: (100 * v.lastValue) / Math.max(1, v.steps),
      lastWeek: (100 * v.lastWeek) / Math.max(1, v.steps),
    }))
  return {
    options,
    horizons: summarise(overall),
    byKind: [...perKind].map(([kind, t]) => ({ kind, horizons: summarise(t) })),
    irregular: history.irregular,
    decays,
    buckets,
    milliseconds: performance.now() - begin,
  }
}

/** The bucket starting exactly at `ms`, searched near a guessed index. */
function byTime(points: readonly OccupancyPoint[], ms: number, guess: number): OccupancyPoint | undefined {
  for (const i of [guess, guess - 4, guess + 4]) {
    const p = points[i]
    if (p && p.at.getTime() === ms) return p
  }
  return undefined
}

// ---- the report ------------------------------------------------------------------------------

const pp = (value: number) => `${value.toFixed(2)} pp`
const ratio = (model: number, baseline: number) => (baseline > 0 ? (model / baseline).toFixed(2) : '-')

function table(rows: readonly HorizonResult[]): string[] {
  const header = [
    'horizon',
    'steps',
    'model MAE',
    'last value MAE',
    'model/last value',
    'last week MAE',
    'model/last week',
  ]
  const body = rows.map((r) => [
    `${r.minutes} min`,
    String(r.steps),
    pp(r.model),
    pp(r.lastValue),
    ratio(r.model, r.lastValue),
    pp(r.lastWeek),
    ratio(r.model, r.lastWeek),
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => (row[i] as string).length)))
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] as number)).join(' | ')} |`
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)]
}

/** Where the model does not beat a baseline: by how much, in percentage points. */
export function shortfalls(result: BacktestResult): string[] {
  return result.horizons.flatMap((r) => [
    ...(r.model >= r.lastValue
      ? [`${r.minutes} min: worse than last value by ${pp(r.model - r.lastValue)}`]
      : []),
    ...(r.model >= r.lastWeek
      ? [`${r.minutes} min: worse than same time last week by ${pp(r.model - r.lastWeek)}`]
      : []),
  ])
}

export function formatReport(result: BacktestResult): string {
  const o = result.options
  const heldOut = result.horizons[0]?.steps ?? 0
  const missing = shortfalls(result)
  return [
    `Backtest of ${FORECAST_MODEL}: seed ${o.seed}, ${o.weeks} weeks of 15-minute occupancy from ${o.start} (${o.timeZone}),`,
    `${o.zones} zones x ${o.spacesPerZone} spaces (${zoneKinds.join(', ')}), last week held out (${heldOut} forecasts per horizon).`,
    `Irregular days: ${result.irregular.map((d) => `${d.date} ${d.kind}`).join(', ')}. Fitted decay per 15 min: ${[...new Set(result.decays.map((d) => d.toFixed(2)))].join(', ')}.`,
    '',
    'Mean absolute error in percentage points of occupancy (ratio < 1: the model is better):',
    ...table(result.horizons),
    '',
    ...result.byKind.flatMap((k) => [`${k.kind} zones:`, ...table(k.horizons), '']),
    missing.length === 0
      ? 'The model beats both baselines at every horizon.'
      : `The model does not beat every baseline: ${missing.join('; ')}.`,
    `${result.buckets} buckets generated and replayed in ${(result.milliseconds / 1000).toFixed(1)} s.`,
  ].join('\n')
}

const usage = `Usage: npm run backtest -- [--seed N] [--weeks N] [--zones N] [--spaces N] [--time-zone ZONE] [--start YYYY-MM-DD]

Generates several weeks of 15-minute occupancy for a lot's zones (weekday and weekend rhythms,
rush hours, noise, a few irregular days), holds out the last week, and compares the forecast's mean
absolute error 15, 30 and 60 minutes ahead with two baselines: the last value and the same time last
week. Deterministic for a seed. Exits 1 when the model does not beat both baselines everywhere.`

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      seed: { type: 'string' },
      weeks: { type: 'string' },
      zones: { type: 'string' },
      spaces: { type: 'string' },
      'time-zone': { type: 'string' },
      start: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  })
  if (values.help) {
    console.log(usage)
    process.exit(0)
  }
  const whole = (name: string, raw: string | undefined, min: number, max: number) => {
    if (raw === undefined) return undefined
    const value = Number(raw)
    if (!Number.isInteger(value) || value < min || value > max) {
      console.error(`--${name}: a whole number from ${min} to ${max}, not "${raw}"`)
      process.exit(2)
    }
    return value
  }
  const overrides: Partial<BacktestOptions> = {}
  const seed = whole('seed', values.seed, 0, 2 ** 32 - 1)
  const weeks = whole('weeks', values.weeks, 2, 12)
  const zones = whole('zones', values.zones, 1, 30)
  const spaces = whole('spaces', values.spaces, 5, 1000)
  if (seed !== undefined) overrides.seed = seed
  if (weeks !== undefined) overrides.weeks = weeks
  if (zones !== undefined) overrides.zones = zones
  if (spaces !== undefined) overrides.spacesPerZone = spaces
  if (values['time-zone']) overrides.timeZone = values['time-zone']
  if (values.start) {
    if (!/^\d{4}-\d{2}-\d{2}$/.test(values.start) || Number.isNaN(Date.parse(values.start))) {
      console.error('--start: a date, YYYY-MM-DD')
      process.exit(2)
    }
    overrides.start = values.start
  }
  const result = runBacktest(overrides)
  console.log(formatReport(result))
  process.exit(shortfalls(result).length === 0 ? 0 : 1)
}
