import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { localDate } from '../../src/modules/analytics/local-day.ts'
import { connectDatabase, type Database } from '../../src/shared/mongo.ts'
import { type Account, createAccount, signInAdmin, testAdmin } from '../harness/accounts.ts'
import { createHourlyRate, createLot, enterVehicle, type TestLot, uniquePlate } from '../harness/facility.ts'
import { expectJson, json, requester } from '../harness/http.ts'
import { startTestPlatform, type TestPlatform } from '../harness/platform.ts'

// The admin dashboard: occupancy from the hot state, the lot's own "today" from counters kept by
// hooks (rebuilt from the day's facts when Redis lost them), sessions, charges and reservations.

let platform: TestPlatform
let db: Database
let admin: Account
let operator: Account
let customer: Account
let lot: TestLot

beforeAll(async () => {
  platform = await startTestPlatform({ ...testAdmin, JOBS_ENABLED: 'false' })
  db = await connectDatabase(platform.urls.mongodb)
  admin = await signInAdmin(platform)
  ;[operator, customer] = await Promise.all([
    createAccount(platform, admin, 'operator'),
    createAccount(platform, admin, 'customer'),
  ])
  lot = await createLot(platform, admin, {
    spaces: { STANDARD: 10 },
    currency: 'EUR',
    timeZone: 'Europe/Berlin',
  })
  await createHourlyRate(platform, admin, lot.lotId, 300)
}, 120_000)

afterAll(async () => {
  await db?.close()
  await platform?.stop()
})

const send = requester(() => platform)

const dashboard = async (lotId?: string) =>
  await expectJson(await send('GET', `/api/v1/reports/dashboard${lotId ? `?lot_id=${lotId}` : ''}`, admin))

describe('the dashboard of a day as it happens', () => {
  it('counts entries, exits, money, sessions, charges and reservations of the lot today', async () => {
    const sessions = []
    for (let i = 0; i < 3; i++)
      sessions.push(
        await enterVehicle(platform, operator, { license_plate: uniquePlate(), lot_id: lot.lotId }),
      )
    const first = sessions[0].session
    const paid = await expectJson(
      await send('POST', '/api/v1/payments', operator, { session_id: first.id, payment_method: 'cash' }),
      201,
    )
    expect(paid.amount).toBeGreaterThan(0)
    await expectJson(
      await send('POST', '/api/v1/sessions/exit', operator, {
        ticket_number: sessions[0].ticket_number,
        exit_gate: 'Exit A',
      }),
    )
    await expectJson(
      await send('POST', `/api/v1/payments/${paid.id}/refunds`, admin, { amount: 100, reason: 'goodwill' }),
      201,
    )

    // Charging and reservations as their capabilities record them: a running charge holds its
    // station's claim; reservations awaiting check-in have not ended.
    const now = Date.now()
    const [s1, s2] = [randomUUID(), randomUUID()]
    await db
      .collection('ev_stations')
      .insertMany([{ _id: s1, lot_id: lot.lotId } as never, { _id: s2, lot_id: lot.lotId } as never])
    await db.collection('ev_station_claims').insertOne({ _id: s1, charge_id: randomUUID() } as never)
    const reservation = (status: string, endsInMs: number) =>
      ({ _id: randomUUID(), lot_id: lot.lotId, status, end_at: new Date(now + endsInMs) }) as never
    await db
      .collection('reservations')
      .insertMany([
        reservation('confirmed', 3_600_000),
        reservation('pending_payment', 7_200_000),
        reservation('cancelled', 3_600_000),
        reservation('confirmed', -3_600_000),
        reservation('checked_in', 3_600_000),
      ])

    const body = await dashboard(lot.lotId)
    expect(body).toMatchObject({
      total_spaces: 10,
      occupied_spaces: 2,
      available_spaces: expect.any(Number),
      reserved_spaces: 0,
      occupancy_rate: 20,
      active_sessions: 2,
      today_entries: 3,
      today_exits: 1,
      today_revenue: [{ amount: paid.amount - 100, currency: 'EUR' }],
      active_ev_charging: 1,
      pending_reservations: 2,
      date: localDate(new Date(), 'Europe/Berlin'),
      time_zone: 'Europe/Berlin',
      lots: 1,
    })
    expect(Date.parse(body.as_of)).toBeGreaterThan(now - 60_000)

    // A hook told twice counts once; Redis losing the day rebuilds the same figures from facts.
    const analytics = platform.services.analytics
    const facts = await platform.services.sessions.port.facts(first.id)
    await analytics.sessionListener.sessionClosed(facts, {} as never)
    await analytics.sessionListener.sessionStarted?.(facts)
    expect(await dashboard(lot.lotId)).toMatchObject({ today_entries: 3, today_exits: 1 })
    await analytics.counters.forget(lot.lotId, body.date)
    expect(await dashboard(lot.lotId)).toMatchObject({
      today_entries: 3,
      today_exits: 1,
      today_revenue: [{ amount: paid.amount - 100, currency: 'EUR' }],
    })
  })

  it('adds up all lots, with revenue per currency when they differ', async () => {
    const other = await createLot(platform, admin, {
      spaces: { STANDARD: 4 },
      currency: 'USD',
      timeZone: 'America/New_York',
    })
    await enterVehicle(platform, operator, { license_plate: uniquePlate(), lot_id: other.lotId })
    const mine = await dashboard(lot.lotId)
    const theirs = await dashboard(other.lotId)
    const all = await dashboard()
    expect(theirs).toMatchObject({
      total_spaces: 4,
      today_entries: 1,
      today_revenue: [{ amount: 0, currency: 'USD' }],
    })
    expect(all.total_spaces).toBe(mine.total_spaces + theirs.total_spaces)
    expect(all.today_entries).toBe(mine.today_entries + theirs.today_entries)
    expect(all.today_revenue).toEqual(
      expect.arrayContaining([...mine.today_revenue, ...theirs.today_revenue]),
    )
    expect(all.time_zone).toBeNull()
  })
})

