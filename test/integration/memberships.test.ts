import { randomBytes, randomUUID } from 'node:crypto'
import Stripe from 'stripe'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import type { GatewayIntent } from '../../src/modules/payments/stripe.gateway.ts'
import { connectDatabase, type Database } from '../../src/shared/mongo.ts'
import { type Account, bearer, createAccount, jsonBody, signInAdmin, testAdmin } from '../harness/accounts.ts'
import { createHourlyRate, createLot, enterVehicle, type TestLot, uniquePlate } from '../harness/facility.ts'
import { expectJson, type Json, requester } from '../harness/http.ts'
import { startTestPlatform, type TestPlatform } from '../harness/platform.ts'

// Memberships end to end through the HTTP API on the real platform (FerretDB, Redis, stripe-mock,
// fees in the worker pool). The database is touched directly only to move time: a session's entry
// and a membership's period into the past, and to count the facts "exactly once" is about.
//
// stripe-mock keeps no state and answers every confirmation alike: platform.stripe is wrapped to
// tell the status a test names for an intent, or `stripeDefault` for the others.

const WEBHOOK_SECRET = 'whsec_memberships_secret'
/** 5.00 EUR per started hour, no grace. */
const HOURLY = 500
const HOUR = 3_600_000
const DAY = 24 * HOUR

let platform: TestPlatform
let db: Database
let admin: Account
let operator: Account
let lot: TestLot
const stripeSays = new Map<string, GatewayIntent['status']>()
let stripeDefault: GatewayIntent['status'] | undefined

beforeAll(async () => {
  const services = inject('services')
  platform = await startTestPlatform({
    ...testAdmin,
    STRIPE_API_URL: services.stripe,
    STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
    JOBS_ENABLED: 'false',
  })
  const real = { ...platform.stripe }
  const told = (intent: GatewayIntent): GatewayIntent => ({
    ...intent,
    status: stripeSays.get(intent.id) ?? stripeDefault ?? intent.status,
  })
  platform.stripe.confirmIntent = async (...args) => told(await real.confirmIntent(...args))
  platform.stripe.retrieveIntent = async (id) => told(await real.retrieveIntent(id))
  db = await connectDatabase(platform.urls.mongodb)
  admin = await signInAdmin(platform)
  operator = await createAccount(platform, admin, 'operator')
  lot = await createLot(platform, admin, { spaces: { STANDARD: 30 } })
  await createHourlyRate(platform, admin, lot.lotId, HOURLY)
}, 120_000)

afterAll(async () => {
  await db?.close()
  await platform?.stop()
})

const send = requester(() => platform)

const count = (collection: string, filter: Record<string, unknown>) =>
  db.collection(collection).countDocuments(filter)

async function createPlan(body: Record<string, unknown> = {}) {
  return await expectJson(
    await send('POST', '/api/v1/membership-plans', admin, {
      name: `Plan ${randomBytes(3).toString('hex')}`,
      lot_id: lot.lotId,
      duration_months: 1,
      price: 5000,
      vehicle_limit: 2,
      included_hours: null,
      discount_percentage: 0,
      ...body,
    }),
    201,
  )
}

async function customerWithCars(cars = 1) {
  const customer = await createAccount(platform, admin, 'customer')
  const vehicles: { id: string; plate: string }[] = []
  for (let i = 0; i < cars; i++) {
    const plate = uniquePlate()
    const vehicle = await expectJson(
      await send('POST', '/api/v1/vehicles', customer, { license_plate: plate, vehicle_type_id: 'standard' }),
      201,
    )
    vehicles.push({ id: vehicle.id, plate })
  }
  return { customer, vehicles }
}

/** Staff record a cash payment: the membership is active at once. */
async function cashMembership(customer: Account, plan: Json, vehicleIds: string[], extra = {}) {
  return await expectJson(
    await send('POST', '/api/v1/memberships', operator, {
      plan_id: plan.id,
      vehicle_ids: vehicleIds,
      user_id: customer.id,
      payment_method: 'cash',
      ...extra,
    }),
    201,
  )
}

/** The membership and its vehicles as if subscribed a day ago, so that a backdated entry is covered. */
async function backdate(membershipId: string) {
  const period = await db.collection('membership_periods').findOne({ _id: `${membershipId}:0` as never })
  const startsAt = period?.starts_at as Date
  await db
    .collection('membership_periods')
    .updateOne(
      { _id: `${membershipId}:0` as never },
      { $set: { starts_at: new Date(startsAt.getTime() - DAY) } },
    )
  await db
    .collection('membership_vehicles')
    .updateMany({ membership_id: membershipId }, { $set: { created_at: new Date(Date.now() - DAY) } })
  await db
    .collection('membership_vehicle_history')
    .updateMany({ membership_id: membershipId }, { $set: { at: new Date(Date.now() - DAY) } })
}

