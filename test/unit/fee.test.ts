import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { pickTariff, type TariffCandidate } from '../../src/modules/pricing/pricing.service.ts'
import type { Adjustment, TariffSnapshot } from '../../src/modules/sessions/operations.contract.ts'
import { type FeeTask, formatMoney, quoteFee, type Tariff } from '../../workers/fee.ts'

// The exact fee table: every figure here is worked out by hand in the comment beside it.

const standard: Tariff = {
  id: 'tariff-1',
  name: 'Standard Hourly',
  currency: 'USD',
  rate_type: 'hourly',
  amount: 500,
  step_minutes: 60,
  grace_period_minutes: 15,
  daily_max: null,
  lost_ticket_fee: 2500,
  bands: [],
}

const snapshot = (over: Partial<Tariff> = {}) => ({ ...standard, ...over }) as unknown as TariffSnapshot

function quote(
  tariff: TariffSnapshot | null,
  entry: string,
  exit: string,
  extra: Partial<Omit<FeeTask, 'entryAt' | 'exitAt'>> = {},
) {
  return quoteFee({
    tariff,
    currency: (tariff?.currency as string | undefined) ?? 'USD',
    timeZone: 'UTC',
    entryAt: Date.parse(entry),
    exitAt: Date.parse(exit),
    lostTicket: false,
    adjustments: [],
    ...extra,
  })
}

const adjustment = (kind: Adjustment['kind'], value: number, label = `${kind} ${value}`): Adjustment => ({
  kind,
  value,
  source: 'discount',
  ref: 'CODE',
  label,
})

describe('grace period', () => {
  it('charges nothing for a stay as long as the grace period, with one grace line', () => {
    expect(quote(snapshot(), '2026-06-01T10:00:00Z', '2026-06-01T10:15:00Z')).toEqual({
      currency: 'USD',
      duration_minutes: 15,
      base_fee: 0,
      discounts: 0,
      tax: 0,
      total: 0,
      breakdown: [{ kind: 'grace', description: 'Grace period (15 min)', amount: 0 }],
      tariff_id: 'tariff-1',
      tariff_name: 'Standard Hourly',
    })
  })

  it('charges one whole step one minute over it (the grace is not deducted)', () => {
    const fee = quote(snapshot(), '2026-06-01T10:00:00Z', '2026-06-01T10:16:00Z')
    expect(fee.total).toBe(500)
    expect(fee.breakdown).toEqual([
      { kind: 'parking', description: 'Parking (1 hour(s) @ 5.00 USD/hr)', amount: 500 },
    ])
  })

  it('counts a second over the grace period as over it', () => {
    expect(quote(snapshot(), '2026-06-01T10:00:00Z', '2026-06-01T10:15:01Z').total).toBe(500)
  })
})

describe('hourly steps, rounded up', () => {
  it.each([
    ['an exact hour', '11:00:00', 1, 500],
    ['a minute into the second hour', '11:01:00', 2, 1000],
    ["seed 004's 127 minutes", '12:07:00', 3, 1500],
    ['exactly three hours', '13:00:00', 3, 1500],
    ['a second into the fourth hour', '13:00:01', 4, 2000],
  ])('%s: %i step(s), %i', (_label, exit, steps, total) => {
    const fee = quote(snapshot(), '2026-06-01T10:00:00Z', `2026-06-01T${exit}Z`)
    expect(fee.total).toBe(total)
    expect(fee.base_fee).toBe(total)
    expect(fee.breakdown).toEqual([
      { kind: 'parking', description: `Parking (${steps} hour(s) @ 5.00 USD/hr)`, amount: total },
    ])
  })

  it('counts steps of other lengths: 46 minutes in 15-minute steps are 4 steps', () => {
    const fee = quote(
      snapshot({ step_minutes: 15, amount: 150, grace_period_minutes: 0 }),
      '2026-06-01T10:00:00Z',
      '2026-06-01T10:46:00Z',
    )
    expect(fee.total).toBe(600)
    expect(fee.duration_minutes).toBe(46)
    expect(fee.breakdown).toEqual([
      { kind: 'parking', description: 'Parking (4 × 15 min @ 1.50 USD/15 min)', amount: 600 },
    ])
  })
})