describe('money of reservations and memberships', () => {
  it('counts prepayments, their refunds and membership fees under their own method, hooks and rebuild alike', async () => {
    const mine = await createLot(platform, admin, { spaces: { STANDARD: 3 }, timeZone: 'Europe/Berlin' })
    const now = new Date()
    const today = localDate(now, 'Europe/Berlin')
    // The day is built (empty) first: from now on only the hooks count into it.
    await platform.services.analytics.counters.read(mine.lotId, today, 'Europe/Berlin')

    // A membership paid in cash: its period is paid at insert, and memberships tell it.
    const plan = await expectJson(
      await send('POST', '/api/v1/membership-plans', admin, {
        name: `Plan ${randomUUID().slice(0, 6)}`,
        lot_id: mine.lotId,
        duration_months: 1,
        price: 5000,
        vehicle_limit: 1,
        included_hours: null,
        discount_percentage: 0,
      }),
      201,
    )
    const member = await createAccount(platform, admin, 'customer')
    const car = await expectJson(
      await send('POST', '/api/v1/vehicles', member, {
        license_plate: uniquePlate(),
        vehicle_type_id: 'standard',
      }),
      201,
    )
    await expectJson(
      await send('POST', '/api/v1/memberships', operator, {
        plan_id: plan.id,
        vehicle_ids: [car.id],
        user_id: member.id,
        payment_method: 'cash',
      }),
      201,
    )

    // A prepaid reservation: Stripe says its intent succeeded, then it is cancelled in time and
    // refunded in full. Reservations tell both.
    const reservationId = randomUUID()
    const intentId = `pi_${randomUUID().replaceAll('-', '')}`
    const start = new Date(now.getTime() + 3 * 24 * 3_600_000)
    await db.collection('reservations').insertOne({
      _id: reservationId,
      confirmation_number: `RSV-${randomUUID().slice(0, 8).toUpperCase()}`,
      user_id: member.id,
      created_by: member.id,
      lot_id: mine.lotId,
      level_id: randomUUID(),
      zone_id: randomUUID(),
      space_id: randomUUID(),
      space_number: 'S-001',
      space_type: 'STANDARD',
      vehicle_id: null,
      license_plate: 'AB-1',
      plate: 'AB1',
      vehicle_type: 'standard',
      start_at: start,
      end_at: new Date(start.getTime() + 2 * 3_600_000),
      slot_ids: [],
      special_requests: null,
      status: 'pending_payment',
      prepay: true,
      amount: 1200,
      currency: 'EUR',
      payment_intent_id: intentId,
      payment_deadline: new Date(now.getTime() + 3_600_000),
      paid_at: null,
      hold_from: start,
      no_show_at: start,
      held: false,
      session_id: null,
      checked_in_at: null,
      cancelled_at: null,
      refund_amount: null,
      refund_id: null,
      created_at: now,
      updated_at: now,
    } as never)
    await db
      .collection('reservation_intents')
      .insertOne({ _id: intentId, reservation_id: reservationId, created_at: now } as never)
    const stripe = platform.stripe
    const real = { retrieveIntent: stripe.retrieveIntent, refund: stripe.refund }
    stripe.retrieveIntent = async (id) => ({
      id,
      status: 'succeeded',
      amount: 1200,
      currency: 'eur',
      client_secret: null,
      last_error: null,
    })
    stripe.refund = async () => ({ id: `re_${randomUUID()}` })
    try {
      await platform.services.reservations.onIntent(intentId)
      const cancelled = await platform.services.reservations.cancel(
        { userId: admin.id, role: 'admin' } as never,
        reservationId,
      )
      expect(cancelled).toMatchObject({ status: 'cancelled' })
    } finally {
      Object.assign(stripe, real)
    }

    const lines = async () => {
      const day = await platform.services.analytics.counters.read(mine.lotId, today, 'Europe/Berlin')
      return [...day.money.values()].sort((a, b) => a.method.localeCompare(b.method))
    }
    const expected = [
      { method: 'membership', currency: 'EUR', amount: 5000, refunded: 0, payments: 1 },
      { method: 'reservation', currency: 'EUR', amount: 1200, refunded: 1200, payments: 1 },
    ]
    expect(await lines()).toEqual(expected)
    expect((await dashboard(mine.lotId)).today_revenue).toEqual([{ amount: 5000, currency: 'EUR' }])
    // Redis losing the day: the rebuild reads the reservations' and memberships' facts too.
    await platform.services.analytics.counters.forget(mine.lotId, today)
    expect(await lines()).toEqual(expected)

    // The daily rollup and GET /analytics/revenue label them by method.
    await platform.services.analytics.runRollup(now)
    const revenue = await expectJson(
      await send('GET', `/api/v1/analytics/revenue?lot_id=${mine.lotId}&from=${today}&to=${today}`, admin),
    )
    expect(revenue.data.map((d: { method: string; net: number }) => [d.method, d.net])).toEqual([
      ['membership', 5000],
      ['reservation', 0],
    ])
    // The monthly report counts them too.
    const report = await platform.services.mailJobs.monthlyReport(today.slice(0, 7))
    expect(report.lots.find((l) => l.lot_id === mine.lotId)).toMatchObject({
      revenue_gross: 5000 + 1200,
      refunds: 1200,
    })
  })
})

