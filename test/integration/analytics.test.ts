import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { dayBounds, localDate } from '../../src/modules/analytics/local-day.ts'
import { connectDatabase, type Database } from '../../src/shared/mongo.ts'
import { type Account, createAccount, signInAdmin, testAdmin } from '../harness/accounts.ts'
import { createLot, enterVehicle, type TestLot, uniquePlate } from '../harness/facility.ts'
import { expectJson, json, requester } from '../harness/http.ts'
import { startTestPlatform, type TestPlatform } from '../harness/platform.ts'

// Analytics from rollups: a space history with known changes is written, the rollup job runs, and
// the trends it answers are compared with the same figures recomputed here from the raw history.

let platform: TestPlatform
let db: Database
let admin: Account
let operator: Account
let customer: Account
let lot: TestLot
let zoneB: string

const HOUR = 3_600_000

beforeAll(async () => {
  platform = await startTestPlatform({ ...testAdmin, JOBS_ENABLED: 'false' })
  db = await connectDatabase(platform.urls.mongodb)
  admin = await signInAdmin(platform)
  ;[operator, customer] = await Promise.all([
    createAccount(platform, admin, 'operator'),
    createAccount(platform, admin, 'customer'),
  ])
  // No spaces through the API: the history below is the lot's whole history.
  lot = await createLot(platform, admin, { spaces: { STANDARD: 0 }, timeZone: 'Europe/Berlin' })
  zoneB = (
    await expectJson(
      await send('POST', '/api/v1/zones', admin, { level_id: lot.levelId, name: 'Zone B' }),
      201,
    )
  ).id
}, 120_000)

afterAll(async () => {
  await db?.close()
  await platform?.stop()
})

const send = requester(() => platform)