/** Moves a membership's periods by `ms` (negative: into the past). */
async function shiftPeriods(membershipId: string, ms: number) {
  const periods = await db.collection('membership_periods').find({ membership_id: membershipId }).toArray()
  for (const period of periods) {
    await db.collection('membership_periods').updateOne(
      { _id: period._id },
      {
        $set: {
          starts_at: new Date((period.starts_at as Date).getTime() + ms),
          ends_at: new Date((period.ends_at as Date).getTime() + ms),
          created_at: new Date((period.created_at as Date).getTime() + ms),
        },
      },
    )
  }
}

/** A session that entered `minutes` ago. */
async function enteredAgo(plate: string, minutes: number, lotId = lot.lotId) {
  const entry = await enterVehicle(platform, operator, { license_plate: plate, lot_id: lotId })
  await db
    .collection('sessions')
    .updateOne(
      { _id: entry.session.id as never },
      { $set: { entry_at: new Date(Date.now() - minutes * 60_000) } },
    )
  return { id: entry.session.id as string, ticket: entry.ticket_number as string }
}

const fee = async (sessionId: string) =>
  await expectJson(await send('GET', `/api/v1/sessions/${sessionId}/calculate-fee`, operator), 200)

async function payAndLeave(session: { id: string; ticket: string }) {
  const due = await fee(session.id)
  if (due.amount_due > 0) {
    await expectJson(
      await send('POST', '/api/v1/payments', operator, { session_id: session.id, payment_method: 'cash' }),
      201,
    )
  }
  return await expectJson(
    await send('POST', '/api/v1/sessions/exit', operator, { ticket_number: session.ticket, exit_gate: 'A' }),
    200,
  )
}

function signedEvent(type: string, intentId: string, status: string) {
  const payload = JSON.stringify({
    id: `evt_${randomBytes(12).toString('hex')}`,
    object: 'event',
    type,
    data: {
      object: { id: intentId, object: 'payment_intent', status, metadata: { purpose: 'membership' } },
    },
  })
  const timestamp = Math.floor(Date.now() / 1000)
  return {
    payload,
    header: Stripe.webhooks.generateTestHeaderString({ payload, secret: WEBHOOK_SECRET, timestamp }),
  }
}

const membershipLines = (quote: Json) =>
  quote.breakdown.filter((line: { kind: string }) => line.kind === 'membership')