describe('a duplicate payment', () => {
  it('counts neither it nor its refund, by the hooks as by the rebuild', async () => {
    const mine = await createLot(platform, admin, { spaces: { STANDARD: 2 }, timeZone: 'Europe/Berlin' })
    const now = new Date()
    const today = localDate(now, 'Europe/Berlin')
    const analytics = platform.services.analytics
    await analytics.counters.read(mine.lotId, today, 'Europe/Berlin')
    // As payments record them: a settled payment, and a second one taken for the same session,
    // marked duplicate (never settled) and refunded in full; payments tell the settlement and the refund.
    const [settled, duplicate] = [randomUUID(), randomUUID()]
    const payment = (id: string, extra: object) => ({
      _id: id,
      lot_id: mine.lotId,
      method: 'card',
      amount: 800,
      currency: 'EUR',
      ...extra,
    })
    await db
      .collection('payments')
      .insertMany([
        payment(settled, { settled_at: now, duplicate: false, status: 'succeeded' }) as never,
        payment(duplicate, { settled_at: null, duplicate: true, status: 'refunded' }) as never,
      ])
    await db.collection('refunds').insertOne({
      _id: `${duplicate}:0`,
      payment_id: duplicate,
      amount: 800,
      currency: 'EUR',
      created_at: now,
    } as never)
    const told = { lot_id: mine.lotId, method: 'card', currency: 'EUR', amount: 800, at: now }
    await analytics.moneyMoved({ kind: 'settled', id: settled, payment_id: settled, ...told })
    await analytics.moneyMoved({ kind: 'refunded', id: `${duplicate}:0`, payment_id: duplicate, ...told })

    const net = async () => (await dashboard(mine.lotId)).today_revenue
    const byHooks = await net()
    await analytics.counters.forget(mine.lotId, today)
    const byRebuild = await net()
    expect(byHooks).toEqual([{ amount: 800, currency: 'EUR' }])
    expect(byRebuild).toEqual(byHooks)
    // And the monthly report, alike.
    const report = await platform.services.mailJobs.monthlyReport(today.slice(0, 7))
    expect(report.lots.find((l) => l.lot_id === mine.lotId)).toMatchObject({ revenue_gross: 800, refunds: 0 })
  })
})