describe('daily maximum and multi-day stays', () => {
  it('caps a day: 10 hours at 5.00 are 50.00, capped at 20.00', () => {
    const fee = quote(snapshot({ daily_max: 2000 }), '2026-06-01T10:00:00Z', '2026-06-01T20:00:00Z')
    expect(fee.breakdown).toEqual([
      { kind: 'parking', description: 'Parking (10 hour(s) @ 5.00 USD/hr)', amount: 5000 },
      { kind: 'daily_cap', description: 'Daily maximum 20.00 USD (1 day(s) capped)', amount: -3000 },
    ])
    expect(fee.total).toBe(2000)
    expect(fee.base_fee).toBe(2000)
  })

  it('leaves a day under the cap alone', () => {
    const fee = quote(snapshot({ daily_max: 2000 }), '2026-06-01T10:00:00Z', '2026-06-01T13:30:00Z')
    expect(fee.total).toBe(2000)
    expect(fee.breakdown.map((line) => line.kind)).toEqual(['parking'])
  })

  it('prices a multi-day stay day by day, the cap per day', () => {
    // Day 1: 14 steps (10:00-24:00) = 70.00 -> 20.00; day 2: 24 steps = 120.00 -> 20.00;
    // day 3: 12 steps (00:00-12:00) = 60.00 -> 20.00. 50 steps in all, 190.00 capped away.
    const fee = quote(snapshot({ daily_max: 2000 }), '2026-06-01T10:00:00Z', '2026-06-03T12:00:00Z')
    expect(fee.duration_minutes).toBe(3000)
    expect(fee.breakdown).toEqual([
      { kind: 'parking', description: 'Parking (50 hour(s) @ 5.00 USD/hr)', amount: 25000 },
      { kind: 'daily_cap', description: 'Daily maximum 20.00 USD (3 day(s) capped)', amount: -19000 },
    ])
    expect(fee.total).toBe(6000)
  })

  it('caps a partly used last day only as far as it is used', () => {
    // Day 1: 14 steps -> 20.00; day 2: 10:00 is 2 steps (00:00, 01:00) -> 10.00.
    const fee = quote(snapshot({ daily_max: 2000 }), '2026-06-01T10:00:00Z', '2026-06-02T01:30:00Z')
    expect(fee.total).toBe(3000)
  })

  it("takes the day in the lot's time zone, not in UTC", () => {
    // 21:00Z-02:00Z is 23:00-04:00 in Berlin (UTC+2): 1 step on June 1 (5.00) and 4 on June 2
    // (20.00, capped at 15.00) = 20.00. In UTC it is 3 steps (15.00) and 2 (10.00) = 25.00.
    const tariff = snapshot({ daily_max: 1500 })
    const task = { timeZone: 'Europe/Berlin' }
    expect(quote(tariff, '2026-06-01T21:00:00Z', '2026-06-02T02:00:00Z', task).total).toBe(2000)
    expect(quote(tariff, '2026-06-01T21:00:00Z', '2026-06-02T02:00:00Z').total).toBe(2500)
  })

  it('gives a step to the day it starts in', () => {
    // Steps at 22:30 and 23:30 on day 1, 00:30 on day 2: day 1 is 10.00, capped at 8.00.
    const fee = quote(snapshot({ daily_max: 800 }), '2026-06-01T22:30:00Z', '2026-06-02T01:00:00Z')
    expect(fee.total).toBe(800 + 500)
  })
})