describe('journey 4: plans, subscribe, vehicles, fees, usage, renew, cancel', () => {
  it('works end to end over HTTP', async () => {
    const plan = await createPlan({
      name: 'Commuter',
      included_hours: 2,
      discount_percentage: 20,
      vehicle_limit: 2,
      price: 4900,
    })
    expect(plan).toMatchObject({ currency: 'EUR', price: 4900, unlimited: false, is_active: true })
    const retired = await createPlan({ is_active: false })
    const { customer, vehicles } = await customerWithCars(2)
    const [car, second] = vehicles as [{ id: string; plate: string }, { id: string; plate: string }]

    // 1. View: customers see active plans only.
    const listed = await expectJson(
      await send('GET', `/api/v1/membership-plans?lot_id=${lot.lotId}&limit=100`, customer),
      200,
    )
    const ids = listed.data.map((p: { id: string }) => p.id)
    expect(ids).toContain(plan.id)
    expect(ids).not.toContain(retired.id)
    await expectJson(await send('GET', `/api/v1/membership-plans/${retired.id}`, customer), 404)
    expect(
      await expectJson(await send('GET', `/api/v1/membership-plans/${retired.id}`, operator), 200),
    ).toMatchObject({
      is_active: false,
    })
    const staffList = await expectJson(
      await send('GET', `/api/v1/membership-plans?lot_id=${lot.lotId}&is_active=false`, admin),
      200,
    )
    expect(staffList.data.map((p: { id: string }) => p.id)).toEqual([retired.id])
    await expectJson(
      await send('POST', '/api/v1/memberships', customer, { plan_id: retired.id, vehicle_ids: [] }),
      404,
    )

    // 2. Subscribe through Stripe: pending until paid.
    const subscribed = await expectJson(
      await send('POST', '/api/v1/memberships', customer, {
        plan_id: plan.id,
        vehicle_ids: [car.id],
        auto_renew: true,
      }),
      201,
    )
    expect(subscribed).toMatchObject({
      status: 'pending_payment',
      user_id: customer.id,
      lot_id: lot.lotId,
      auto_renew: true,
      vehicle_ids: [car.id],
      periods: [
        {
          index: 0,
          amount: 4900,
          currency: 'EUR',
          payment_method: 'stripe',
          payment_status: 'pending',
          payment_intent_id: expect.stringMatching(/^pi_/),
          client_secret: expect.any(String),
        },
      ],
    })
    const membershipId = subscribed.id as string
    await expectJson(
      await send('POST', '/api/v1/memberships', customer, { plan_id: plan.id, vehicle_ids: [] }),
      409,
    ).then((problem) =>
      expect(problem).toMatchObject({ reason: 'already_member', membership_id: membershipId }),
    )
    const intentId = subscribed.periods[0].payment_intent_id as string
    stripeSays.set(intentId, 'succeeded')
    const paid = await expectJson(
      await send('POST', `/api/v1/memberships/${membershipId}/pay`, customer, {
        payment_method: 'pm_card_visa',
      }),
      200,
    )
    expect(paid).toMatchObject({
      status: 'active',
      periods: [{ payment_status: 'paid', client_secret: null }],
    })
    await expectJson(await send('POST', `/api/v1/memberships/${membershipId}/pay`, customer, {}), 409)

    // 3. Register the second vehicle; the same again is the same.
    for (let i = 0; i < 2; i++) {
      const added = await expectJson(
        await send('POST', `/api/v1/memberships/${membershipId}/vehicles`, customer, {
          vehicle_id: second.id,
        }),
        200,
      )
      expect(added.vehicle_ids.sort()).toEqual([car.id, second.id].sort())
    }

    // 4. Park: 2 h 58 min -> 3 started hours; 2 included hours first, then 20 % of the rest.
    await backdate(membershipId)
    const session = await enteredAgo(car.plate, 178)
    const quote = await fee(session.id)
    expect(quote).toMatchObject({ base_fee: 3 * HOURLY, discounts: 1100, total: 400, amount_due: 400 })
    expect(membershipLines(quote)).toEqual([
      { kind: 'membership', description: 'Membership Commuter: 2 h of the included hours', amount: -1000 },
      { kind: 'membership', description: 'Membership Commuter: 20% off', amount: -100 },
    ])
    const exited = await payAndLeave(session)
    expect(exited.session).toMatchObject({ status: 'closed', fee_total: 400 })
    // Priced again after it left: the same.
    expect(await fee(session.id)).toMatchObject({ total: 400, amount_due: 0 })

    // 5. Usage.
    const usage = await expectJson(
      await send('GET', `/api/v1/memberships/${membershipId}/usage`, customer),
      200,
    )
    expect(usage).toMatchObject({
      membership_id: membershipId,
      hours_used: expect.closeTo(179 / 60, 1),
      hours_remaining: 0,
      sessions_count: 1,
      savings_to_date: { amount: 1100, currency: 'EUR' },
      period_end: paid.period_end,
    })
    expect(usage.days_remaining).toBeGreaterThanOrEqual(27)

    // 6. Renew, paid by Stripe's webhook this time; then cancel at the end of the period.
    const renewed = await expectJson(
      await send('POST', `/api/v1/memberships/${membershipId}/renew`, customer, {}),
      200,
    )
    expect(renewed.periods).toHaveLength(2)
    expect(renewed.periods[1]).toMatchObject({
      index: 1,
      starts_at: paid.period_end,
      payment_status: 'pending',
      payment_intent_id: expect.stringMatching(/^pi_/),
    })
    const renewalIntent = renewed.periods[1].payment_intent_id as string
    stripeSays.set(renewalIntent, 'succeeded')
    const event = signedEvent('payment_intent.succeeded', renewalIntent, 'succeeded')
    const hook = await platform.request('/api/v1/webhooks/stripe', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Stripe-Signature': event.header },
      body: event.payload,
    })
    expect(hook.status).toBe(200)
    const afterHook = await expectJson(
      await send('GET', `/api/v1/memberships/${membershipId}`, customer),
      200,
    )
    expect(afterHook.periods[1]).toMatchObject({ payment_status: 'paid' })

    const canceled = await expectJson(
      await send('POST', `/api/v1/memberships/${membershipId}/cancel`, customer, {}),
      200,
    )
    expect(canceled).toMatchObject({ status: 'active', auto_renew: false, cancel_at_period_end: true })
    await expectJson(await send('POST', `/api/v1/memberships/${membershipId}/renew`, customer, {}), 409)
    const mine = await expectJson(await send('GET', '/api/v1/memberships', customer), 200)
    expect(mine.data.map((m: { id: string }) => m.id)).toEqual([membershipId])
  })
})

