import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { OccupancyPoint } from '../../src/modules/analytics/analytics.contract.ts'
import { localTimeIn, predict } from '../../src/modules/analytics/forecast.ts'
import { createPredictionsService } from '../../src/modules/analytics/predictions.service.ts'
import { AppError } from '../../src/shared/errors.ts'
import { connectDatabase, type Database } from '../../src/shared/mongo.ts'
import { type Account, createAccount, signInAdmin, testAdmin } from '../harness/accounts.ts'
import { createLot, enterVehicle, type TestLot, uniquePlate } from '../harness/facility.ts'
import { json, requester } from '../harness/http.ts'
import { startTestPlatform, type TestPlatform } from '../harness/platform.ts'

// The forecast over real rollups: three weeks of 15-minute buckets written where the rollup job
// writes them (occupancy_rollups), read back through the analytics port by the platform's service.

const BUCKET = 15 * 60_000
const SPACES = 10
const TIME_ZONE = 'Europe/Berlin'

let platform: TestPlatform
let db: Database
let admin: Account
let operator: Account
let customer: Account
let lot: TestLot
let otherLot: TestLot

/** A weekly rhythm by local weekday and time: a morning peak on workdays, a Saturday afternoon. */
function pattern(weekday: number, minute: number): number {
  const morning = weekday < 5 ? 0.7 * Math.exp(-0.5 * ((minute - 540) / 60) ** 2) : 0
  const saturday = weekday === 5 ? 0.5 * Math.exp(-0.5 * ((minute - 900) / 90) ** 2) : 0
  return 0.1 + 0.02 * weekday + morning + saturday
}

const local = localTimeIn(TIME_ZONE)
const history: { zone: OccupancyPoint[]; lot: OccupancyPoint[] } = { zone: [], lot: [] }

/** The rollup documents of a scope from `from` to `to`, as the rollup job writes them. */
function rollups(kind: 'lot' | 'zone', id: string, lotId: string, from: number, to: number) {
  const docs = []
  const points: OccupancyPoint[] = []
  for (let at = from; at < to; at += BUCKET) {
    const t = local(at + BUCKET / 2)
    const spaceMs = SPACES * BUCKET
    const occupiedMs = Math.round(pattern(t.weekday, t.minute) * spaceMs)
    const start = new Date(at)
    docs.push({
      _id: `${kind}:${id}:${start.toISOString()}`,
      scope_kind: kind,
      scope_id: id,
      lot_id: lotId,
      at: start,
      space_ms: spaceMs,
      occupied_ms: occupiedMs,
      reserved_ms: 0,
      updated_at: new Date(),
    })
    points.push({ at: start, occupancy: occupiedMs / spaceMs, total: SPACES })
  }
  return { docs, points }
}

/** Local midnight of the day `days` before today, as a UTC instant (the bucket grid is whole hours here). */
function localMidnight(daysAgo: number): number {
  const now = Math.floor(Date.now() / BUCKET) * BUCKET
  let at = now - Math.round(local(now).minute / 15) * BUCKET
  for (let i = 0; i < daysAgo; i++) {
    at -= 24 * 3_600_000
    // Across a daylight-saving change the local midnight moves by an hour.
    const off = Math.round(local(at).minute / 15) * BUCKET
    if (off > 12 * 3_600_000) at += 24 * 3_600_000 - off
    else at -= off
  }
  return at
}

beforeAll(async () => {
  platform = await startTestPlatform(testAdmin)
  db = await connectDatabase(platform.urls.mongodb)
  admin = await signInAdmin(platform)
  ;[operator, customer] = await Promise.all([
    createAccount(platform, admin, 'operator'),
    createAccount(platform, admin, 'customer'),
  ])
  lot = await createLot(platform, admin, { spaces: { STANDARD: SPACES }, timeZone: TIME_ZONE })
  otherLot = await createLot(platform, admin, { spaces: { STANDARD: 2 } })
  const from = localMidnight(21)
  const to = localMidnight(0)
  const zone = rollups('zone', lot.zoneId, lot.lotId, from, to)
  const whole = rollups('lot', lot.lotId, lot.lotId, from, to)
  history.zone = zone.points
  history.lot = whole.points
  const collection = db.collection('occupancy_rollups')
  for (const docs of [zone.docs, whole.docs]) {
    for (let i = 0; i < docs.length; i += 1_000)
      await collection.insertMany(docs.slice(i, i + 1_000) as never[])
  }
  // One car in: the current occupancy comes from the hot state, not from the rollups.
  await enterVehicle(platform, operator, { license_plate: uniquePlate(), lot_id: lot.lotId })
})
afterAll(async () => {
  await db?.close()
  await platform?.stop()
})