describe('a stay across a daylight-saving change (Europe/Berlin)', () => {
  const berlin = { timeZone: 'Europe/Berlin' }
  const hourly = snapshot({ amount: 300, daily_max: 2000, grace_period_minutes: 0 })
  const daily = snapshot({ rate_type: 'daily', amount: 1000, grace_period_minutes: 0 })

  it('2026-10-25 has 25 hours: 24 real hours from local midnight stay within that one day', () => {
    // 00:00 CEST (22:00Z the day before) to 23:00 CET (22:00Z): 24 steps, all on October 25.
    const entry = '2026-10-24T22:00:00Z'
    const exit = '2026-10-25T22:00:00Z'
    const fee = quote(hourly, entry, exit, berlin)
    expect(fee.duration_minutes).toBe(24 * 60)
    expect(fee.breakdown).toEqual([
      { kind: 'parking', description: 'Parking (24 hour(s) @ 3.00 USD/hr)', amount: 7200 },
      { kind: 'daily_cap', description: 'Daily maximum 20.00 USD (1 day(s) capped)', amount: -5200 },
    ])
    expect(fee.total).toBe(2000)
    expect(quote(daily, entry, exit, berlin).total).toBe(1000)
    // The whole 25-hour day is still one day.
    expect(quote(hourly, entry, '2026-10-25T23:00:00Z', berlin).total).toBe(2000)
    expect(quote(daily, entry, '2026-10-25T23:00:00Z', berlin).total).toBe(1000)
  })

  it('2026-03-29 has 23 hours: 24 real hours from local midnight reach into March 30', () => {
    // 00:00 CET (23:00Z the day before) to 01:00 CEST on March 30 (23:00Z): 23 steps on March 29
    // (capped at 20.00) and one on March 30 (3.00).
    const entry = '2026-03-28T23:00:00Z'
    const exit = '2026-03-29T23:00:00Z'
    const fee = quote(hourly, entry, exit, berlin)
    expect(fee.breakdown).toEqual([
      { kind: 'parking', description: 'Parking (24 hour(s) @ 3.00 USD/hr)', amount: 7200 },
      { kind: 'daily_cap', description: 'Daily maximum 20.00 USD (1 day(s) capped)', amount: -4900 },
    ])
    expect(fee.total).toBe(2300)
    expect(quote(daily, entry, exit, berlin).total).toBe(2000)
    // The 23-hour day alone is one day.
    expect(quote(daily, entry, '2026-03-29T22:00:00Z', berlin).total).toBe(1000)
  })

  it('on an ordinary day, 24 hours from local midnight are one day', () => {
    const entry = '2026-06-09T22:00:00Z'
    const exit = '2026-06-10T22:00:00Z'
    expect(quote(hourly, entry, exit, berlin).total).toBe(2000)
    expect(quote(daily, entry, exit, berlin).total).toBe(1000)
  })

  it('reads bands in local wall-clock time on both sides of the change', () => {
    // A band 08:00-09:00 local: 06:00Z in summer (CEST), 07:00Z in winter (CET).
    const tariff = snapshot({
      grace_period_minutes: 0,
      bands: [
        {
          kind: 'price',
          name: 'Morning',
          days: ['sat', 'sun', 'mon'],
          start: '08:00',
          end: '09:00',
          step_amount: 100,
        },
      ],
    })
    expect(quote(tariff, '2026-10-24T06:00:00Z', '2026-10-24T07:00:00Z', berlin).total).toBe(100)
    expect(quote(tariff, '2026-10-26T07:00:00Z', '2026-10-26T08:00:00Z', berlin).total).toBe(100)
    expect(quote(tariff, '2026-10-26T06:00:00Z', '2026-10-26T07:00:00Z', berlin).total).toBe(500)
  })
})

