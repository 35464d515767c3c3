import { describe, expect, it } from 'vitest'
import { dayBounds, localDate } from '../../src/modules/analytics/local-day.ts'
import { monthBounds } from '../../src/modules/jobs/monthly-report.ts'

// Local days in a facility's time zone, including where daylight saving starts at midnight (the
// local midnight does not exist: the day starts at the change).

const iso = (b: { start: Date; end: Date }) => ({ start: b.start.toISOString(), end: b.end.toISOString() })

describe('dayBounds', () => {
  it('starts America/Santiago 2026-09-06 at the change (00:00 -04 becomes 01:00 -03), 23 hours long', () => {
    const day = dayBounds('2026-09-06', 'America/Santiago')
    expect(iso(day)).toEqual({ start: '2026-09-06T04:00:00.000Z', end: '2026-09-07T03:00:00.000Z' })
    expect(localDate(day.start, 'America/Santiago')).toBe('2026-09-06')
    expect(localDate(new Date(day.start.getTime() - 1), 'America/Santiago')).toBe('2026-09-05')
    // The day before ends where this one starts: 24 hours of -04.
    expect(iso(dayBounds('2026-09-05', 'America/Santiago'))).toEqual({
      start: '2026-09-05T04:00:00.000Z',
      end: '2026-09-06T04:00:00.000Z',
    })
  })

  it('starts America/Havana 2026-03-08 at the change (00:00 -05 becomes 01:00 -04)', () => {
    const day = dayBounds('2026-03-08', 'America/Havana')
    expect(iso(day)).toEqual({ start: '2026-03-08T05:00:00.000Z', end: '2026-03-09T04:00:00.000Z' })
  })

  it('keeps Berlin days at local midnight, 25 hours on 2026-10-25 and 23 on 2026-03-29', () => {
    expect(iso(dayBounds('2026-10-25', 'Europe/Berlin'))).toEqual({
      start: '2026-10-24T22:00:00.000Z',
      end: '2026-10-25T23:00:00.000Z',
    })
    expect(iso(dayBounds('2026-03-29', 'Europe/Berlin'))).toEqual({
      start: '2026-03-28T23:00:00.000Z',
      end: '2026-03-29T22:00:00.000Z',
    })
    expect(iso(dayBounds('2026-07-01', 'Europe/Berlin'))).toEqual({
      start: '2026-06-30T22:00:00.000Z',
      end: '2026-07-01T22:00:00.000Z',
    })
  })

  it('gives every instant of a year the day whose bounds hold it (Santiago, Havana, Berlin)', () => {
    for (const zone of ['America/Santiago', 'America/Havana', 'Europe/Berlin']) {
      for (let t = Date.UTC(2026, 0, 1); t < Date.UTC(2027, 0, 1); t += 3 * 3600_000 + 17 * 60_000) {
        const at = new Date(t)
        const { start, end } = dayBounds(localDate(at, zone), zone)
        expect(start <= at && at < end, `${zone} ${at.toISOString()}`).toBe(true)
      }
    }
  })
})

describe('monthBounds (the monthly report) uses the same local days', () => {
  it('starts months at the local day start', () => {
    expect(iso(monthBounds('2026-09', 'America/Santiago'))).toEqual({
      start: dayBounds('2026-09-01', 'America/Santiago').start.toISOString(),
      end: dayBounds('2026-10-01', 'America/Santiago').start.toISOString(),
    })
    expect(iso(monthBounds('2026-10', 'Europe/Berlin'))).toEqual({
      start: '2026-09-30T22:00:00.000Z',
      end: '2026-10-31T23:00:00.000Z',
    })
  })
})