const send = requester(() => platform)
const get = (query: string, account: Account | null = operator) =>
  send('GET', `/api/v1/analytics/predictions${query}`, account)

describe('GET /analytics/predictions', () => {
  it.each(['zone', 'lot'] as const)(
    'forecasts a %s from its rollups and its current occupancy',
    async (kind) => {
      const query = kind === 'zone' ? `?zone_id=${lot.zoneId}` : `?lot_id=${lot.lotId}`
      const res = await get(query)
      expect(res.status).toBe(200)
      const body = await json(res)
      expect(body).toMatchObject({
        scope: { kind, id: kind === 'zone' ? lot.zoneId : lot.lotId },
        lot_id: lot.lotId,
        time_zone: TIME_ZONE,
        model: 'weekday_profile_trend_v1',
        history_days: 21,
        total_spaces: SPACES,
        step_minutes: 15,
        horizon_minutes: 60,
        current: { occupied: 1, occupancy: 0.1 },
      })
      expect(body.points.map((p: { minutes_ahead: number }) => p.minutes_ahead)).toEqual([0, 15, 30, 45, 60])
      expect(body.points[0]).toMatchObject({
        occupancy: 0.1,
        expected_occupied: 1,
        expected_free: 9,
        basis: 'last_value',
      })

      // The same as the pure model over the same history, seen from the same instant.
      const expected = predict({
        history: kind === 'zone' ? history.zone : history.lot,
        timeZone: TIME_ZONE,
        current: { at: Date.parse(body.generated_at), occupancy: 0.1 },
        horizonMinutes: 60,
      })
      expect(body.decay_per_step).toBe(expected.decay)
      body.points.forEach((p: { at: string; occupancy: number; basis: string }, i: number) => {
        expect(p.at).toBe(expected.points[i]?.at.toISOString())
        expect(p.occupancy).toBeCloseTo(expected.points[i]?.occupancy as number, 4)
        if (i > 0) expect(p.basis).toBe('weekday_time_of_day')
      })

      // Tomorrow, hour by hour: the model's, and the weekly rhythm but for what is left of now's gap
      // (large on a workday morning, when the pattern peaks and the current occupancy is 0.1).
      expect(body.next_day.date).toBe(expected.next_day.date)
      expect(body.next_day.points.length).toBeGreaterThanOrEqual(23)
      const generatedAt = Date.parse(body.generated_at)
      const nowLocal = local(generatedAt)
      const gapNow = 0.1 - pattern(nowLocal.weekday, nowLocal.minute)
      const hours = body.next_day.points as { at: string; hour: number; occupancy: number }[]
      hours.forEach((hour, i) => {
        const start = Date.parse(hour.at)
        const buckets = [0, 1, 2, 3].map((k) => {
          const t = local(start + k * BUCKET + BUCKET / 2)
          return pattern(t.weekday, t.minute)
        })
        expect(local(start).minute).toBe(hour.hour * 60)
        expect(hour.occupancy).toBeCloseTo(expected.next_day.points[i]?.occupancy as number, 4)
        const rhythm = buckets.reduce((a, b) => a + b) / 4
        const leftOfGap = Math.abs(gapNow) * expected.decay ** ((start - generatedAt) / BUCKET)
        expect(Math.abs(hour.occupancy - rhythm), hour.at).toBeLessThanOrEqual(leftOfGap + 0.01)
      })
    },
  )

  it('takes a shorter horizon', async () => {
    const res = await get(`?zone_id=${lot.zoneId}&horizon_minutes=30`)
    expect(res.status).toBe(200)
    const body = await json(res)
    expect(body.points.map((p: { minutes_ahead: number }) => p.minutes_ahead)).toEqual([0, 15, 30])
  })

  it('falls back to the last value for a scope without rollups', async () => {
    const res = await get(`?lot_id=${otherLot.lotId}`)
    expect(res.status).toBe(200)
    const body = await json(res)
    expect(body.history_days).toBe(0)
    expect(body.points.every((p: { basis: string; occupancy: number }) => p.basis === 'last_value')).toBe(
      true,
    )
    expect(body.next_day.points.every((p: { basis: string }) => p.basis === 'last_value')).toBe(true)
  })

  it.each([
    ['neither lot_id nor zone_id', '', 'lot_id'],
    [
      'a horizon off the 15-minute grid',
      `?lot_id=${'00000000-0000-7000-8000-000000000000'}&horizon_minutes=20`,
      'horizon_minutes',
    ],
    [
      'a horizon beyond an hour',
      `?lot_id=${'00000000-0000-7000-8000-000000000000'}&horizon_minutes=75`,
      'horizon_minutes',
    ],
    ['a lot id that is no uuid', '?lot_id=lot-1', 'lot_id'],
    ['a zone id that is no uuid', '?zone_id=1', 'zone_id'],
  ])('refuses %s with 400 naming the field', async (_, query, field) => {
    const res = await get(query)
    expect(res.status).toBe(400)
    const body = await json(res)
    expect(body.code).toBe('VALIDATION_FAILED')
    expect(body.errors.map((e: { field: string }) => e.field)).toContain(field)
  })

  it.each([
    ['an unknown lot', () => `?lot_id=0190f0f0-0000-7000-8000-000000000001`],
    ['an unknown zone', () => `?zone_id=0190f0f0-0000-7000-8000-000000000002`],
    ['a zone of another lot', () => `?lot_id=${otherLot.lotId}&zone_id=${lot.zoneId}`],
  ])('answers 404 for %s', async (_, query) => {
    const res = await get(query())
    expect(res.status).toBe(404)
    expect((await json(res)).code).toBe('NOT_FOUND')
  })

  it.each([
    ['anonymous', () => null, 401],
    ['a customer', () => customer, 403],
    ['an operator', () => operator, 200],
    ['an admin', () => admin, 200],
  ])('%s gets %s', async (_, who, status) => {
    const res = await get(`?zone_id=${lot.zoneId}`, who())
    expect(res.status).toBe(status)
  })

  it('is documented with its parameters and roles', async () => {
    const doc = await json(await platform.request('/openapi.json'))
    const operation = doc.paths['/api/v1/analytics/predictions'].get
    expect(operation.operationId).toBe('getOccupancyPredictions')
    expect(operation.parameters.map((p: { name: string }) => p.name).sort()).toEqual([
      'horizon_minutes',
      'lot_id',
      'zone_id',
    ])
    expect(Object.keys(operation.responses).sort()).toEqual(['200', '400', '401', '403', '404', '500', '503'])
  })
})

