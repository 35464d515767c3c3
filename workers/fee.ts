// The fee of one stay under one tariff snapshot: a pure function (no I/O, no clock), run in the
// worker pool by fee-batch.ts and inline by tests. The rules are written down in
// src/modules/pricing/README.md; the comments here say why the code is shaped as it is.
import type {
  Adjustment,
  FeeLine,
  FeeQuote,
  TariffSnapshot,
} from '../src/modules/sessions/operations.contract.ts'

/** Local weekdays in the order of Date#getUTCDay (0 = Sunday). */
export const weekdays = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const
export type Weekday = (typeof weekdays)[number]

export const rateTypes = ['hourly', 'daily', 'flat'] as const
export type RateType = (typeof rateTypes)[number]

type BandWindow = {
  name: string
  days: Weekday[]
  /** Local time HH:MM. */
  start: string
  /** Local time HH:MM, up to 24:00; at or before `start` the band runs into the next day. */
  end: string
}
/** A step that starts in a peak band costs the tariff's step price times `multiplier_percent` / 100. */
export type PeakBand = BandWindow & { kind: 'peak'; multiplier_percent: number }
/** A step that starts in a price band costs `step_amount`. */
export type PriceBand = BandWindow & { kind: 'price'; step_amount: number }
export type Band = PeakBand | PriceBand

/** What a tariff snapshot holds: everything the fee needs, as plain JSON. */
export type Tariff = {
  id: string
  name: string
  currency: string
  rate_type: RateType
  /** hourly: per step; daily: per calendar day touched; flat: per stay. Minor units. */
  amount: number
  step_minutes: number
  grace_period_minutes: number
  daily_max: number | null
  lost_ticket_fee: number
  bands: readonly Band[]
}

/** A FeeRequest as it crosses the thread boundary: instants as epoch milliseconds. */
export type FeeTask = {
  tariff: TariffSnapshot | null
  currency: string
  timeZone: string
  entryAt: number
  exitAt: number
  lostTicket: boolean
  adjustments: readonly Adjustment[]
}

const MINUTE = 60_000
const DAY = 86_400_000

/** A reduction is written as a negative line; never as -0, which strict equality tells from 0. */
const negative = (amount: number) => (amount === 0 ? 0 : -amount)

// --- Money in descriptions -------------------------------------------------------------------

const fractionDigits = new Map<string, number>()

/** The currency's minor-unit exponent as Intl knows it: 2 for USD and EUR, 0 for JPY, 3 for BHD. */
export function minorDigits(currency: string): number {
  let digits = fractionDigits.get(currency)
  if (digits === undefined) {
    digits = new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions()
      .maximumFractionDigits as number
    fractionDigits.set(currency, digits)
  }
  return digits
}

/** 150050 USD -> "1500.50 USD"; 500 JPY -> "500 JPY". Exact: integer digits, no float division. */
export function formatMoney(amount: number, currency: string): string {
  const digits = minorDigits(currency)
  const sign = amount < 0 ? '-' : ''
  const text = String(Math.abs(amount))
  if (digits === 0) return `${sign}${text} ${currency}`
  const padded = text.padStart(digits + 1, '0')
  return `${sign}${padded.slice(0, -digits)}.${padded.slice(-digits)} ${currency}`
}

// --- Local time ------------------------------------------------------------------------------

const formatters = new Map<string, Intl.DateTimeFormat>()
const offsets = new Map<string, Map<number, number>>()
const OFFSET_BUCKET = 15 * MINUTE

function formatterOf(timeZone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(timeZone)
  if (!formatter) {
    formatter = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    })
    formatters.set(timeZone, formatter)
  }
  return formatter
}

/**
 * The zone's UTC offset at an instant, in ms, from Intl. Offsets change on quarter-hour UTC
 * instants in every zone in use today, so one lookup per 15-minute bucket is cached: a stay of
 * a month in 15-minute steps asks Intl a few thousand times, not per step and per stay.
 */
export function offsetAt(timeZone: string, at: number): number {
  const bucket = Math.floor(at / OFFSET_BUCKET)
  let cache = offsets.get(timeZone)
  if (!cache) {
    cache = new Map()
    offsets.set(timeZone, cache)
  }
  const known = cache.get(bucket)
  if (known !== undefined) return known
  const instant = bucket * OFFSET_BUCKET
  const parts: Record<string, number> = {}
  for (const part of formatterOf(timeZone).formatToParts(instant)) {
    if (part.type !== 'literal') parts[part.type] = Number(part.value)
  }
  const wall = Date.UTC(
    parts.year ?? 1970,
    (parts.month ?? 1) - 1,
    parts.day ?? 1,
    parts.hour ?? 0,
    parts.minute ?? 0,
    parts.second ?? 0,
  )
  const offset = wall - instant
  if (cache.size > 100_000) cache.clear()
  cache.set(bucket, offset)
  return offset
}