describe('member fees', () => {
  it('consumes included hours across two sessions, then charges the rest', async () => {
    const plan = await createPlan({ included_hours: 3 })
    const { customer, vehicles } = await customerWithCars(1)
    const car = vehicles[0] as { id: string; plate: string }
    const membership = await cashMembership(customer, plan, [car.id])
    await backdate(membership.id)

    const first = await enteredAgo(car.plate, 115)
    expect(await fee(first.id)).toMatchObject({ base_fee: 2 * HOURLY, total: 0 })
    await payAndLeave(first)
    const second = await enteredAgo(car.plate, 115)
    const quote = await fee(second.id)
    // About 65 included minutes were left: about 50 minutes are billed, one started hour.
    expect(quote).toMatchObject({ base_fee: 2 * HOURLY, total: HOURLY })
    expect(membershipLines(quote)).toEqual([
      expect.objectContaining({
        description: expect.stringContaining('of the included hours'),
        amount: -HOURLY,
      }),
    ])
    await payAndLeave(second)
    const usage = await expectJson(
      await send('GET', `/api/v1/memberships/${membership.id}/usage`, customer),
      200,
    )
    expect(usage).toMatchObject({
      sessions_count: 2,
      hours_remaining: 0,
      savings_to_date: { amount: 3 * HOURLY },
    })
  })

  it('covers everything on an unlimited plan, and nothing for a car not on the membership', async () => {
    const plan = await createPlan({ unlimited: true, included_hours: 5 })
    const { customer, vehicles } = await customerWithCars(2)
    const [car, other] = vehicles as [{ id: string; plate: string }, { id: string; plate: string }]
    const membership = await cashMembership(customer, plan, [car.id])
    await backdate(membership.id)
    const session = await enteredAgo(car.plate, 295)
    const quote = await fee(session.id)
    expect(quote).toMatchObject({ base_fee: 5 * HOURLY, discounts: 5 * HOURLY, total: 0 })
    expect(membershipLines(quote)).toEqual([expect.objectContaining({ amount: -5 * HOURLY })])
    const stranger = await enteredAgo(other.plate, 55)
    expect(await fee(stranger.id)).toMatchObject({ total: HOURLY })
    await payAndLeave(session)
    const usage = await expectJson(
      await send('GET', `/api/v1/memberships/${membership.id}/usage`, customer),
      200,
    )
    expect(usage).toMatchObject({
      sessions_count: 1,
      hours_remaining: null,
      savings_to_date: { amount: 5 * HOURLY },
    })
    // Told again (a retried exit): recorded once.
    const facts = await platform.services.sessions.port.facts(session.id)
    const closing = await fee(session.id)
    await platform.services.memberships.sessionListener.sessionClosed(facts, closing)
    expect(await count('membership_usage_index', { session_id: session.id })).toBe(1)
  })
})

describe('a membership that ends while the car is parked', () => {
  it('still counts for a stay that entered while it was on (canceled at once), not for a car added after the entry', async () => {
    const plan = await createPlan({ discount_percentage: 50 })
    const { customer, vehicles } = await customerWithCars(2)
    const [car, late] = vehicles as [{ id: string; plate: string }, { id: string; plate: string }]
    const membership = await cashMembership(customer, plan, [car.id])
    await backdate(membership.id)
    const session = await enteredAgo(car.plate, 55)
    const lateSession = await enteredAgo(late.plate, 55)
    await expectJson(
      await send('POST', `/api/v1/memberships/${membership.id}/vehicles`, customer, { vehicle_id: late.id }),
      200,
    )
    expect(membershipLines(await fee(lateSession.id))).toEqual([])

    await expectJson(
      await send('POST', `/api/v1/memberships/${membership.id}/cancel`, customer, { immediately: true }),
      200,
    )
    expect(await count('membership_vehicles', { membership_id: membership.id })).toBe(0)
    const quote = await fee(session.id)
    expect(quote).toMatchObject({ base_fee: HOURLY, total: HOURLY / 2 })
    expect(membershipLines(quote)).toEqual([
      expect.objectContaining({ description: expect.stringContaining('50% off'), amount: -HOURLY / 2 }),
    ])
    expect(membershipLines(await fee(lateSession.id))).toEqual([])
    await payAndLeave(session)
    const usage = await expectJson(
      await send('GET', `/api/v1/memberships/${membership.id}/usage`, customer),
      200,
    )
    expect(usage).toMatchObject({ sessions_count: 1, savings_to_date: { amount: HOURLY / 2 } })
    // A stay that enters after the end gets nothing.
    await payAndLeave(lateSession)
    const after = await enteredAgo(car.plate, 0)
    expect(membershipLines(await fee(after.id))).toEqual([])
    await payAndLeave(after)
  })

  it('still counts for a stay that entered before the period ended (expired by the job)', async () => {
    const plan = await createPlan({ included_hours: 10 })
    const { customer, vehicles } = await customerWithCars(1)
    const car = vehicles[0] as { id: string; plate: string }
    const membership = await cashMembership(customer, plan, [car.id])
    await backdate(membership.id)
    const session = await enteredAgo(car.plate, 115)
    // The period ended 10 minutes ago, after the entry.
    await shiftPeriods(membership.id, Date.now() - 10 * 60_000 - Date.parse(membership.periods[0].ends_at))
    await platform.scheduler.runNow('memberships.renewals')
    const ended = await expectJson(await send('GET', `/api/v1/memberships/${membership.id}`, customer), 200)
    expect(ended).toMatchObject({ status: 'expired', vehicle_ids: [] })
    const quote = await fee(session.id)
    expect(quote).toMatchObject({ base_fee: 2 * HOURLY, total: 0 })
    expect(membershipLines(quote)).toEqual([
      expect.objectContaining({ description: expect.stringContaining('of the included hours') }),
    ])
    await payAndLeave(session)
  })
})