describe('the late-bound rollup port', () => {
  it('answers 503 until the port is there, then forecasts from it', async () => {
    let port: ReturnType<typeof fakePort> | undefined
    const service = createPredictionsService({
      series: () => port,
      facilities: platform.services.facilities,
      settings: { historyDays: 35 },
    })
    const error = await service.predict({ zone_id: lot.zoneId, horizon_minutes: 60 }).catch((e) => e)
    expect(error).toBeInstanceOf(AppError)
    expect((error as AppError).code).toBe('DEPENDENCY_UNAVAILABLE')

    port = fakePort(0.5)
    const prediction = await service.predict({ zone_id: lot.zoneId, horizon_minutes: 45 })
    expect(prediction.history_days).toBeGreaterThanOrEqual(14)
    expect(prediction.history_days).toBeLessThanOrEqual(15)
    expect(prediction.points.map((p) => p.occupancy)).toEqual([0.5, 0.5, 0.5, 0.5])
    expect(prediction.next_day.points.every((p) => p.occupancy === 0.5)).toBe(true)
    expect(port.asked[0]?.kind).toBe('zone')
    // 35 days back from the current bucket.
    expect(Date.now() - (port.asked[0]?.from.getTime() as number)).toBeGreaterThanOrEqual(35 * 86_400_000)
  })
})

/** A provided series: two flat weeks at `level`, and now at `level` too. */
function fakePort(level: number) {
  const asked: { kind: string; from: Date; to: Date }[] = []
  return {
    asked,
    async series(scope: { kind: string }, from: Date, to: Date) {
      asked.push({ kind: scope.kind, from, to })
      const end = Math.floor(to.getTime() / BUCKET) * BUCKET
      return Array.from({ length: 14 * 96 }, (_, i) => ({
        at: new Date(end - (14 * 96 - i) * BUCKET),
        occupancy: level,
        total: 4,
      }))
    },
    async current() {
      return { at: new Date(), occupancy: level, total: 4 }
    },
  }
}