describe('live counts', () => {
  it('are cached per lot for 30 s: a second dashboard within the window does not count again', async () => {
    const busy = await createLot(platform, admin, { spaces: { STANDARD: 3 } })
    await enterVehicle(platform, operator, { license_plate: uniquePlate(), lot_id: busy.lotId })
    expect(await dashboard(busy.lotId)).toMatchObject({ active_sessions: 1, pending_reservations: 0 })
    // Written behind the platform's back: a recount would see them, the cached figures do not.
    await db
      .collection('sessions')
      .insertOne({ _id: randomUUID(), lot_id: busy.lotId, status: 'active', entry_at: new Date() } as never)
    await db.collection('reservations').insertOne({
      _id: randomUUID(),
      lot_id: busy.lotId,
      status: 'confirmed',
      end_at: new Date(Date.now() + 3_600_000),
    } as never)
    expect(await dashboard(busy.lotId)).toMatchObject({ active_sessions: 1, pending_reservations: 0 })
    const redis = new Redis(platform.urls.redis)
    try {
      // The platform's keys carry its test prefix.
      const [key] = await redis.keys(`*ana:live:${busy.lotId}`)
      expect(key).toBeDefined()
      const ttl = await redis.ttl(key as string)
      expect(ttl).toBeGreaterThan(20)
      expect(ttl).toBeLessThanOrEqual(30)
      await redis.del(key as string) // the window is over
    } finally {
      redis.disconnect()
    }
    expect(await dashboard(busy.lotId)).toMatchObject({ active_sessions: 2, pending_reservations: 1 })
  })
})