describe('included hours are used only where they took money off the fee', () => {
  it('uses none within the grace period', async () => {
    const graceLot = await createLot(platform, admin, { spaces: { STANDARD: 5 } })
    await expectJson(
      await send('POST', '/api/v1/rates', admin, {
        name: 'Hourly with grace',
        lot_id: graceLot.lotId,
        rate_type: 'hourly',
        amount: HOURLY,
        grace_period_minutes: 15,
        effective_from: '2024-01-01T00:00:00Z',
      }),
      201,
    )
    const plan = await createPlan({ lot_id: graceLot.lotId, included_hours: 2 })
    const { customer, vehicles } = await customerWithCars(1)
    const car = vehicles[0] as { id: string; plate: string }
    const membership = await cashMembership(customer, plan, [car.id])
    await backdate(membership.id)
    const session = await enteredAgo(car.plate, 10, graceLot.lotId)
    const quote = await fee(session.id)
    expect(quote).toMatchObject({ base_fee: 0, total: 0 })
    await payAndLeave(session)
    const usage = await expectJson(
      await send('GET', `/api/v1/memberships/${membership.id}/usage`, customer),
      200,
    )
    expect(usage).toMatchObject({ sessions_count: 1, hours_remaining: 2 })
  })

  it('uses none for the time a prepaid reservation covers', async () => {
    const plan = await createPlan({ included_hours: 10 })
    const { customer, vehicles } = await customerWithCars(1)
    const car = vehicles[0] as { id: string; plate: string }
    const membership = await cashMembership(customer, plan, [car.id])
    await backdate(membership.id)
    const start = Math.ceil(Date.now() / 60_000) * 60_000 + 10 * 60_000
    const booked = await expectJson(
      await send('POST', '/api/v1/reservations', customer, {
        vehicle_id: car.id,
        zone_id: lot.zoneId,
        start_time: new Date(start).toISOString(),
        end_time: new Date(start + 2 * HOUR).toISOString(),
        prepay: true,
      }),
      201,
    )
    stripeSays.set(booked.payment.payment_intent_id, 'succeeded')
    await expectJson(
      await send('POST', `/api/v1/reservations/${booked.reservation.id}/pay`, customer, {
        payment_method: 'pm_card_visa',
      }),
      200,
    )
    const checkIn = await expectJson(
      await send('POST', '/api/v1/reservations/check-in', operator, {
        confirmation_number: booked.confirmation_number,
      }),
      201,
    )
    const sessionId = checkIn.session.id as string
    await db
      .collection('sessions')
      .updateOne({ _id: sessionId as never }, { $set: { entry_at: new Date(Date.now() - 90 * 60_000) } })
    const quote = await fee(sessionId)
    expect(quote).toMatchObject({ base_fee: 2 * HOURLY, total: 0 })
    expect(
      membershipLines(quote).filter((line: { description: string }) =>
        line.description.includes('of the included hours'),
      ),
    ).toEqual([])
    await payAndLeave({ id: sessionId, ticket: checkIn.ticket_number })
    const usage = await expectJson(
      await send('GET', `/api/v1/memberships/${membership.id}/usage`, customer),
      200,
    )
    expect(usage).toMatchObject({ sessions_count: 1, hours_remaining: 10 })
  })
})