describe('time-of-day and weekday bands', () => {
  const peak = snapshot({
    bands: [
      {
        kind: 'peak',
        name: 'Evening peak',
        days: ['mon', 'tue', 'wed', 'thu', 'fri'],
        start: '17:00',
        end: '19:00',
        multiplier_percent: 150,
      },
    ],
  })

  it('multiplies the steps that start in a peak band', () => {
    // Monday: 16:00 base, 17:00 and 18:00 peak (7.50), 19:00 base.
    const fee = quote(peak, '2026-06-01T16:00:00Z', '2026-06-01T19:30:00Z')
    expect(fee.breakdown).toEqual([
      { kind: 'parking', description: 'Parking (2 hour(s) @ 5.00 USD/hr)', amount: 1000 },
      {
        kind: 'peak',
        description: 'Evening peak (2 hour(s) @ 7.50 USD/hr, 150% of 5.00 USD)',
        amount: 1500,
      },
    ])
    expect(fee.total).toBe(2500)
  })

  it('leaves the weekend at the base price', () => {
    expect(quote(peak, '2026-06-06T16:00:00Z', '2026-06-06T19:30:00Z').total).toBe(2000)
  })

  it('takes the band in force at the start of a step, not at its end', () => {
    // 16:30 and 17:30 start steps: the first is base although it ends in the peak.
    expect(quote(peak, '2026-06-01T16:30:00Z', '2026-06-01T18:00:00Z').total).toBe(500 + 750)
  })

  it('prices a step in a band with its own price, over midnight', () => {
    const night = snapshot({
      bands: [
        {
          kind: 'price',
          name: 'Night',
          days: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'],
          start: '22:00',
          end: '06:00',
          step_amount: 200,
        },
      ],
    })
    // 20:00 and 21:00 base; 22:00, 23:00 and 00:00 night.
    const fee = quote(night, '2026-06-01T20:00:00Z', '2026-06-02T01:00:00Z')
    expect(fee.breakdown).toEqual([
      { kind: 'parking', description: 'Parking (2 hour(s) @ 5.00 USD/hr)', amount: 1000 },
      { kind: 'parking', description: 'Parking, Night (3 hour(s) @ 2.00 USD/hr)', amount: 600 },
    ])
    expect(fee.total).toBe(1600)
  })

  it('gives a band that runs past midnight to the weekday it starts on', () => {
    const fridayNight = snapshot({
      grace_period_minutes: 0,
      bands: [
        { kind: 'price', name: 'Friday night', days: ['fri'], start: '22:00', end: '06:00', step_amount: 0 },
      ],
    })
    // Saturday 03:00 is still Friday night; Sunday 03:00 is not (Saturday is not listed).
    expect(quote(fridayNight, '2026-06-06T03:00:00Z', '2026-06-06T04:00:00Z').total).toBe(0)
    expect(quote(fridayNight, '2026-06-07T03:00:00Z', '2026-06-07T04:00:00Z').total).toBe(500)
    expect(quote(fridayNight, '2026-06-05T21:00:00Z', '2026-06-05T23:00:00Z').total).toBe(500)
  })

  it('uses the first matching band where bands overlap, and caps banded days too', () => {
    const tariff = snapshot({
      daily_max: 1000,
      bands: [
        { kind: 'price', name: 'Lunch', days: ['mon'], start: '12:00', end: '13:00', step_amount: 100 },
        {
          kind: 'peak',
          name: 'Day peak',
          days: ['mon'],
          start: '09:00',
          end: '17:00',
          multiplier_percent: 200,
        },
      ],
    })
    // 11:00 peak (10.00), 12:00 lunch (1.00), 13:00 peak (10.00) = 21.00, capped at 10.00.
    const fee = quote(tariff, '2026-06-01T11:00:00Z', '2026-06-01T14:00:00Z')
    expect(fee.breakdown).toEqual([
      { kind: 'peak', description: 'Day peak (2 hour(s) @ 10.00 USD/hr, 200% of 5.00 USD)', amount: 2000 },
      { kind: 'parking', description: 'Parking, Lunch (1 hour(s) @ 1.00 USD/hr)', amount: 100 },
      { kind: 'daily_cap', description: 'Daily maximum 10.00 USD (1 day(s) capped)', amount: -1100 },
    ])
    expect(fee.total).toBe(1000)
  })
})

describe('flat and daily rates', () => {
  it('charges a flat rate once per stay, after the grace period', () => {
    const flat = snapshot({ rate_type: 'flat', amount: 1200 })
    expect(quote(flat, '2026-06-01T10:00:00Z', '2026-06-03T10:00:00Z').breakdown).toEqual([
      { kind: 'flat', description: 'Flat rate (12.00 USD)', amount: 1200 },
    ])
    expect(quote(flat, '2026-06-01T10:00:00Z', '2026-06-01T10:10:00Z').total).toBe(0)
  })

  it('charges a daily rate per calendar day touched', () => {
    const daily = snapshot({ rate_type: 'daily', amount: 1500, grace_period_minutes: 0 })
    // 23:00-01:00 touches two days; 00:00-24:00 one.
    expect(quote(daily, '2026-06-01T23:00:00Z', '2026-06-02T01:00:00Z').breakdown).toEqual([
      { kind: 'daily', description: 'Daily rate (2 day(s) @ 15.00 USD/day)', amount: 3000 },
    ])
    expect(quote(daily, '2026-06-01T00:00:00Z', '2026-06-02T00:00:00Z').total).toBe(1500)
  })
})