describe("today is the lot's local day, across a daylight-saving change", () => {
  // Europe/Berlin on 2026-10-25 runs from 2026-10-24T22:00Z (CEST) to 2026-10-25T23:00Z (CET): 25 hours.
  it('counts the facts of 2026-10-25 in Berlin, not of a UTC day or of a fixed offset', async () => {
    const berlin = await createLot(platform, admin, { spaces: { STANDARD: 2 }, timeZone: 'Europe/Berlin' })
    const at = (iso: string) => new Date(iso)
    const session = (entry: string, exit: string | null) => ({
      _id: randomUUID(),
      lot_id: berlin.lotId,
      status: exit ? 'closed' : 'active',
      entry_at: at(entry),
      exit_at: exit ? at(exit) : null,
    })
    const sessions = [
      session('2026-10-24T21:30:00Z', null), // 23:30 on the 24th: yesterday
      session('2026-10-24T22:30:00Z', '2026-10-25T23:10:00Z'), // 00:30 CEST in, 00:10 on the 26th out
      session('2026-10-24T23:30:00Z', null), // 01:30 CEST on the 25th, still the 24th in UTC
      session('2026-10-25T01:30:00Z', '2026-10-25T22:50:00Z'), // 02:30 CET (the second one), out 23:50 CET
      session('2026-10-25T22:30:00Z', null), // 23:30 CET: still the 25th
      session('2026-10-25T23:30:00Z', null), // 00:30 on the 26th
    ]
    await db.collection('sessions').insertMany(sessions as never[])
    const payment = (amount: number, method: string, settled: string) => ({
      _id: randomUUID(),
      lot_id: berlin.lotId,
      method,
      amount,
      currency: 'EUR',
      settled_at: at(settled),
    })
    const payments = [
      payment(1000, 'card', '2026-10-24T22:05:00Z'),
      payment(250, 'cash', '2026-10-25T22:55:00Z'),
      payment(999, 'card', '2026-10-25T23:05:00Z'),
      payment(777, 'cash', '2026-10-24T21:55:00Z'),
    ]
    await db.collection('payments').insertMany(payments as never[])
    await db.collection('refunds').insertOne({
      _id: `${payments[0]?._id}:0`,
      payment_id: payments[0]?._id,
      amount: 100,
      currency: 'EUR',
      created_at: at('2026-10-25T12:00:00Z'),
    } as never)

    const reports = platform.services.reports
    const noon = await reports.dashboard({ lot_id: berlin.lotId }, at('2026-10-25T12:00:00Z'))
    expect(noon).toMatchObject({
      date: '2026-10-25',
      time_zone: 'Europe/Berlin',
      // A UTC day would count 3 entries and 1149; a fixed +02:00 day 3 entries and 900.
      today_entries: 4,
      today_exits: 1,
      today_revenue: [{ amount: 1000 + 250 - 100, currency: 'EUR' }],
    })

    // The hooks count into the same day, once per event, whether or not the rebuild saw it.
    const listener = platform.services.analytics.sessionListener
    const late = {
      id: randomUUID(),
      lot_id: berlin.lotId,
      entry_at: at('2026-10-25T22:45:00Z'),
      exit_at: null,
    } as never
    await listener.sessionStarted?.(late)
    await listener.sessionStarted?.(late)
    const known = { id: sessions[1]?._id, lot_id: berlin.lotId, entry_at: sessions[1]?.entry_at } as never
    await listener.sessionStarted?.(known)
    const evening = await reports.dashboard({ lot_id: berlin.lotId }, at('2026-10-25T22:59:00Z'))
    expect(evening).toMatchObject({ date: '2026-10-25', today_entries: 5 })

    // An hour later it is the 26th in Berlin (and still the 25th in UTC).
    const after = await reports.dashboard({ lot_id: berlin.lotId }, at('2026-10-25T23:30:00Z'))
    expect(after).toMatchObject({
      date: '2026-10-26',
      today_entries: 1,
      today_exits: 1,
      today_revenue: [{ amount: 999, currency: 'EUR' }],
    })
  })
})

describe('access and validation', () => {
  it.each([
    ['a customer', () => customer, 403],
    ['an operator', () => operator, 403],
    ['nobody', () => undefined, 401],
  ])('refuses %s', async (_, who, status) => {
    expect((await send('GET', '/api/v1/reports/dashboard', who())).status).toBe(status)
  })

  it('answers 400 for a lot id that is not one and 404 for an unknown lot', async () => {
    const bad = await send('GET', '/api/v1/reports/dashboard?lot_id=nope', admin)
    expect(bad.status).toBe(400)
    expect((await json(bad)).errors[0]).toMatchObject({ field: 'lot_id' })
    expect((await send('GET', `/api/v1/reports/dashboard?lot_id=${randomUUID()}`, admin)).status).toBe(404)
  })
})