describe('limits under concurrency', () => {
  it('lets 2 of 10 concurrent vehicle additions through a limit of 2', async () => {
    const plan = await createPlan({ vehicle_limit: 2 })
    const { customer, vehicles } = await customerWithCars(10)
    await expectJson(
      await send('POST', '/api/v1/memberships', operator, {
        plan_id: plan.id,
        vehicle_ids: vehicles.slice(0, 3).map((v) => v.id),
        user_id: customer.id,
        payment_method: 'cash',
      }),
      422,
    ).then((problem) => expect(problem.reason).toBe('vehicle_limit'))
    const membership = await cashMembership(customer, plan, [])
    const answers = await Promise.all(
      vehicles.map((v) =>
        send('POST', `/api/v1/memberships/${membership.id}/vehicles`, customer, { vehicle_id: v.id }),
      ),
    )
    const statuses = answers.map((res) => res.status).sort()
    expect(statuses).toEqual([200, 200, 422, 422, 422, 422, 422, 422, 422, 422])
    const now = await expectJson(await send('GET', `/api/v1/memberships/${membership.id}`, customer), 200)
    expect(now.vehicle_ids).toHaveLength(2)
    expect(await count('membership_vehicles', { membership_id: membership.id })).toBe(2)

    // A vehicle of the membership is on no other; removed, it is free again.
    const taken = now.vehicle_ids[0] as string
    await expectJson(
      await send('DELETE', `/api/v1/memberships/${membership.id}/vehicles/${taken}`, customer),
      204,
    )
    await expectJson(
      await send('DELETE', `/api/v1/memberships/${membership.id}/vehicles/${taken}`, customer),
      404,
    )
    const free = vehicles.find((v) => !now.vehicle_ids.includes(v.id)) as { id: string }
    await expectJson(
      await send('POST', `/api/v1/memberships/${membership.id}/vehicles`, customer, { vehicle_id: free.id }),
      200,
    )
    // Somebody else's vehicle is not found.
    const { vehicles: theirs } = await customerWithCars(1)
    await expectJson(
      await send('POST', `/api/v1/memberships/${membership.id}/vehicles`, customer, {
        vehicle_id: (theirs[0] as { id: string }).id,
      }),
      404,
    )
  })

  it('makes one membership of 10 concurrent subscriptions of a customer at a facility', async () => {
    const plan = await createPlan()
    const { customer } = await customerWithCars(0)
    const answers = await Promise.all(
      Array.from({ length: 10 }, () =>
        send('POST', '/api/v1/memberships', operator, {
          plan_id: plan.id,
          user_id: customer.id,
          payment_method: 'card',
        }),
      ),
    )
    expect(answers.map((res) => res.status).sort()).toEqual([
      201, 409, 409, 409, 409, 409, 409, 409, 409, 409,
    ])
    expect(await count('memberships', { user_id: customer.id })).toBe(1)
  })

  it('answers a retried subscription with the same Idempotency-Key and body with the same membership', async () => {
    const plan = await createPlan()
    const { customer, vehicles } = await customerWithCars(1)
    const body = { plan_id: plan.id, vehicle_ids: [(vehicles[0] as { id: string }).id] }
    const keyed = (key: string, payload: unknown) =>
      platform.request('/api/v1/memberships', {
        method: 'POST',
        ...jsonBody(payload, { ...bearer(customer.token), 'Idempotency-Key': key }),
      })
    const key = `sub-${randomUUID()}`
    const first = await expectJson(await keyed(key, body), 201)
    // The answer was lost: the retry gets the same membership, not 409 already_member.
    const again = await expectJson(await keyed(key, body), 201)
    expect(again).toMatchObject({ id: first.id, status: 'pending_payment' })
    expect(again.periods[0].payment_intent_id).toBe(first.periods[0].payment_intent_id)
    expect(await count('memberships', { user_id: customer.id })).toBe(1)
    expect(await count('membership_periods', { membership_id: first.id })).toBe(1)
    // The same key with another body is refused.
    const other = await expectJson(await keyed(key, { ...body, auto_renew: true }), 422)
    expect(other.reason).toBe('idempotency_key_reused')
    // Another key is another subscription: the customer is a member already.
    await expectJson(await keyed(`sub-${randomUUID()}`, body), 409)
  })

  it('renews exactly once of 20 concurrent renewals', async () => {
    const plan = await createPlan()
    const { customer } = await customerWithCars(0)
    const membership = await cashMembership(customer, plan, [])
    const answers = await Promise.all(
      Array.from({ length: 20 }, () =>
        send('POST', `/api/v1/memberships/${membership.id}/renew`, operator, { payment_method: 'cash' }),
      ),
    )
    const statuses = answers.map((res) => res.status)
    expect(statuses.filter((s) => s === 200)).toHaveLength(1)
    expect(statuses.filter((s) => s === 409)).toHaveLength(19)
    expect(await count('membership_periods', { membership_id: membership.id })).toBe(2)
    const after = await expectJson(await send('GET', `/api/v1/memberships/${membership.id}`, customer), 200)
    expect(after.periods[1]).toMatchObject({ starts_at: membership.period_end, payment_status: 'paid' })
  })
})