/** The local calendar day of an instant, as days since 1970-01-01 (a local date, not a UTC one). */
function localDayOf(timeZone: string, at: number): number {
  return Math.floor((at + offsetAt(timeZone, at)) / DAY)
}

// --- Bands -----------------------------------------------------------------------------------

const minutesOf = (clock: string) => {
  const [hours, minutes] = clock.split(':')
  return Number(hours) * 60 + Number(minutes)
}

type CompiledBand = { band: Band; index: number; mask: number; from: number; to: number; wraps: boolean }

function compileBands(bands: readonly Band[]): CompiledBand[] {
  return bands.map((band, index) => {
    const from = minutesOf(band.start)
    const to = minutesOf(band.end)
    const mask = band.days.reduce((bits, day) => bits | (1 << weekdays.indexOf(day)), 0)
    return { band, index, mask, from, to, wraps: to <= from }
  })
}

/** The first band in the tariff's order that covers this local weekday and minute of the day. */
function bandAt(bands: readonly CompiledBand[], weekday: number, minute: number): CompiledBand | undefined {
  const yesterday = (weekday + 6) % 7
  for (const band of bands) {
    if (!band.wraps) {
      if (band.mask & (1 << weekday) && minute >= band.from && minute < band.to) return band
    } else if (
      (band.mask & (1 << weekday) && minute >= band.from) ||
      (band.mask & (1 << yesterday) && minute < band.to)
    ) {
      return band
    }
  }
  return undefined
}

// --- Parking charge --------------------------------------------------------------------------

type Charge = { lines: FeeLine[]; amount: number }

function stepWords(count: number, stepMinutes: number): { quantity: string; per: string } {
  if (stepMinutes === 60) return { quantity: `${count} hour(s)`, per: 'hr' }
  return { quantity: `${count} × ${stepMinutes} min`, per: `${stepMinutes} min` }
}

/** Steps of `step_minutes` counted from `start` in real time; every started step is charged. */
function hourlyCharge(tariff: Tariff, timeZone: string, start: number, end: number): Charge {
  const stepMs = tariff.step_minutes * MINUTE
  const steps = Math.ceil((end - start) / stepMs)
  const bands = compileBands(tariff.bands)
  // One group per price source (the base price, each band), in order of first use.
  const groups = new Map<number, { band: CompiledBand | undefined; price: number; count: number }>()
  const perDay = new Map<number, number>()
  for (let i = 0; i < steps; i++) {
    const at = start + i * stepMs
    const local = at + offsetAt(timeZone, at)
    const day = Math.floor(local / DAY)
    const minute = Math.floor((local - day * DAY) / MINUTE)
    // 1970-01-01 was a Thursday (4).
    const weekday = (((day + 4) % 7) + 7) % 7
    const band = bands.length > 0 ? bandAt(bands, weekday, minute) : undefined
    const price =
      band === undefined
        ? tariff.amount
        : band.band.kind === 'peak'
          ? Math.round((tariff.amount * band.band.multiplier_percent) / 100)
          : band.band.step_amount
    const key = band?.index ?? -1
    const group = groups.get(key)
    if (group) group.count++
    else groups.set(key, { band, price, count: 1 })
    perDay.set(day, (perDay.get(day) ?? 0) + price)
  }

  const money = (amount: number) => formatMoney(amount, tariff.currency)
  const lines: FeeLine[] = []
  let amount = 0
  for (const { band, price, count } of groups.values()) {
    const { quantity, per } = stepWords(count, tariff.step_minutes)
    const rate = `${quantity} @ ${money(price)}/${per}`
    const line: FeeLine =
      band === undefined
        ? { kind: 'parking', description: `Parking (${rate})`, amount: price * count }
        : band.band.kind === 'peak'
          ? {
              kind: 'peak',
              description: `${band.band.name} (${rate}, ${band.band.multiplier_percent}% of ${money(tariff.amount)})`,
              amount: price * count,
            }
          : { kind: 'parking', description: `Parking, ${band.band.name} (${rate})`, amount: price * count }
    lines.push(line)
    amount += line.amount
  }

  if (tariff.daily_max !== null) {
    const cap = tariff.daily_max
    let excess = 0
    let cappedDays = 0
    for (const dayTotal of perDay.values()) {
      if (dayTotal > cap) {
        excess += dayTotal - cap
        cappedDays++
      }
    }
    if (excess > 0) {
      lines.push({
        kind: 'daily_cap',
        description: `Daily maximum ${money(cap)} (${cappedDays} day(s) capped)`,
        amount: -excess,
      })
      amount -= excess
    }
  }
  return { lines, amount }
}