/** A small deterministic PRNG (mulberry32), so that a failure can be replayed. */
function prng(seed: number) {
  let a = seed
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

type Row = {
  _id: string
  space_id: string
  lot_id: string
  level_id: string
  zone_id: string
  number: string
  type: string
  kind: string
  sensed_from: string
  sensed_to: string
  status_from: string
  status_to: string
  overlay: null
  at: Date
  device_id: null
  boot: null
  seq: null
  session_id: null
  recorded_at: Date
}

let sequence = 0
function row(space: { id: string; zone: string }, kind: string, from: string, to: string, at: number): Row {
  sequence += 1
  return {
    _id: `${space.id}/${at}-${String(sequence).padStart(10, '0')}`,
    space_id: space.id,
    lot_id: lot.lotId,
    level_id: lot.levelId,
    zone_id: space.zone,
    number: space.id.slice(0, 6),
    type: 'STANDARD',
    kind,
    sensed_from: from,
    sensed_to: to,
    status_from: from,
    status_to: to,
    overlay: null,
    at: new Date(at),
    device_id: null,
    boot: null,
    seq: null,
    session_id: null,
    recorded_at: new Date(at + 500),
  }
}

/** A history with known changes: spaces placed, flipping between states, one taken out. */
function makeHistory(start: number, end: number, seed: number) {
  const random = prng(seed)
  const spaces = [
    ...Array.from({ length: 4 }, () => ({ id: randomUUID(), zone: lot.zoneId })),
    ...Array.from({ length: 3 }, () => ({ id: randomUUID(), zone: zoneB })),
  ]
  const rows: Row[] = []
  const states = ['free', 'occupied', 'occupied', 'reserved', 'unknown']
  const last = new Map<string, string>()
  spaces.forEach((space, i) => {
    let at = start + i * 7 * 60_000 + Math.floor(random() * 60_000)
    rows.push(row(space, 'placed', 'unknown', 'free', at))
    let status = 'free'
    const removeAt = i === 2 ? start + 20 * HOUR + 13 * 60_000 : Number.POSITIVE_INFINITY
    for (;;) {
      at += Math.floor(random() * 95 * 60_000) + 1_000
      if (at >= end) break
      if (at >= removeAt) {
        rows.push(row(space, 'removed', status, status, removeAt))
        status = 'gone'
        break
      }
      let next = status
      while (next === status) next = states[Math.floor(random() * states.length)] ?? 'free'
      rows.push(row(space, random() < 0.2 ? 'held' : 'sensor', status, next, at))
      status = next
    }
    last.set(space.id, status)
  })
  return { spaces, rows, last }
}

/** Space-ms and occupied-ms of a scope over [from, to), straight from the rows. */
function direct(rows: readonly Row[], zone: string | null, from: number, to: number) {
  const bySpace = new Map<string, Row[]>()
  for (const r of rows) {
    if (zone !== null && r.zone_id !== zone) continue
    const list = bySpace.get(r.space_id) ?? []
    list.push(r)
    bySpace.set(r.space_id, list)
  }
  let space = 0
  let occupied = 0
  let reserved = 0
  for (const list of bySpace.values()) {
    list.sort((a, b) => a.at.getTime() - b.at.getTime())
    for (let i = 0; i < list.length; i++) {
      const change = list[i] as Row
      if (change.kind === 'removed') continue
      const begin = change.at.getTime()
      const finish = list[i + 1]?.at.getTime() ?? Number.POSITIVE_INFINITY
      const overlap = Math.max(0, Math.min(finish, to) - Math.max(begin, from))
      space += overlap
      if (change.status_to === 'occupied') occupied += overlap
      if (change.status_to === 'reserved') reserved += overlap
    }
  }
  return { space, occupied, reserved }
}

const round4 = (x: number) => Math.round(x * 10_000) / 10_000

describe('occupancy trends from the rollups', () => {
  // The history lies a day before today, as when this test was written, moved by whole days: the
  // rollup walks a day at a time from the first history row up to now, so fixed dates made every
  // run a day slower, until the hooks timed out (17 days later).
  const DAY = 24 * HOUR
  const shift = Math.max(0, Math.floor((Date.now() - Date.parse('2026-11-21T00:00:00Z')) / DAY)) * DAY
  const at = (instant: string) => Date.parse(instant) + shift
  const isoAt = (instant: string) => new Date(at(instant)).toISOString()
  const dayOf = (date: string) => localDate(new Date(at(`${date}T12:00:00Z`)), 'Europe/Berlin')
  const start = at('2026-11-18T20:07:00Z')
  const end = at('2026-11-20T15:00:00Z')
  let history: ReturnType<typeof makeHistory>
  let now: Date
  let rolledTo: number

  beforeAll(async () => {
    history = makeHistory(start, end, 20261025)
    await db.collection('space_history').insertMany(history.rows as never[])
    now = new Date()
    rolledTo = Math.floor((now.getTime() - 2 * 60_000) / (15 * 60_000)) * 15 * 60_000
    const result = await platform.services.analytics.runRollup(now)
    expect(result.buckets).toBeGreaterThan(0)
  }, 60_000)

  const trends = async (query: string) =>
    await expectJson(await send('GET', `/api/v1/analytics/trends?${query}`, operator))

  it.each([
    ['the lot', () => `lot_id=${lot.lotId}`, () => null],
    ['a zone', () => `zone_id=${lot.zoneId}`, () => lot.zoneId],
    ['the other zone', () => `zone_id=${zoneB}`, () => zoneB],
  ])('by hour, %s equals the history recomputed', async (_, scope, zone) => {
    const from = isoAt('2026-11-18T18:00:00Z')
    const to = isoAt('2026-11-20T18:00:00Z')
    const body = await trends(`${scope()}&from=${from}&to=${to}&granularity=hour`)
    const expected: { period: string; occupancy: number }[] = []
    for (let t = Date.parse(from); t < Date.parse(to); t += HOUR) {
      const d = direct(history.rows, zone(), t, t + HOUR)
      if (d.space > 0)
        expected.push({ period: new Date(t).toISOString(), occupancy: round4(d.occupied / d.space) })
    }
    expect(expected.length).toBeGreaterThan(40)
    expect(body.data.map((p: { period: string }) => p.period)).toEqual(expected.map((p) => p.period))
    body.data.forEach((p: { occupancy: number; reserved: number; period: string }, i: number) => {
      expect(p.occupancy, p.period).toBeCloseTo(expected[i]?.occupancy ?? -1, 3)
    })
  })

  it('by day, days are Berlin days', async () => {
    // From midnight to midnight in Berlin (23:00Z to 23:00Z in November).
    const days = ['2026-11-18', '2026-11-19', '2026-11-20'].map(dayOf)
    const from = dayBounds(days[0] as string, 'Europe/Berlin').start
    const to = dayBounds(days[2] as string, 'Europe/Berlin').end
    expect(from.getUTCHours()).not.toBe(0) // a Berlin midnight is never a UTC one
    const body = await trends(
      `lot_id=${lot.lotId}&from=${from.toISOString()}&to=${to.toISOString()}&granularity=day`,
    )
    expect(body.time_zone).toBe('Europe/Berlin')
    const expected = days.map((date) => {
      const { start: s, end: e } = dayBounds(date, 'Europe/Berlin')
      const d = direct(history.rows, null, s.getTime(), e.getTime())
      return {
        period: date,
        start: s.toISOString(),
        occupancy: round4(d.occupied / d.space),
        reserved: round4(d.reserved / d.space),
      }
    })
    expect(body.data.map((p: { period: string }) => p.period)).toEqual(expected.map((p) => p.period))
    body.data.forEach((p: { occupancy: number; reserved: number; start: string }, i: number) => {
      expect(p.start).toBe(expected[i]?.start)
      expect(p.occupancy).toBeCloseTo(expected[i]?.occupancy ?? -1, 3)
      expect(p.reserved).toBeCloseTo(expected[i]?.reserved ?? -1, 3)
    })
  })

  it('serves the predictions port: 15-minute points of a scope, and its share occupied now', async () => {
    const from = new Date(at('2026-11-19T10:00:00Z'))
    const points = await platform.services.analytics.series.series(
      { kind: 'zone', id: zoneB },
      from,
      new Date(at('2026-11-19T12:00:00Z')),
    )
    expect(points).toHaveLength(8)
    points.forEach((p, i) => {
      const t = from.getTime() + i * 15 * 60_000
      const d = direct(history.rows, zoneB, t, t + 15 * 60_000)
      expect(p.at.getTime()).toBe(t)
      expect(p.occupancy).toBeCloseTo(d.occupied / d.space, 6)
      expect(p.total).toBe(3)
    })
    expect(await platform.services.analytics.series.current({ kind: 'zone', id: zoneB })).toMatchObject({
      occupancy: 0,
      total: 0,
    })
  })

  it('runs twice as once, and counts a row the persister wrote late', async () => {
    const snapshot = async () =>
      (await db.collection('occupancy_rollups').find({ lot_id: lot.lotId }).sort({ _id: 1 }).toArray()).map(
        ({ updated_at: _, ...rest }) => rest,
      )
    const before = await snapshot()
    await platform.services.analytics.runRollup(now)
    await platform.services.analytics.runRollup(now)
    expect(await snapshot()).toEqual(before)
    // Buckets end with the last whole one before now less the settle time.
    const newest = Math.max(...before.map((b) => (b.at as Date).getTime()))
    expect(newest).toBe(rolledTo - 15 * 60_000)

    // A change 40 minutes ago, written only now: within the lookback, so its buckets are redone.
    const space = history.spaces[0] as { id: string; zone: string }
    const lastStatus = history.last.get(space.id) as string
    const lateAt = rolledTo - 40 * 60_000
    const late = row(space, 'sensor', lastStatus, lastStatus === 'occupied' ? 'free' : 'occupied', lateAt)
    await db.collection('space_history').insertOne(late as never)
    await platform.services.analytics.runRollup(now)
    const rows = [...history.rows, late]
    const points = await platform.services.analytics.series.series(
      { kind: 'zone', id: lot.zoneId },
      new Date(rolledTo - HOUR),
      new Date(rolledTo),
    )
    expect(points).toHaveLength(4)
    points.forEach((p) => {
      const d = direct(rows, lot.zoneId, p.at.getTime(), p.at.getTime() + 15 * 60_000)
      expect(p.occupancy).toBeCloseTo(d.occupied / d.space, 6)
    })
    expect(points.at(-1)?.occupancy).not.toBeCloseTo(
      direct(history.rows, lot.zoneId, rolledTo - 15 * 60_000, rolledTo).occupied / (3 * 15 * 60_000),
      6,
    )
  })
})

describe('revenue and stays from the daily rollups', () => {
  it('answers the day by payment method and lot, average stay and turnover', async () => {
    const paidLot = await createLot(platform, admin, {
      spaces: { STANDARD: 4 },
      currency: 'EUR',
      timeZone: 'Europe/Berlin',
    })
    await expectJson(
      await send('POST', '/api/v1/rates', admin, {
        name: 'Hourly',
        lot_id: paidLot.lotId,
        rate_type: 'hourly',
        amount: 400,
        grace_period_minutes: 0,
        effective_from: '2024-01-01T00:00:00Z',
      }),
      201,
    )
    const a = await enterVehicle(platform, operator, { license_plate: uniquePlate(), lot_id: paidLot.lotId })
    await enterVehicle(platform, operator, { license_plate: uniquePlate(), lot_id: paidLot.lotId })
    const paid = await expectJson(
      await send('POST', '/api/v1/payments', operator, { session_id: a.session.id, payment_method: 'cash' }),
      201,
    )
    await expectJson(
      await send('POST', '/api/v1/sessions/exit', operator, {
        ticket_number: a.ticket_number,
        exit_gate: 'A',
      }),
    )
    await platform.services.analytics.runRollup()
    await platform.services.analytics.runRollup()

    const today = localDate(new Date(), 'Europe/Berlin')
    const revenue = await expectJson(
      await send('GET', `/api/v1/analytics/revenue?lot_id=${paidLot.lotId}&from=${today}&to=${today}`, admin),
    )
    expect(revenue.data).toEqual([
      {
        date: today,
        lot_id: paidLot.lotId,
        method: 'cash',
        currency: 'EUR',
        amount: paid.amount,
        refunded: 0,
        net: paid.amount,
        payments: 1,
      },
    ])
    expect(revenue.totals).toEqual([
      { currency: 'EUR', amount: paid.amount, refunded: 0, net: paid.amount, payments: 1 },
    ])
    const stays = await expectJson(
      await send(
        'GET',
        `/api/v1/analytics/stays?lot_id=${paidLot.lotId}&from=${today}&to=${today}`,
        operator,
      ),
    )
    expect(stays.data).toEqual([
      {
        date: today,
        lot_id: paidLot.lotId,
        entries: 2,
        exits: 1,
        average_stay_minutes: 0,
        spaces: 4,
        turnover: 0.25,
      },
    ])
    const stats = await expectJson(
      await send('GET', `/api/v1/analytics/occupancy?lot_id=${paidLot.lotId}`, operator),
    )
    expect(stats.data).toHaveLength(1)
    expect(stats.data[0]).toMatchObject({ lot_id: paidLot.lotId, total: 4, occupied: 1, occupancy_rate: 25 })
    expect(stats.data[0].levels).toEqual([
      expect.objectContaining({ level_id: paidLot.levelId, total: 4, occupied: 1 }),
    ])
    expect(stats.data[0].zones).toEqual([
      expect.objectContaining({ zone_id: paidLot.zoneId, total: 4, occupied: 1 }),
    ])
  })
})

describe('daily rollups from the facts', () => {
  it('count a fact whose hook failed after the day was built, today and yesterday, once', async () => {
    const quiet = await createLot(platform, admin, { spaces: { STANDARD: 1 }, timeZone: 'Europe/Berlin' })
    const now = new Date()
    const today = localDate(now, 'Europe/Berlin')
    const yesterdayNoon = new Date(dayBounds(today, 'Europe/Berlin').start.getTime() - 12 * HOUR)
    const yesterday = localDate(yesterdayNoon, 'Europe/Berlin')
    // Both days are built (empty) by a first run.
    await platform.services.analytics.runRollup(now)
    // Two payments settle, and their hooks fail (nobody tells the counters).
    const payment = (amount: number, at: Date) => ({
      _id: randomUUID(),
      lot_id: quiet.lotId,
      method: 'card',
      amount,
      currency: 'EUR',
      settled_at: at,
      duplicate: false,
    })
    await db
      .collection('payments')
      .insertMany([payment(700, now) as never, payment(300, yesterdayNoon) as never])
    await platform.services.analytics.runRollup(now)
    await platform.services.analytics.runRollup(now)
    const revenue = await expectJson(
      await send(
        'GET',
        `/api/v1/analytics/revenue?lot_id=${quiet.lotId}&from=${yesterday}&to=${today}`,
        admin,
      ),
    )
    expect(revenue.data.map((d: { date: string; amount: number }) => [d.date, d.amount])).toEqual([
      [yesterday, 300],
      [today, 700],
    ])
  })
})

describe('daily rollups after the job stopped', () => {
  it('are written from the newest one up to today, at most 7 days back', async () => {
    const idle = await createLot(platform, admin, { spaces: { STANDARD: 1 }, timeZone: 'Europe/Berlin' })
    const now = new Date()
    const today = localDate(now, 'Europe/Berlin')
    const daysBack = (n: number) => {
      let date = today
      for (let i = 0; i < n; i++)
        date = localDate(new Date(dayBounds(date, 'Europe/Berlin').start.getTime() - 1), 'Europe/Berlin')
      return date
    }
    const noonOf = (date: string) => new Date(dayBounds(date, 'Europe/Berlin').start.getTime() + 12 * HOUR)
    // The job last wrote this lot's day 10 days ago, then stopped.
    await db.collection('daily_rollups').insertOne({
      _id: `${idle.lotId}:${daysBack(10)}`,
      lot_id: idle.lotId,
      date: daysBack(10),
      time_zone: 'Europe/Berlin',
      entries: 0,
      exits: 0,
      revenue: [],
      stays: 0,
      stay_minutes: 0,
      spaces: 1,
      updated_at: noonOf(daysBack(10)),
    } as never)
    const payment = (amount: number, at: Date) => ({
      _id: randomUUID(),
      lot_id: idle.lotId,
      method: 'cash',
      amount,
      currency: 'EUR',
      settled_at: at,
      duplicate: false,
    })
    await db
      .collection('payments')
      .insertMany([
        payment(900, noonOf(daysBack(9))) as never,
        payment(500, noonOf(daysBack(3))) as never,
        payment(200, now) as never,
      ])
    await platform.services.analytics.runRollup(now)
    const q = `lot_id=${idle.lotId}&from=${daysBack(10)}&to=${today}`
    const stays = await expectJson(await send('GET', `/api/v1/analytics/stays?${q}`, admin))
    expect(stays.data.map((d: { date: string }) => d.date)).toEqual([
      daysBack(10),
      ...[6, 5, 4, 3, 2, 1, 0].map(daysBack),
    ])
    const revenue = await expectJson(await send('GET', `/api/v1/analytics/revenue?${q}`, admin))
    expect(revenue.data.map((d: { date: string; amount: number }) => [d.date, d.amount])).toEqual([
      [daysBack(3), 500],
      [today, 200],
    ])
  })
})

describe('access and validation', () => {
  const routes = [
    '/api/v1/analytics/occupancy',
    `/api/v1/analytics/trends?lot_id=${randomUUID()}`,
    '/api/v1/analytics/revenue',
    '/api/v1/analytics/stays',
  ]
  it.each(routes)('%s: customers 403, nobody 401', async (path) => {
    expect((await send('GET', path, customer)).status).toBe(403)
    expect((await send('GET', path, undefined)).status).toBe(401)
  })

  it.each([
    ['both scopes', () => `lot_id=${lot.lotId}&zone_id=${lot.zoneId}`, 'lot_id'],
    ['no scope', () => '', 'lot_id'],
    ['to before from', () => `lot_id=${lot.lotId}&from=2026-11-20T00:00:00Z&to=2026-11-19T00:00:00Z`, 'to'],
    ['over a year', () => `lot_id=${lot.lotId}&from=2024-01-01T00:00:00Z&to=2026-01-01T00:00:00Z`, 'to'],
    ['a bad granularity', () => `lot_id=${lot.lotId}&granularity=week`, 'granularity'],
    ['a bad instant', () => `lot_id=${lot.lotId}&from=yesterday`, 'from'],
  ])('trends: 400 for %s', async (_, query, field) => {
    const res = await send('GET', `/api/v1/analytics/trends?${query()}`, admin)
    expect(res.status).toBe(400)
    expect((await json(res)).errors[0]).toMatchObject({ field })
  })

  it('answers 404 for an unknown lot or zone, 400 for bad dates', async () => {
    expect((await send('GET', `/api/v1/analytics/trends?zone_id=${randomUUID()}`, admin)).status).toBe(404)
    expect((await send('GET', `/api/v1/analytics/occupancy?lot_id=${randomUUID()}`, admin)).status).toBe(404)
    expect((await send('GET', `/api/v1/analytics/revenue?lot_id=${randomUUID()}`, admin)).status).toBe(404)
    expect((await send('GET', '/api/v1/analytics/revenue?from=2026-13-01', admin)).status).toBe(400)
    expect((await send('GET', '/api/v1/analytics/stays?from=2026-02-01&to=2026-01-01', admin)).status).toBe(
      400,
    )
  })
})