describe('the renewals job', () => {
  it('expires an ended membership once, releasing its claims', async () => {
    const plan = await createPlan()
    const { customer, vehicles } = await customerWithCars(1)
    const membership = await cashMembership(customer, plan, [(vehicles[0] as { id: string }).id])
    await shiftPeriods(membership.id, -40 * DAY)
    for (let run = 0; run < 2; run++) await platform.scheduler.runNow('memberships.renewals')
    const ended = await expectJson(await send('GET', `/api/v1/memberships/${membership.id}`, customer), 200)
    expect(ended).toMatchObject({ status: 'expired', vehicle_ids: [] })
    expect(await count('membership_claims', { membership_id: membership.id })).toBe(0)
    expect(await count('membership_vehicles', { membership_id: membership.id })).toBe(0)
    expect(await count('membership_periods', { membership_id: membership.id })).toBe(1)
    await expectJson(
      await send('GET', `/api/v1/memberships?status=expired&user_id=${customer.id}`, admin),
      200,
    ).then((page) => expect(page.data.map((m: { id: string }) => m.id)).toEqual([membership.id]))
    // The customer and the car may join again.
    await cashMembership(customer, plan, [(vehicles[0] as { id: string }).id])
    await expectJson(await send('POST', `/api/v1/memberships/${membership.id}/renew`, customer, {}), 409)
  })

  it('renews with the saved card once, and lets one without a card expire', async () => {
    const plan = await createPlan({ price: 3000 })
    const { customer } = await customerWithCars(0)
    const subscribed = await expectJson(
      await send('POST', '/api/v1/memberships', customer, { plan_id: plan.id, auto_renew: true }),
      201,
    )
    stripeSays.set(subscribed.periods[0].payment_intent_id, 'succeeded')
    await expectJson(
      await send('POST', `/api/v1/memberships/${subscribed.id}/pay`, customer, {
        payment_method: 'pm_card_visa',
      }),
      200,
    )
    // The period ends in an hour: within the renewal lead time.
    await shiftPeriods(subscribed.id, Date.now() + HOUR - Date.parse(subscribed.periods[0].ends_at))
    const { customer: cashCustomer } = await customerWithCars(0)
    const cash = await cashMembership(cashCustomer, plan, [], { auto_renew: true })
    await shiftPeriods(cash.id, Date.now() + HOUR - Date.parse(cash.periods[0].ends_at))

    stripeDefault = 'succeeded'
    try {
      for (let run = 0; run < 2; run++) await platform.scheduler.runNow('memberships.renewals')
    } finally {
      stripeDefault = undefined
    }
    const renewed = await expectJson(await send('GET', `/api/v1/memberships/${subscribed.id}`, customer), 200)
    expect(renewed.periods).toHaveLength(2)
    expect(renewed.periods[1]).toMatchObject({ payment_method: 'stripe', payment_status: 'paid' })
    expect(await count('membership_periods', { membership_id: subscribed.id })).toBe(2)

    const failed = await expectJson(await send('GET', `/api/v1/memberships/${cash.id}`, cashCustomer), 200)
    expect(failed.periods.map((p: { payment_status: string }) => p.payment_status)).toEqual([
      'paid',
      'failed',
    ])
    expect(failed.status).toBe('active')
    // Its period over: expired, not renewed again.
    await shiftPeriods(cash.id, -2 * HOUR)
    await platform.scheduler.runNow('memberships.renewals')
    const expired = await expectJson(await send('GET', `/api/v1/memberships/${cash.id}`, cashCustomer), 200)
    expect(expired).toMatchObject({ status: 'expired' })
    expect(expired.periods).toHaveLength(2)
  })

  it('ends a subscription never paid after the payment timeout', async () => {
    const plan = await createPlan()
    const { customer } = await customerWithCars(0)
    const subscribed = await expectJson(
      await send('POST', '/api/v1/memberships', customer, { plan_id: plan.id }),
      201,
    )
    await shiftPeriods(subscribed.id, -2 * HOUR)
    stripeSays.set(subscribed.periods[0].payment_intent_id, 'requires_payment_method')
    for (let run = 0; run < 2; run++) await platform.scheduler.runNow('memberships.renewals')
    const ended = await expectJson(await send('GET', `/api/v1/memberships/${subscribed.id}`, customer), 200)
    expect(ended).toMatchObject({ status: 'expired', periods: [{ payment_status: 'canceled' }] })
    expect(await count('membership_claims', { membership_id: subscribed.id })).toBe(0)
  })
})