/** The parking charge of [start, end) under the tariff, before reductions; nothing when empty. */
function parkingCharge(tariff: Tariff, timeZone: string, start: number, end: number): Charge {
  if (end <= start) return { lines: [], amount: 0 }
  const money = (amount: number) => formatMoney(amount, tariff.currency)
  switch (tariff.rate_type) {
    case 'flat':
      return {
        lines: [{ kind: 'flat', description: `Flat rate (${money(tariff.amount)})`, amount: tariff.amount }],
        amount: tariff.amount,
      }
    case 'daily': {
      const days = localDayOf(timeZone, end - 1) - localDayOf(timeZone, start) + 1
      const amount = days * tariff.amount
      return {
        lines: [
          { kind: 'daily', description: `Daily rate (${days} day(s) @ ${money(tariff.amount)}/day)`, amount },
        ],
        amount,
      }
    }
    case 'hourly':
      return hourlyCharge(tariff, timeZone, start, end)
  }
}

// --- The quote -------------------------------------------------------------------------------

const reductionOrder: Record<Adjustment['kind'], number> = {
  free_minutes: 0,
  percentage: 1,
  fixed: 2,
  full: 3,
}

export function quoteFee(task: FeeTask): FeeQuote {
  const tariff = task.tariff as unknown as Tariff | null
  const currency = tariff?.currency ?? task.currency
  const stayMs = Math.max(0, task.exitAt - task.entryAt)
  const breakdown: FeeLine[] = []
  let base = 0

  const graced = tariff !== null && stayMs <= tariff.grace_period_minutes * MINUTE
  if (tariff === null) {
    breakdown.push({ kind: 'no_tariff', description: 'No tariff in force: parking is free', amount: 0 })
  } else if (graced) {
    breakdown.push({
      kind: 'grace',
      description: `Grace period (${tariff.grace_period_minutes} min)`,
      amount: 0,
    })
  } else {
    const charge = parkingCharge(tariff, task.timeZone, task.entryAt, task.entryAt + stayMs)
    breakdown.push(...charge.lines)
    base += charge.amount
  }
  if (tariff !== null && task.lostTicket) {
    breakdown.push({
      kind: 'lost_ticket',
      description: `Lost ticket (${formatMoney(tariff.lost_ticket_fee, currency)})`,
      amount: tariff.lost_ticket_fee,
    })
    base += tariff.lost_ticket_fee
  }

  // Stable sort: within one kind, the caller's order.
  const adjustments = [...task.adjustments].sort((a, b) => reductionOrder[a.kind] - reductionOrder[b.kind])
  let remaining = base
  let freeMinutes = 0
  let parkingNow = base - (tariff !== null && task.lostTicket ? tariff.lost_ticket_fee : 0)
  for (const adjustment of adjustments) {
    let reduction = 0
    switch (adjustment.kind) {
      case 'free_minutes': {
        if (tariff === null || graced) break
        freeMinutes += Math.max(0, adjustment.value)
        const end = Math.max(task.entryAt, task.entryAt + stayMs - freeMinutes * MINUTE)
        const parkingAfter = parkingCharge(tariff, task.timeZone, task.entryAt, end).amount
        reduction = Math.max(0, parkingNow - parkingAfter)
        parkingNow = parkingAfter
        break
      }
      case 'percentage':
        reduction = Math.round((remaining * Math.min(100, Math.max(0, adjustment.value))) / 100)
        break
      case 'fixed':
        reduction = Math.max(0, Math.round(adjustment.value))
        break
      case 'full':
        reduction = remaining
        break
    }
    reduction = Math.min(reduction, remaining)
    remaining -= reduction
    breakdown.push({ kind: adjustment.source, description: adjustment.label, amount: negative(reduction) })
  }

  return {
    currency,
    duration_minutes: Math.ceil(stayMs / MINUTE),
    base_fee: base,
    discounts: base - remaining,
    tax: 0,
    total: remaining,
    breakdown,
    tariff_id: tariff?.id ?? null,
    tariff_name: tariff?.name ?? null,
  }
}