describe('currencies', () => {
  it('writes yen without decimals', () => {
    const yen = snapshot({ currency: 'JPY', amount: 300, daily_max: 1500 })
    // 09:00-16:30 in Tokyo: 8 steps of 300 yen, capped at 1500.
    const fee = quote(yen, '2026-06-01T00:00:00Z', '2026-06-01T07:30:00Z', { timeZone: 'Asia/Tokyo' })
    expect(fee).toMatchObject({ currency: 'JPY', total: 1500 })
    expect(fee.breakdown).toEqual([
      { kind: 'parking', description: 'Parking (8 hour(s) @ 300 JPY/hr)', amount: 2400 },
      { kind: 'daily_cap', description: 'Daily maximum 1500 JPY (1 day(s) capped)', amount: -900 },
    ])
  })

  it('writes euros with two decimals', () => {
    const euro = snapshot({ currency: 'EUR', amount: 250 })
    const fee = quote(euro, '2026-06-01T10:00:00Z', '2026-06-01T12:00:00Z', { timeZone: 'Europe/Paris' })
    expect(fee.currency).toBe('EUR')
    expect(fee.breakdown).toEqual([
      { kind: 'parking', description: 'Parking (2 hour(s) @ 2.50 EUR/hr)', amount: 500 },
    ])
  })

  it('formats minor units exactly, whatever the exponent', () => {
    expect(formatMoney(5, 'USD')).toBe('0.05 USD')
    expect(formatMoney(123456789, 'EUR')).toBe('1234567.89 EUR')
    expect(formatMoney(1500, 'BHD')).toBe('1.500 BHD')
    expect(formatMoney(7, 'JPY')).toBe('7 JPY')
    expect(formatMoney(-250, 'EUR')).toBe('-2.50 EUR')
  })
})

describe('lost ticket', () => {
  it('adds the fee as its own line', () => {
    const fee = quote(snapshot(), '2026-06-01T10:00:00Z', '2026-06-01T12:00:00Z', { lostTicket: true })
    expect(fee.breakdown).toEqual([
      { kind: 'parking', description: 'Parking (2 hour(s) @ 5.00 USD/hr)', amount: 1000 },
      { kind: 'lost_ticket', description: 'Lost ticket (25.00 USD)', amount: 2500 },
    ])
    expect(fee).toMatchObject({ base_fee: 3500, total: 3500 })
  })

  it('is due within the grace period too: without a ticket the entry time is only a claim', () => {
    const fee = quote(snapshot(), '2026-06-01T10:00:00Z', '2026-06-01T10:05:00Z', { lostTicket: true })
    expect(fee.breakdown.map((line) => [line.kind, line.amount])).toEqual([
      ['grace', 0],
      ['lost_ticket', 2500],
    ])
    expect(fee.total).toBe(2500)
  })
})