describe('access', () => {
  let plan: Json
  let membership: Json
  let owner: Account
  let stranger: Account
  let vehicleId: string

  beforeAll(async () => {
    plan = await createPlan()
    const made = await customerWithCars(1)
    owner = made.customer
    vehicleId = (made.vehicles[0] as { id: string }).id
    membership = await cashMembership(owner, plan, [vehicleId])
    stranger = await createAccount(platform, admin, 'customer')
  })

  const routes = () => [
    { method: 'GET', path: '/api/v1/membership-plans' },
    { method: 'GET', path: `/api/v1/membership-plans/${plan.id}` },
    { method: 'POST', path: '/api/v1/membership-plans', body: {} },
    { method: 'PUT', path: `/api/v1/membership-plans/${plan.id}`, body: {} },
    { method: 'POST', path: '/api/v1/memberships', body: {} },
    { method: 'GET', path: '/api/v1/memberships' },
    { method: 'GET', path: `/api/v1/memberships/${membership.id}` },
    { method: 'GET', path: `/api/v1/memberships/${membership.id}/usage` },
    { method: 'POST', path: `/api/v1/memberships/${membership.id}/vehicles`, body: {} },
    { method: 'DELETE', path: `/api/v1/memberships/${membership.id}/vehicles/${vehicleId}` },
    { method: 'POST', path: `/api/v1/memberships/${membership.id}/cancel`, body: {} },
    { method: 'POST', path: `/api/v1/memberships/${membership.id}/renew`, body: {} },
    { method: 'POST', path: `/api/v1/memberships/${membership.id}/pay`, body: {} },
  ]

  it('needs a signed-in caller on every route', async () => {
    for (const route of routes()) {
      const res = await send(route.method, route.path, undefined, route.body)
      expect(res.status, `${route.method} ${route.path}`).toBe(401)
    }
  })

  it('lets only admins write plans', async () => {
    const body = {
      name: 'X',
      lot_id: lot.lotId,
      duration_months: 1,
      price: 100,
      vehicle_limit: 1,
    }
    for (const who of [owner, operator]) {
      await expectJson(await send('POST', '/api/v1/membership-plans', who, body), 403)
      const { lot_id: _, ...terms } = body
      await expectJson(await send('PUT', `/api/v1/membership-plans/${plan.id}`, who, terms), 403)
    }
    const { lot_id: _, ...terms } = body
    const replaced = await expectJson(
      await send('PUT', `/api/v1/membership-plans/${plan.id}`, admin, {
        ...terms,
        name: 'Renamed',
        price: 5000,
      }),
      200,
    )
    expect(replaced).toMatchObject({ id: plan.id, name: 'Renamed', lot_id: lot.lotId, currency: 'EUR' })
    // Memberships keep the terms they bought.
    const kept = await expectJson(await send('GET', `/api/v1/memberships/${membership.id}`, owner), 200)
    expect(kept.plan_name).toBe(plan.name)
    await expectJson(
      await send('POST', '/api/v1/membership-plans', admin, { ...body, lot_id: randomUUID() }),
      404,
    )
  })

  it("keeps a customer's membership from other customers (404) and lets staff act on it", async () => {
    const ownOnly = routes().slice(6)
    for (const route of ownOnly) {
      const body = route.path.endsWith('/vehicles') ? { vehicle_id: vehicleId } : route.body
      const res = await send(route.method, route.path, stranger, body)
      expect(res.status, `${route.method} ${route.path}`).toBe(404)
    }
    const theirs = await expectJson(await send('GET', '/api/v1/memberships', stranger), 200)
    expect(theirs.data).toEqual([])
    expect(
      (await expectJson(await send('GET', `/api/v1/memberships?user_id=${owner.id}`, operator), 200)).data,
    ).toHaveLength(1)
    await expectJson(await send('GET', `/api/v1/memberships/${membership.id}/usage`, operator), 200)
    // Customers pay through Stripe only, and subscribe themselves only.
    await expectJson(
      await send('POST', '/api/v1/memberships', stranger, { plan_id: plan.id, payment_method: 'cash' }),
      403,
    )
    await expectJson(
      await send('POST', '/api/v1/memberships', stranger, { plan_id: plan.id, user_id: owner.id }),
      403,
    )
  })

  it('answers 404 on every id route for an unknown id', async () => {
    const unknown = randomUUID()
    const paths = [
      ['GET', `/api/v1/membership-plans/${unknown}`],
      ['PUT', `/api/v1/membership-plans/${unknown}`],
      ['GET', `/api/v1/memberships/${unknown}`],
      ['GET', `/api/v1/memberships/${unknown}/usage`],
      ['POST', `/api/v1/memberships/${unknown}/vehicles`],
      ['DELETE', `/api/v1/memberships/${unknown}/vehicles/${vehicleId}`],
      ['DELETE', `/api/v1/memberships/${membership.id}/vehicles/${unknown}`],
      ['POST', `/api/v1/memberships/${unknown}/cancel`],
      ['POST', `/api/v1/memberships/${unknown}/renew`],
      ['POST', `/api/v1/memberships/${unknown}/pay`],
    ] as const
    const bodies: Record<string, unknown> = {
      PUT: { name: 'X', duration_months: 1, price: 0, vehicle_limit: 1 },
      POST: {},
    }
    for (const [method, path] of paths) {
      const body = path.endsWith('/vehicles') ? { vehicle_id: vehicleId } : bodies[method]
      const res = await send(method, path, admin, body)
      expect(res.status, `${method} ${path}`).toBe(404)
    }
    await expectJson(
      await send('POST', '/api/v1/memberships', admin, { plan_id: unknown, user_id: owner.id }),
      404,
    )
  })

  it('cancels at once, releasing the claims', async () => {
    const canceled = await expectJson(
      await send('POST', `/api/v1/memberships/${membership.id}/cancel`, owner, { immediately: true }),
      200,
    )
    expect(canceled).toMatchObject({ status: 'canceled', vehicle_ids: [] })
    await expectJson(await send('POST', `/api/v1/memberships/${membership.id}/cancel`, owner, {}), 409)
    await cashMembership(owner, plan, [vehicleId])
  })
})