describe('adjustments', () => {
  // 150 minutes: 3 steps, 15.00.
  const entry = '2026-06-01T10:00:00Z'
  const exit = '2026-06-01T12:30:00Z'

  it('free minutes come off the end of the stay: 150 - 60 minutes are 2 steps', () => {
    const validation: Adjustment = {
      kind: 'free_minutes',
      value: 60,
      source: 'validation',
      ref: 'v-1',
      label: 'Validation Cinema (1 hour free)',
    }
    const fee = quote(snapshot(), entry, exit, { adjustments: [validation] })
    expect(fee.breakdown).toEqual([
      { kind: 'parking', description: 'Parking (3 hour(s) @ 5.00 USD/hr)', amount: 1500 },
      { kind: 'validation', description: 'Validation Cinema (1 hour free)', amount: -500 },
    ])
    expect(fee).toMatchObject({ base_fee: 1500, discounts: 500, total: 1000, duration_minutes: 150 })
  })

  it('free minutes longer than the stay make the parking free, not the lost-ticket fee', () => {
    const fee = quote(snapshot(), entry, exit, {
      lostTicket: true,
      adjustments: [adjustment('free_minutes', 600)],
    })
    expect(fee).toMatchObject({ base_fee: 4000, discounts: 1500, total: 2500 })
  })

  it('free minutes count against the capped day', () => {
    // 10 steps (50.00) capped at 20.00; 4 hours free leave 6 steps (30.00) capped at 20.00: no gain.
    const fee = quote(snapshot({ daily_max: 2000 }), entry, '2026-06-01T20:00:00Z', {
      adjustments: [adjustment('free_minutes', 240)],
    })
    expect(fee.breakdown.at(-1)).toEqual({ kind: 'discount', description: 'free_minutes 240', amount: 0 })
    expect(fee.total).toBe(2000)
  })

  it('a percentage reduces the total, rounded half up to a minor unit', () => {
    const fee = quote(snapshot(), entry, exit, {
      adjustments: [adjustment('percentage', 20, 'SUMMER20 (20%)')],
    })
    expect(fee.breakdown.at(-1)).toEqual({ kind: 'discount', description: 'SUMMER20 (20%)', amount: -300 })
    expect(fee).toMatchObject({ base_fee: 1500, discounts: 300, total: 1200 })
    // 33% of 15.50 is 5.115: 5.12 off.
    const odd = quote(snapshot({ amount: 775 }), entry, '2026-06-01T12:00:00Z', {
      adjustments: [adjustment('percentage', 33)],
    })
    expect(odd).toMatchObject({ base_fee: 1550, discounts: 512, total: 1038 })
  })

  it('a fixed amount reduces the total, never below zero', () => {
    expect(quote(snapshot(), entry, exit, { adjustments: [adjustment('fixed', 400)] }).total).toBe(1100)
    const fee = quote(snapshot(), entry, exit, { adjustments: [adjustment('fixed', 2000)] })
    expect(fee.breakdown.at(-1)).toEqual({ kind: 'discount', description: 'fixed 2000', amount: -1500 })
    expect(fee).toMatchObject({ base_fee: 1500, discounts: 1500, total: 0 })
  })

  it('full makes the total zero, lost-ticket fee included', () => {
    const membership: Adjustment = {
      kind: 'full',
      value: 0,
      source: 'membership',
      ref: 'm-1',
      label: 'Monthly pass',
    }
    const fee = quote(snapshot(), entry, exit, { lostTicket: true, adjustments: [membership] })
    expect(fee.breakdown.at(-1)).toEqual({ kind: 'membership', description: 'Monthly pass', amount: -4000 })
    expect(fee).toMatchObject({ base_fee: 4000, discounts: 4000, total: 0 })
  })

  it('applies free minutes, then percentages, then fixed amounts, then full, whatever the order given', () => {
    const fee = quote(snapshot(), entry, exit, {
      adjustments: [adjustment('fixed', 100), adjustment('percentage', 10), adjustment('free_minutes', 60)],
    })
    // 15.00 -> 10.00 (an hour free) -> 9.00 (10%) -> 8.00 (1.00 off).
    expect(fee.breakdown.slice(1)).toEqual([
      { kind: 'discount', description: 'free_minutes 60', amount: -500 },
      { kind: 'discount', description: 'percentage 10', amount: -100 },
      { kind: 'discount', description: 'fixed 100', amount: -100 },
    ])
    expect(fee.total).toBe(800)
  })

  it('writes a reduction of nothing as 0, never -0', () => {
    const fee = quote(snapshot(), entry, '2026-06-01T10:05:00Z', { adjustments: [adjustment('full', 0)] })
    expect(Object.is(fee.breakdown.at(-1)?.amount, 0)).toBe(true)
    expect(Object.is(fee.discounts, 0)).toBe(true)
  })
})

describe('no tariff', () => {
  it('is free, with one no_tariff line, and names no tariff', () => {
    const fee = quote(null, '2026-06-01T10:00:00Z', '2026-06-01T15:00:00Z', {
      currency: 'EUR',
      lostTicket: true,
    })
    expect(fee).toEqual({
      currency: 'EUR',
      duration_minutes: 300,
      base_fee: 0,
      discounts: 0,
      tax: 0,
      total: 0,
      breakdown: [{ kind: 'no_tariff', description: 'No tariff in force: parking is free', amount: 0 }],
      tariff_id: null,
      tariff_name: null,
    })
  })
})

describe('invariants', () => {
  const band = fc.record({
    kind: fc.constant('peak' as const),
    name: fc.constant('Peak'),
    days: fc.subarray(['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const, { minLength: 1 }),
    start: fc.constantFrom('00:00', '07:30', '17:00', '22:00'),
    end: fc.constantFrom('06:00', '09:00', '19:00', '24:00'),
    multiplier_percent: fc.integer({ min: 0, max: 300 }),
  })
  const tariffs = fc.record({
    rate_type: fc.constantFrom('hourly' as const, 'daily' as const, 'flat' as const),
    amount: fc.integer({ min: 0, max: 5000 }),
    step_minutes: fc.constantFrom(1, 15, 30, 60, 90),
    grace_period_minutes: fc.integer({ min: 0, max: 30 }),
    daily_max: fc.option(fc.integer({ min: 0, max: 20_000 })),
    lost_ticket_fee: fc.integer({ min: 0, max: 5000 }),
    bands: fc.array(band, { maxLength: 2 }),
  })
  const adjustments = fc.array(
    fc.record({
      kind: fc.constantFrom(
        'percentage' as const,
        'fixed' as const,
        'free_minutes' as const,
        'full' as const,
      ),
      value: fc.integer({ min: 0, max: 200 }),
      source: fc.constantFrom('discount' as const, 'validation' as const),
      ref: fc.constant('r'),
      label: fc.constant('x'),
    }),
    { maxLength: 3 },
  )

  it('the breakdown adds up to the total; base minus discounts is the total; nothing negative', () => {
    fc.assert(
      fc.property(
        tariffs,
        fc.integer({ min: Date.parse('2026-01-01T00:00:00Z'), max: Date.parse('2026-12-31T00:00:00Z') }),
        fc.integer({ min: 0, max: 4 * 24 * 60 }),
        fc.boolean(),
        adjustments,
        (over, entryAt, minutes, lostTicket, list) => {
          const fee = quoteFee({
            tariff: snapshot(over),
            currency: 'USD',
            timeZone: 'Europe/Berlin',
            entryAt,
            exitAt: entryAt + minutes * 60_000,
            lostTicket,
            adjustments: list,
          })
          const sum = fee.breakdown.reduce((total, line) => total + line.amount, 0)
          expect(sum).toBe(fee.total)
          expect(fee.base_fee - fee.discounts).toBe(fee.total)
          expect(fee.total).toBeGreaterThanOrEqual(0)
          expect(fee.discounts).toBeGreaterThanOrEqual(0)
          for (const line of fee.breakdown) expect(Number.isInteger(line.amount)).toBe(true)
        },
      ),
      { numRuns: 300 },
    )
  })
})

describe('pickTariff: the plan in force at entry, by priority', () => {
  const plan = (id: string, over: Partial<TariffCandidate> = {}): TariffCandidate => ({
    _id: id,
    zone_id: null,
    vehicle_type: null,
    effective_from: new Date('2026-01-01T00:00:00Z'),
    effective_to: null,
    is_active: true,
    ...over,
  })
  const query = { zoneId: 'z1', vehicleType: 'van', at: new Date('2026-06-15T12:00:00Z') }
  const pick = (plans: TariffCandidate[], q = query) => pickTariff(plans, q)?._id ?? null

  it('vehicle type + zone beats vehicle type beats zone beats generic, whatever their dates', () => {
    const later = { effective_from: new Date('2026-06-01T00:00:00Z') }
    const plans = [
      plan('generic', later),
      plan('zone', { zone_id: 'z1', ...later }),
      plan('type', { vehicle_type: 'van' }),
      plan('both', { vehicle_type: 'van', zone_id: 'z1' }),
    ]
    expect(pick(plans)).toBe('both')
    expect(pick(plans.slice(0, 3))).toBe('type')
    expect(pick(plans.slice(0, 2))).toBe('zone')
    expect(pick(plans.slice(0, 1))).toBe('generic')
  })

  it('within a level, the latest effective_from wins; on a tie, the plan made last', () => {
    expect(pick([plan('b', { effective_from: new Date('2026-03-01T00:00:00Z') }), plan('a')])).toBe('b')
    expect(pick([plan('b'), plan('c'), plan('a')])).toBe('c')
  })

  it('skips plans not in force at the instant, inactive ones, and those of another zone or type', () => {
    expect(
      pick([
        plan('future', { effective_from: new Date('2026-06-15T12:00:01Z') }),
        plan('ended', { effective_to: new Date('2026-06-15T12:00:00Z') }),
        plan('inactive', { is_active: false }),
        plan('other-zone', { zone_id: 'z2' }),
        plan('other-type', { vehicle_type: 'motorcycle' }),
      ]),
    ).toBeNull()
    expect(pick([plan('starts-now', { effective_from: query.at })])).toBe('starts-now')
  })
})
