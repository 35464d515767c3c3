import { randomUUID } from 'node:crypto'
import Stripe from 'stripe'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import type { GatewayIntent } from '../../src/modules/payments/stripe.gateway.ts'
import type { Caller } from '../../src/modules/sessions/sessions.service.ts'
import { AppError } from '../../src/shared/errors.ts'
import { connectDatabase, type Database } from '../../src/shared/mongo.ts'
import { type Account, bearer, createAccount, jsonBody, signInAdmin, testAdmin } from '../harness/accounts.ts'
import { createHourlyRate, createLot, type TestLot, uniquePlate } from '../harness/facility.ts'
import { expectJson, type Json, json, requester } from '../harness/http.ts'
import { startTestPlatform, type TestPlatform } from '../harness/platform.ts'

// Reservations on the real platform (FerretDB, Redis, stripe-mock), through the HTTP API and, where
// time must be moved (check-in window edges, no-shows, refunds by cancellation time), through the
// service with an explicit clock. stripe-mock keeps no state: platform.stripe is wrapped to say
// what Stripe would answer for the intents a test names, and to count refunds.

const WEBHOOK_SECRET = 'whsec_reservations_secret'
/** 5.00 EUR per started hour, no grace. */
const HOURLY = 500
const MIN = 60_000
const HOUR = 60 * MIN

let platform: TestPlatform
let db: Database
let admin: Account
let operator: Account
let lot: TestLot
const stripeSays = new Map<string, GatewayIntent['status']>()
const refunds: { paymentIntentId: string; amount: number; idempotencyKey: string }[] = []
const confirms: { id: string; paymentMethod: string | undefined; idempotencyKey: string }[] = []
/** The next refund's answer is lost (Stripe unreachable), after stripe-mock made it. */
let loseNextRefund = false
/** Stripe refuses the next refund (no money moves). */
let refuseNextRefund = false

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
    status: stripeSays.get(intent.id) ?? intent.status,
  })
  platform.stripe.confirmIntent = async (id, paymentMethod, idempotencyKey) => {
    confirms.push({ id, paymentMethod, idempotencyKey })
    return told(await real.confirmIntent(id, paymentMethod, idempotencyKey))
  }
  platform.stripe.retrieveIntent = async (id) => told(await real.retrieveIntent(id))
  platform.stripe.cancelIntent = async (id) => {
    // Stripe refuses to cancel an intent that succeeded.
    if (stripeSays.get(id) === 'succeeded')
      throw new AppError('UNPROCESSABLE', 'The payment provider refused: this PaymentIntent succeeded', {
        extensions: { reason: 'provider_refused' },
      })
    return told(await real.cancelIntent(id))
  }
  platform.stripe.refund = async (input) => {
    refunds.push(input)
    if (refuseNextRefund) {
      refuseNextRefund = false
      throw new AppError('UNPROCESSABLE', 'The payment provider refused: the charge is disputed', {
        extensions: { reason: 'provider_refused' },
      })
    }
    const refund = await real.refund(input)
    if (loseNextRefund) {
      loseNextRefund = false
      throw new AppError('DEPENDENCY_UNAVAILABLE', 'The payment provider is unavailable; retry shortly')
    }
    return refund
  }
  db = await connectDatabase(platform.urls.mongodb)
  admin = await signInAdmin(platform)
  operator = await createAccount(platform, admin, 'operator')
  lot = await createLot(platform, admin, { spaces: { STANDARD: 6, EV: 1 } })
  await createHourlyRate(platform, admin, lot.lotId, HOURLY)
}, 120_000)

afterAll(async () => {
  await db?.close()
  await platform?.stop()
})

const service = () => platform.services.reservations
const callerOf = (a: Account): Caller => ({ userId: a.id, role: a.role })

const send = requester(() => platform)

const iso = (ms: number) => new Date(ms).toISOString()
/** Whole minutes from now. */
const inMinutes = (minutes: number) => Math.ceil(Date.now() / MIN) * MIN + minutes * MIN
/** A whole hour some hours ahead: windows that line up with the 15-minute slots. */
const atHour = (hours: number) => Math.ceil(Date.now() / HOUR) * HOUR + hours * HOUR

async function customerWithCar() {
  const customer = await createAccount(platform, admin, 'customer')
  const plate = uniquePlate()
  const vehicle = await expectJson(
    await send('POST', '/api/v1/vehicles', customer, { license_plate: plate, vehicle_type_id: 'standard' }),
    201,
  )
  return { customer, plate, vehicleId: vehicle.id as string }
}

/** A lot of its own with one space: "the last free slot". */
async function oneSpaceLot() {
  const small = await createLot(platform, admin, { spaces: { STANDARD: 1 } })
  const spaces = await json(await send('GET', `/api/v1/spaces?zone_id=${small.zoneId}`, admin))
  return { ...small, spaceId: spaces.data[0].id as string }
}

async function book(who: Account, body: Record<string, unknown>) {
  return await expectJson(await send('POST', '/api/v1/reservations', who, body), 201)
}

const count = (collection: string, filter: Record<string, unknown>) =>
  db.collection(collection).countDocuments(filter as never)

describe('journey 2: availability, booking, check-in by code, the prepaid fee, exit', () => {
  it('runs end to end over HTTP', async () => {
    const { customer, vehicleId } = await customerWithCar()
    const start = inMinutes(10)
    const end = start + 2 * HOUR
    const before = await expectJson(
      await send(
        'GET',
        `/api/v1/reservations/availability?start_time=${iso(start)}&end_time=${iso(end)}&zone_id=${lot.zoneId}&space_type=STANDARD`,
        customer,
      ),
      200,
    )
    expect(before).toMatchObject({ total: 6, reserved: 0, available: 6 })
    expect(before.spaces[0].space_number).toBe('S-001')

    const created = await book(customer, {
      vehicle_id: vehicleId,
      zone_id: lot.zoneId,
      start_time: iso(start),
      end_time: iso(end),
      special_requests: 'Near elevator please',
      prepay: true,
    })
    expect(created.confirmation_number).toMatch(/^RSV-[A-HJ-NP-Z2-9]{8}$/)
    expect(created.reservation).toMatchObject({
      status: 'pending_payment',
      space_number: 'S-001',
      amount: 2 * HOURLY,
      currency: 'EUR',
      payment_status: 'pending',
    })
    expect(created.payment).toMatchObject({ amount: 2 * HOURLY, currency: 'EUR' })
    const id = created.reservation.id as string
    const intentId = created.payment.payment_intent_id as string

    const during = await json(
      await send(
        'GET',
        `/api/v1/reservations/availability?start_time=${iso(start + HOUR)}&end_time=${iso(end + HOUR)}&zone_id=${lot.zoneId}&space_type=STANDARD`,
        customer,
      ),
    )
    expect(during).toMatchObject({ total: 6, reserved: 1, available: 5 })
    expect(during.spaces.map((s: Json) => s.space_number)).not.toContain('S-001')

    // Unpaid: the gate says 402.
    await expectJson(
      await send('POST', '/api/v1/reservations/check-in', operator, {
        confirmation_number: created.confirmation_number,
      }),
      402,
    )
    stripeSays.set(intentId, 'succeeded')
    const paid = await expectJson(
      await send('POST', `/api/v1/reservations/${id}/pay`, customer, { payment_method: 'pm_card_visa' }),
      200,
    )
    expect(paid).toMatchObject({ status: 'confirmed', payment_status: 'paid' })

    const found = await expectJson(
      await send(
        'GET',
        `/api/v1/reservations/confirmation/${created.confirmation_number.toLowerCase()}`,
        customer,
      ),
      200,
    )
    expect(found.id).toBe(id)

    // The tick holds the space from check-in opening: it counts as reserved in live availability.
    await service().tick()
    expect((await platform.occupancy.state.space(created.reservation.space_id))?.status).toBe('reserved')

    const checkIn = await expectJson(
      await send('POST', '/api/v1/reservations/check-in', operator, {
        confirmation_number: created.confirmation_number,
      }),
      201,
    )
    expect(checkIn.space_assigned.id).toBe(created.reservation.space_id)
    expect(checkIn.session).toMatchObject({ reservation_id: id, space_id: created.reservation.space_id })
    expect(checkIn.reservation.status).toBe('checked_in')
    const space = await platform.occupancy.state.space(created.reservation.space_id)
    expect(space).toMatchObject({ status: 'occupied', sessionId: checkIn.session.id })

    // 90 minutes later: two started hours, covered by the prepaid 2 hours.
    await db
      .collection('sessions')
      .updateOne(
        { _id: checkIn.session.id as never },
        { $set: { entry_at: new Date(Date.now() - 90 * MIN) } },
      )
    const fee = await expectJson(
      await send('GET', `/api/v1/sessions/${checkIn.session.id}/calculate-fee`, customer),
      200,
    )
    expect(fee.breakdown).toContainEqual({
      kind: 'reservation',
      description: `Reservation ${created.confirmation_number} prepaid (2 h)`,
      amount: -2 * HOURLY,
    })
    expect(fee.amount_due).toBe(0)

    await expectJson(
      await send('POST', '/api/v1/sessions/exit', operator, { ticket_number: checkIn.ticket_number }),
      200,
    )
    const after = await expectJson(await send('GET', `/api/v1/reservations/${id}`, customer), 200)
    expect(after).toMatchObject({ status: 'completed', session_id: checkIn.session.id })
    // Checked in already: a second check-in is a conflict.
    const again = await expectJson(await send('POST', `/api/v1/reservations/${id}/check-in`, operator), 409)
    // The problem's own status stays the HTTP status; the reservation's is an extension.
    expect(again).toMatchObject({
      status: 409,
      reason: 'already_checked_in',
      reservation_status: 'completed',
    })
  })
})

describe('Idempotency-Key on POST /reservations', () => {
  it('a retry with the same key and body answers the same reservation; another body is a 422', async () => {
    const { customer, vehicleId } = await customerWithCar()
    const start = inMinutes(9 * 60)
    const body = {
      vehicle_id: vehicleId,
      lot_id: lot.lotId,
      start_time: iso(start),
      end_time: iso(start + HOUR),
      prepay: true,
    }
    const key = `rsv-${randomUUID()}`
    const post = (b: unknown) =>
      platform.request('/api/v1/reservations', {
        method: 'POST',
        ...jsonBody(b, { ...bearer(customer.token), 'Idempotency-Key': key }),
      })
    const first = await expectJson(await post(body), 201)
    const retried = await expectJson(await post(body), 201)
    expect(retried.reservation.id).toBe(first.reservation.id)
    expect(retried.confirmation_number).toBe(first.confirmation_number)
    expect(retried.payment).toMatchObject({
      payment_intent_id: first.payment.payment_intent_id,
      amount: HOURLY,
      currency: 'EUR',
    })
    expect(await count('reservations', { vehicle_id: vehicleId })).toBe(1)
    const other = await expectJson(await post({ ...body, end_time: iso(start + 2 * HOUR) }), 422)
    expect(other.reason).toBe('idempotency_key_reused')
    expect(await count('reservations', { vehicle_id: vehicleId })).toBe(1)
    // Without a key, the same body is another booking.
    await book(customer, { ...body, start_time: iso(start + 2 * HOUR), end_time: iso(start + 3 * HOUR) })
    expect(await count('reservations', { vehicle_id: vehicleId })).toBe(2)
    // Not left unpaid for the expiry test's count.
    for (const r of (await expectJson(await send('GET', '/api/v1/reservations', customer), 200)).data)
      await expectJson(await send('DELETE', `/api/v1/reservations/${r.id}`, customer), 200)
  })
})

describe('no double booking', () => {
  it('1,000 concurrent bookings of the last free slot: exactly one (service)', async () => {
    const small = await oneSpaceLot()
    const start = atHour(24)
    const results = await Promise.allSettled(
      Array.from({ length: 1000 }, (_, i) =>
        service().create(callerOf(admin), {
          lot_id: small.lotId,
          license_plate: uniquePlate(),
          // Overlapping windows of different lengths, all on the one space.
          start_time: iso(start + (i % 4) * 15 * MIN),
          end_time: iso(start + 2 * HOUR),
        }),
      ),
    )
    const won = results.filter((r) => r.status === 'fulfilled')
    const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected')
    expect(won).toHaveLength(1)
    expect(
      new Set(lost.map((r) => (r.reason as { extensions?: { reason?: string } }).extensions?.reason)),
    ).toEqual(new Set(['no_space_available']))
    const winner = (won[0] as PromiseFulfilledResult<Json>).value.reservation
    const offset = Math.round((Date.parse(winner.start_time) - start) / (15 * MIN))
    expect(await count('reservation_slots', { space_id: small.spaceId })).toBe(8 - offset)
    expect(
      await count('reservation_slots', { space_id: small.spaceId, reservation_id: { $ne: winner.id } }),
    ).toBe(0)
  }, 300_000)

  it('50 concurrent bookings of one space over HTTP: exactly one', async () => {
    const small = await oneSpaceLot()
    const start = inMinutes(48 * 60)
    const responses = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        send('POST', '/api/v1/reservations', operator, {
          space_id: small.spaceId,
          license_plate: uniquePlate(),
          start_time: iso(start + (i % 3) * 30 * MIN),
          end_time: iso(start + 3 * HOUR + (i % 2) * 30 * MIN),
        }),
      ),
    )
    const statuses = responses.map((r) => r.status)
    expect(statuses.filter((s) => s === 201)).toHaveLength(1)
    expect(statuses.filter((s) => s === 409)).toHaveLength(49)
    const conflict = await json(responses.find((r) => r.status === 409) as Response)
    expect(conflict.reason).toBe('slot_taken')
  }, 120_000)
})

describe('check-in window edges', () => {
  it('too early just before opening, allowed at opening and at the grace end, too late just after', async () => {
    const start = inMinutes(3 * 60)
    const make = async () =>
      (
        await service().create(callerOf(operator), {
          lot_id: lot.lotId,
          license_plate: uniquePlate(),
          start_time: iso(start),
          end_time: iso(start + HOUR),
        })
      ).reservation
    const a = await make()
    const opens = start - 30 * MIN
    const closes = start + 30 * MIN
    const early = await service()
      .checkIn(callerOf(operator), a.id, new Date(opens - 1))
      .catch((e) => e)
    expect(early).toMatchObject({ status: 422, extensions: { reason: 'too_early', opens_at: iso(opens) } })
    const late = await service()
      .checkIn(callerOf(operator), a.id, new Date(closes + 1))
      .catch((e) => e)
    expect(late).toMatchObject({ status: 422, extensions: { reason: 'too_late' } })
    const atOpening = (await service().checkIn(callerOf(operator), a.id, new Date(opens))) as Json
    expect(atOpening.reservation.status).toBe('checked_in')

    const b = await make()
    const atGraceEnd = (await service().checkIn(callerOf(operator), b.id, new Date(closes))) as Json
    expect(atGraceEnd.reservation.status).toBe('checked_in')
    expect(atGraceEnd.session.reservation_id).toBe(b.id)
  })

  it('by plate at the gate; cancelled and unpaid reservations are refused', async () => {
    const start = inMinutes(15)
    const plate = uniquePlate()
    const r = await book(operator, {
      lot_id: lot.lotId,
      license_plate: plate,
      start_time: iso(start),
      end_time: iso(start + HOUR),
    })
    const cancelled = await book(operator, {
      lot_id: lot.lotId,
      license_plate: uniquePlate(),
      start_time: iso(start),
      end_time: iso(start + HOUR),
    })
    await expectJson(await send('DELETE', `/api/v1/reservations/${cancelled.reservation.id}`, operator), 200)
    const refused = await expectJson(
      await send('POST', `/api/v1/reservations/${cancelled.reservation.id}/check-in`, operator),
      409,
    )
    expect(refused).toMatchObject({ status: 409, reason: 'cancelled', reservation_status: 'cancelled' })

    const byPlate = await expectJson(
      await send('POST', '/api/v1/reservations/check-in', operator, {
        license_plate: plate.toLowerCase(),
        lot_id: lot.lotId,
      }),
      201,
    )
    expect(byPlate.reservation.id).toBe(r.reservation.id)
  })
})

describe('a booked car at the ordinary gate', () => {
  it('POST /sessions/entry of a plate whose check-in is open checks it in to its reservation', async () => {
    const { customer, plate, vehicleId } = await customerWithCar()
    const small = await oneSpaceLot()
    const start = inMinutes(10)
    const created = await book(customer, {
      vehicle_id: vehicleId,
      space_id: small.spaceId,
      start_time: iso(start),
      end_time: iso(start + HOUR),
    })
    const id = created.reservation.id as string
    const entry = await expectJson(
      await send('POST', '/api/v1/sessions/entry', operator, {
        license_plate: plate.toLowerCase(),
        lot_id: small.lotId,
      }),
      201,
    )
    expect(entry.session).toMatchObject({ reservation_id: id, space_id: small.spaceId })
    expect(entry.space_assigned.id).toBe(small.spaceId)
    const view = await expectJson(await send('GET', `/api/v1/reservations/${id}`, customer), 200)
    expect(view).toMatchObject({ status: 'checked_in', session_id: entry.session.id })
    // The gate's own check-in of it afterwards is a conflict, and no no-show follows.
    expect(await service().noShows(new Date(start + 31 * MIN))).toEqual({ no_shows: 0 })
    const again = await expectJson(await send('POST', `/api/v1/reservations/${id}/check-in`, operator), 409)
    expect(again.reason).toBe('already_checked_in')
  })

  it('a plate whose reservation is not open for check-in (or unpaid) enters as a walk-in', async () => {
    const plate = uniquePlate()
    const later = inMinutes(5 * 60)
    await book(operator, {
      lot_id: lot.lotId,
      license_plate: plate,
      start_time: iso(later),
      end_time: iso(later + HOUR),
    })
    expect(await service().arrivalCheckIn(plate, lot.lotId, callerOf(operator))).toBeNull()
    const { customer, plate: unpaidPlate, vehicleId } = await customerWithCar()
    const soon = inMinutes(10)
    const unpaid = await book(customer, {
      vehicle_id: vehicleId,
      lot_id: lot.lotId,
      start_time: iso(soon),
      end_time: iso(soon + HOUR),
      prepay: true,
    })
    const walkIn = await expectJson(
      await send('POST', '/api/v1/sessions/entry', operator, {
        license_plate: unpaidPlate,
        lot_id: lot.lotId,
      }),
      201,
    )
    expect(walkIn.session.reservation_id).toBeNull()
    await expectJson(
      await send('POST', '/api/v1/sessions/exit', operator, { ticket_number: walkIn.ticket_number }),
      402,
    )
    // Not left for the expiry test's count.
    await expectJson(await send('DELETE', `/api/v1/reservations/${unpaid.reservation.id}`, customer), 200)
  })
})

describe('holds, no-shows and expiry', () => {
  it('no-show: the job twice acts once; hold, slots and the hot state are free again', async () => {
    const small = await oneSpaceLot()
    const start = inMinutes(10)
    const created = await book(operator, {
      space_id: small.spaceId,
      license_plate: uniquePlate(),
      start_time: iso(start),
      end_time: iso(start + HOUR),
    })
    const id = created.reservation.id as string
    // Held since booking (check-in is open); the tick places it once.
    expect(await service().tick()).toMatchObject({ placed: 0 })
    expect((await platform.occupancy.state.space(small.spaceId))?.status).toBe('reserved')
    expect(await platform.occupancy.state.counts(small.zoneId)).toMatchObject({ reserved: 1 })
    // A walk-in is not given the reserved space.
    const walkIn = await send('POST', '/api/v1/sessions/entry', operator, {
      license_plate: uniquePlate(),
      lot_id: small.lotId,
    })
    expect(walkIn.status).toBe(409)

    const after = new Date(start + 31 * MIN)
    expect(await service().noShows(after)).toEqual({ no_shows: 1 })
    expect(await service().noShows(after)).toEqual({ no_shows: 0 })
    expect(await count('reservation_outcomes', { _id: id })).toBe(1)
    expect(await count('reservation_slots', { reservation_id: id })).toBe(0)
    const space = await platform.occupancy.state.space(small.spaceId)
    expect(space?.status).not.toBe('reserved')
    expect(space?.sessionId).toBeNull()
    expect(await platform.occupancy.state.counts(small.zoneId)).toMatchObject({ reserved: 0 })
    const view = await expectJson(await send('GET', `/api/v1/reservations/${id}`, operator), 200)
    expect(view.status).toBe('no_show')
    const refused = await expectJson(await send('DELETE', `/api/v1/reservations/${id}`, operator), 409)
    expect(refused.reason).toBe('no_show')
  })

  it('a hold waits while a car is on the space, and is placed on the next tick after it left', async () => {
    const small = await oneSpaceLot()
    const walkIn = await expectJson(
      await send('POST', '/api/v1/sessions/entry', operator, {
        license_plate: uniquePlate(),
        lot_id: small.lotId,
      }),
      201,
    )
    const start = inMinutes(20)
    const created = await book(operator, {
      space_id: small.spaceId,
      license_plate: uniquePlate(),
      start_time: iso(start),
      end_time: iso(start + HOUR),
    })
    expect(await service().tick()).toMatchObject({ placed: 0 })
    expect((await platform.occupancy.state.space(small.spaceId))?.status).toBe('occupied')
    await expectJson(
      await send('POST', '/api/v1/sessions/exit', operator, { ticket_number: walkIn.ticket_number }),
      200,
    )
    expect(await service().tick()).toMatchObject({ placed: 1 })
    expect(await service().tick()).toMatchObject({ placed: 0 })
    expect((await platform.occupancy.state.space(small.spaceId))?.status).toBe('reserved')
    await expectJson(await send('DELETE', `/api/v1/reservations/${created.reservation.id}`, operator), 200)
    expect((await platform.occupancy.state.space(small.spaceId))?.status).not.toBe('reserved')
  })

  it('unpaid prepay expires after the timeout (twice = once) and frees its slots', async () => {
    const { customer, vehicleId } = await customerWithCar()
    const start = inMinutes(5 * 60)
    const created = await book(customer, {
      vehicle_id: vehicleId,
      lot_id: lot.lotId,
      start_time: iso(start),
      end_time: iso(start + HOUR),
      prepay: true,
    })
    const id = created.reservation.id as string
    expect(await service().expireUnpaid(new Date())).toEqual({ expired: 0 })
    const later = new Date(Date.now() + 16 * MIN)
    expect(await service().expireUnpaid(later)).toEqual({ expired: 1 })
    expect(await service().expireUnpaid(later)).toEqual({ expired: 0 })
    expect(await count('reservation_slots', { reservation_id: id })).toBe(0)
    const view = await expectJson(await send('GET', `/api/v1/reservations/${id}`, customer), 200)
    expect(view.status).toBe('expired')
    await expectJson(await send('POST', `/api/v1/reservations/${id}/pay`, customer, {}), 409)
  })

  it('the jobs page through every due row: 250 unpaid reservations expire in one run', async () => {
    const now = new Date()
    const past = new Date(now.getTime() - HOUR)
    const lotId = randomUUID()
    const docs = Array.from({ length: 250 }, (_, i) => ({
      _id: randomUUID(),
      confirmation_number: `RSV-BULK${i}`,
      user_id: null,
      created_by: admin.id,
      lot_id: lotId,
      level_id: randomUUID(),
      zone_id: randomUUID(),
      space_id: randomUUID(),
      space_number: 'B-1',
      space_type: 'STANDARD',
      vehicle_id: null,
      license_plate: uniquePlate(),
      plate: uniquePlate(),
      vehicle_type: 'standard',
      start_at: new Date(now.getTime() + 2 * HOUR),
      end_at: new Date(now.getTime() + 3 * HOUR),
      slot_ids: [],
      special_requests: null,
      status: 'pending_payment',
      prepay: true,
      amount: HOURLY,
      currency: 'EUR',
      payment_intent_id: null,
      payment_deadline: past,
      paid_at: null,
      hold_from: new Date(now.getTime() + 90 * MIN),
      no_show_at: new Date(now.getTime() + 150 * MIN),
      held: false,
      session_id: null,
      checked_in_at: null,
      cancelled_at: null,
      refund_amount: null,
      refund_id: null,
      created_at: past,
      updated_at: past,
    }))
    await db.collection('reservations').insertMany(docs as never[])
    expect((await service().expireUnpaid(now)).expired).toBeGreaterThanOrEqual(250)
    expect(await count('reservations', { lot_id: lotId, status: 'expired' })).toBe(250)
    expect(await service().expireUnpaid(now)).toEqual({ expired: 0 })
  }, 120_000)

  it('a check-in outcome left by a check-in that died (no session) is cleared: check-in again, or a no-show', async () => {
    const start = inMinutes(10)
    const make = async () =>
      (
        await book(operator, {
          lot_id: lot.lotId,
          license_plate: uniquePlate(),
          start_time: iso(start),
          end_time: iso(start + HOUR),
        })
      ).reservation.id as string
    const crashed = (id: string) =>
      db.collection('reservation_outcomes').insertOne({
        _id: id,
        outcome: 'checked_in',
        at: new Date(Date.now() - 10 * MIN),
        by: operator.id,
        token: randomUUID(),
      } as never)
    const again = await make()
    await crashed(again)
    const checkedIn = await expectJson(
      await send('POST', `/api/v1/reservations/${again}/check-in`, operator),
      201,
    )
    expect(checkedIn.session.reservation_id).toBe(again)
    // A check-in outcome that is recent (a check-in at work) or has its session stays.
    expect(await service().noShows(new Date(start + 31 * MIN))).toMatchObject({})
    const kept = await expectJson(await send('GET', `/api/v1/reservations/${again}`, operator), 200)
    expect(kept.status).toBe('checked_in')

    const noShow = await make()
    await crashed(noShow)
    await service().noShows(new Date(start + 31 * MIN))
    const view = await expectJson(await send('GET', `/api/v1/reservations/${noShow}`, operator), 200)
    expect(view.status).toBe('no_show')
    expect(await count('reservation_slots', { reservation_id: noShow })).toBe(0)
  })

  it('a Stripe webhook for the intent confirms the reservation', async () => {
    const { customer, vehicleId } = await customerWithCar()
    const start = inMinutes(6 * 60)
    const created = await book(customer, {
      vehicle_id: vehicleId,
      lot_id: lot.lotId,
      start_time: iso(start),
      end_time: iso(start + HOUR),
      prepay: true,
    })
    const intentId = created.payment.payment_intent_id as string
    stripeSays.set(intentId, 'succeeded')
    const event = {
      id: `evt_${randomUUID().replaceAll('-', '')}`,
      object: 'event',
      type: 'payment_intent.succeeded',
      data: {
        object: {
          id: intentId,
          object: 'payment_intent',
          status: 'succeeded',
          metadata: { purpose: 'reservation', reservation_id: created.reservation.id },
        },
      },
    }
    const payload = JSON.stringify(event)
    const header = Stripe.webhooks.generateTestHeaderString({ payload, secret: WEBHOOK_SECRET })
    await expectJson(
      await platform.request('/api/v1/webhooks/stripe', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'Stripe-Signature': header },
        body: payload,
      }),
      200,
    )
    const view = await expectJson(
      await send('GET', `/api/v1/reservations/${created.reservation.id}`, customer),
      200,
    )
    expect(view).toMatchObject({ status: 'confirmed', payment_status: 'paid' })
  })
})

describe('paying a prepaid reservation', () => {
  it('another card after a decline is a new request at Stripe (its own idempotency key)', async () => {
    const { customer, vehicleId } = await customerWithCar()
    const start = inMinutes(7 * 60)
    const created = await book(customer, {
      vehicle_id: vehicleId,
      lot_id: lot.lotId,
      start_time: iso(start),
      end_time: iso(start + HOUR),
      prepay: true,
    })
    const id = created.reservation.id as string
    const intentId = created.payment.payment_intent_id as string
    stripeSays.set(intentId, 'requires_payment_method')
    const declined = await expectJson(
      await send('POST', `/api/v1/reservations/${id}/pay`, customer, { payment_method: 'pm_card_visa' }),
      402,
    )
    expect(declined.intent_status).toBe('requires_payment_method')
    stripeSays.set(intentId, 'succeeded')
    const paid = await expectJson(
      await send('POST', `/api/v1/reservations/${id}/pay`, customer, {
        payment_method: 'pm_card_mastercard',
      }),
      200,
    )
    expect(paid).toMatchObject({ status: 'confirmed', payment_status: 'paid' })
    const keys = confirms.filter((c) => c.id === intentId).map((c) => c.idempotencyKey)
    expect(keys).toHaveLength(2)
    expect(new Set(keys).size).toBe(2)
    expect(keys[1]).toContain('pm_card_mastercard')
  })
})

describe('cancellation refunds against stripe-mock', () => {
  async function paidReservation(startInMinutes: number) {
    const { customer, vehicleId } = await customerWithCar()
    const start = inMinutes(startInMinutes)
    const created = await book(customer, {
      vehicle_id: vehicleId,
      lot_id: lot.lotId,
      start_time: iso(start),
      end_time: iso(start + 2 * HOUR),
      prepay: true,
    })
    stripeSays.set(created.payment.payment_intent_id, 'succeeded')
    await expectJson(
      await send('POST', `/api/v1/reservations/${created.reservation.id}/pay`, customer, {}),
      200,
    )
    return {
      customer,
      id: created.reservation.id as string,
      start,
      intentId: created.payment.payment_intent_id as string,
    }
  }
  const refundsOf = (intentId: string) => refunds.filter((r) => r.paymentIntentId === intentId)

  it('in full at least 24 hours ahead, once however often it is cancelled', async () => {
    const r = await paidReservation(48 * 60)
    const cancelled = await expectJson(await send('DELETE', `/api/v1/reservations/${r.id}`, r.customer), 200)
    expect(cancelled).toMatchObject({
      status: 'cancelled',
      payment_status: 'refunded',
      refund: { amount: 2 * HOURLY, currency: 'EUR', status: 'succeeded' },
    })
    const again = await expectJson(await send('DELETE', `/api/v1/reservations/${r.id}`, r.customer), 200)
    expect(again.refund.amount).toBe(2 * HOURLY)
    expect(refundsOf(r.intentId)).toHaveLength(1)
    expect(refundsOf(r.intentId)[0]?.idempotencyKey).toBe(`reservation-refund:${r.id}`)
  })

  it('half later but before the start', async () => {
    const r = await paidReservation(2 * 60)
    const cancelled = await expectJson(await send('DELETE', `/api/v1/reservations/${r.id}`, r.customer), 200)
    expect(cancelled.refund).toMatchObject({ amount: HOURLY, status: 'succeeded' })
    expect(refundsOf(r.intentId)).toHaveLength(1)
  })

  it('a refund whose answer was lost stays in doubt and the tick asks again with the same key', async () => {
    const r = await paidReservation(72 * 60)
    loseNextRefund = true
    const cancelled = await expectJson(await send('DELETE', `/api/v1/reservations/${r.id}`, r.customer), 200)
    expect(cancelled.refund).toMatchObject({ amount: 2 * HOURLY, status: 'pending', refund_id: null })
    expect((await service().tick()).refunded).toBeGreaterThanOrEqual(1)
    const view = await expectJson(await send('GET', `/api/v1/reservations/${r.id}`, r.customer), 200)
    expect(view.refund).toMatchObject({ amount: 2 * HOURLY, status: 'succeeded' })
    expect(refundsOf(r.intentId).map((x) => x.idempotencyKey)).toEqual([
      `reservation-refund:${r.id}`,
      `reservation-refund:${r.id}`,
    ])
    expect(await count('reservation_refunds', { _id: r.id })).toBe(1)
  })

  it('a payment Stripe took before a late cancel (its webhook not in yet) is refunded by the late rule', async () => {
    const { customer, vehicleId } = await customerWithCar()
    const start = inMinutes(2 * 60)
    const created = await book(customer, {
      vehicle_id: vehicleId,
      lot_id: lot.lotId,
      start_time: iso(start),
      end_time: iso(start + 2 * HOUR),
      prepay: true,
    })
    const intentId = created.payment.payment_intent_id as string
    // Paid at Stripe; the platform has not heard of it yet.
    stripeSays.set(intentId, 'succeeded')
    const cancelled = await expectJson(
      await send('DELETE', `/api/v1/reservations/${created.reservation.id}`, customer),
      200,
    )
    expect(cancelled).toMatchObject({
      status: 'cancelled',
      payment_status: 'refunded',
      refund: { amount: HOURLY, status: 'succeeded' },
    })
    expect(refundsOf(intentId).map((r) => r.amount)).toEqual([HOURLY])
  })

  it('a refund Stripe refuses is kept as refused and tried again by the tick after a backoff', async () => {
    const r = await paidReservation(96 * 60)
    refuseNextRefund = true
    const cancelled = await expectJson(await send('DELETE', `/api/v1/reservations/${r.id}`, r.customer), 200)
    expect(cancelled).toMatchObject({
      status: 'cancelled',
      payment_status: 'paid',
      refund: { amount: 2 * HOURLY, status: 'refused', refund_id: null },
    })
    expect(cancelled.refund.failure_reason).toContain('disputed')
    // Cancelling again does not ask Stripe again; nor does the tick before the backoff.
    await expectJson(await send('DELETE', `/api/v1/reservations/${r.id}`, r.customer), 200)
    await service().tick()
    expect(refundsOf(r.intentId)).toHaveLength(1)
    await service().tick(new Date(Date.now() + 6 * MIN))
    const view = await expectJson(await send('GET', `/api/v1/reservations/${r.id}`, r.customer), 200)
    expect(view).toMatchObject({
      payment_status: 'refunded',
      refund: { amount: 2 * HOURLY, status: 'succeeded', failure_reason: null },
    })
    // Stripe would answer a refused key's refusal again: the retry has a key of its own.
    expect(refundsOf(r.intentId).map((x) => x.idempotencyKey)).toEqual([
      `reservation-refund:${r.id}`,
      `reservation-refund:${r.id}:1`,
    ])
    await service().tick(new Date(Date.now() + HOUR))
    expect(refundsOf(r.intentId)).toHaveLength(2)
  })

  it('nothing after the start', async () => {
    const r = await paidReservation(60)
    const cancelled = await service().cancel(callerOf(r.customer), r.id, new Date(r.start + MIN))
    expect(cancelled).toMatchObject({ status: 'cancelled', refund: null, payment_status: 'paid' })
    expect(refundsOf(r.intentId)).toHaveLength(0)
  })
})

describe('updates', () => {
  it('a new window that overlaps another booking is a 409 and changes nothing; a free one moves the slots', async () => {
    const small = await oneSpaceLot()
    const ten = atHour(30)
    const a = await book(operator, {
      space_id: small.spaceId,
      license_plate: uniquePlate(),
      start_time: iso(ten),
      end_time: iso(ten + 2 * HOUR),
    })
    const b = await book(operator, {
      space_id: small.spaceId,
      license_plate: uniquePlate(),
      start_time: iso(ten + 2 * HOUR),
      end_time: iso(ten + 4 * HOUR),
    })
    const conflict = await expectJson(
      await send('PUT', `/api/v1/reservations/${a.reservation.id}`, operator, {
        end_time: iso(ten + 3 * HOUR),
      }),
      409,
    )
    expect(conflict.reason).toBe('slot_taken')
    const unchanged = await expectJson(
      await send('GET', `/api/v1/reservations/${a.reservation.id}`, operator),
      200,
    )
    expect(unchanged.end_time).toBe(iso(ten + 2 * HOUR))
    expect(await count('reservation_slots', { reservation_id: a.reservation.id })).toBe(8)
    expect(await count('reservation_slots', { reservation_id: b.reservation.id })).toBe(8)

    const moved = await expectJson(
      await send('PUT', `/api/v1/reservations/${a.reservation.id}`, operator, {
        start_time: iso(ten - HOUR),
        end_time: iso(ten + HOUR),
        special_requests: 'Moved',
      }),
      200,
    )
    expect(moved).toMatchObject({
      start_time: iso(ten - HOUR),
      end_time: iso(ten + HOUR),
      special_requests: 'Moved',
    })
    expect(await count('reservation_slots', { reservation_id: a.reservation.id })).toBe(8)
    // The hour it let go of can be booked again.
    await book(operator, {
      space_id: small.spaceId,
      license_plate: uniquePlate(),
      start_time: iso(ten + HOUR),
      end_time: iso(ten + 2 * HOUR),
    })
  })
})

describe('validation', () => {
  it('bad windows are 422 with the field and reason; a missing place is a 400', async () => {
    const start = inMinutes(60)
    const cases: [Record<string, string>, string, string][] = [
      [{ start_time: iso(start), end_time: iso(start) }, 'end_time', 'end_before_start'],
      [{ start_time: iso(Date.now() - 2 * HOUR), end_time: iso(start) }, 'start_time', 'start_in_past'],
      [{ start_time: iso(start), end_time: iso(start + 73 * HOUR) }, 'end_time', 'too_long'],
    ]
    for (const [window, field, reason] of cases) {
      const query = new URLSearchParams({ ...window, lot_id: lot.lotId })
      const problem = await expectJson(
        await send('GET', `/api/v1/reservations/availability?${query}`, operator),
        422,
      )
      expect(problem).toMatchObject({ reason, errors: [{ field, reason }] })
      const created = await expectJson(
        await send('POST', '/api/v1/reservations', operator, {
          ...window,
          lot_id: lot.lotId,
          license_plate: uniquePlate(),
        }),
        422,
      )
      expect(created).toMatchObject({ reason, errors: [{ field, reason }] })
    }
    const noPlace = await expectJson(
      await send(
        'GET',
        `/api/v1/reservations/availability?start_time=${iso(start)}&end_time=${iso(start + HOUR)}`,
        operator,
      ),
      400,
    )
    expect(noPlace.errors[0].field).toBe('lot_id')
    await expectJson(
      await send('POST', '/api/v1/reservations', operator, {
        lot_id: lot.lotId,
        start_time: iso(start),
        end_time: iso(start + HOUR),
        extra: 1,
      }),
      400,
    )
  })
})

describe('roles and ownership', () => {
  it("customer A cannot see, change, cancel, pay or check in B's reservation; operators can", async () => {
    const a = await customerWithCar()
    const b = await customerWithCar()
    const start = inMinutes(10)
    const created = await book(a.customer, {
      vehicle_id: a.vehicleId,
      lot_id: lot.lotId,
      start_time: iso(start),
      end_time: iso(start + HOUR),
    })
    const id = created.reservation.id as string
    // B may not book A's car, by id or by plate.
    await expectJson(
      await send('POST', '/api/v1/reservations', b.customer, {
        vehicle_id: a.vehicleId,
        lot_id: lot.lotId,
        start_time: iso(start),
        end_time: iso(start + HOUR),
      }),
      404,
    )
    await expectJson(
      await send('POST', '/api/v1/reservations', b.customer, {
        license_plate: a.plate,
        lot_id: lot.lotId,
        start_time: iso(start),
        end_time: iso(start + HOUR),
      }),
      422,
    )
    for (const [method, path, body] of [
      ['GET', `/api/v1/reservations/${id}`, undefined],
      ['GET', `/api/v1/reservations/confirmation/${created.confirmation_number}`, undefined],
      ['PUT', `/api/v1/reservations/${id}`, { special_requests: 'mine now' }],
      ['DELETE', `/api/v1/reservations/${id}`, undefined],
      ['POST', `/api/v1/reservations/${id}/pay`, {}],
      ['POST', `/api/v1/reservations/${id}/check-in`, undefined],
    ] as const) {
      await expectJson(await send(method, path, b.customer, body), 404)
    }
    const listB = await expectJson(await send('GET', '/api/v1/reservations', b.customer), 200)
    expect(listB.data).toHaveLength(0)
    const listA = await expectJson(await send('GET', '/api/v1/reservations', a.customer), 200)
    expect(listA.data.map((r: Json) => r.id)).toEqual([id])
    const staffList = await expectJson(
      await send('GET', `/api/v1/reservations?lot_id=${lot.lotId}&status=confirmed&limit=100`, operator),
      200,
    )
    expect(staffList.data.map((r: Json) => r.id)).toContain(id)
    // Customers do not work the gate.
    await expectJson(
      await send('POST', '/api/v1/reservations/check-in', a.customer, {
        confirmation_number: created.confirmation_number,
      }),
      403,
    )
    await expectJson(await send('GET', `/api/v1/reservations/${id}`, operator), 200)
    const checkedIn = await expectJson(
      await send('POST', `/api/v1/reservations/${id}/check-in`, operator),
      201,
    )
    expect(checkedIn.session.reservation_id).toBe(id)
  })

  it.each([
    [
      'GET',
      '/api/v1/reservations/availability?start_time=2030-01-01T00:00:00Z&end_time=2030-01-01T01:00:00Z',
    ],
    ['POST', '/api/v1/reservations'],
    ['GET', '/api/v1/reservations'],
    ['GET', '/api/v1/reservations/confirmation/RSV-ABCDEFGH'],
    ['POST', '/api/v1/reservations/check-in'],
    ['GET', `/api/v1/reservations/${randomUUID()}`],
    ['PUT', `/api/v1/reservations/${randomUUID()}`],
    ['DELETE', `/api/v1/reservations/${randomUUID()}`],
    ['POST', `/api/v1/reservations/${randomUUID()}/pay`],
    ['POST', `/api/v1/reservations/${randomUUID()}/check-in`],
  ])('%s %s needs a signed-in caller', async (method, path) => {
    await expectJson(
      await send(method, path, undefined, method === 'GET' || method === 'DELETE' ? undefined : {}),
      401,
    )
  })

  it.each([
    ['GET', ''],
    ['PUT', ''],
    ['DELETE', ''],
    ['POST', '/pay'],
    ['POST', '/check-in'],
  ])('%s /reservations/{id}%s of no reservation is a 404', async (method, suffix) => {
    const body =
      method === 'PUT' ? { special_requests: 'x' } : method === 'POST' && suffix === '/pay' ? {} : undefined
    await expectJson(await send(method, `/api/v1/reservations/${randomUUID()}${suffix}`, operator, body), 404)
  })

  it('an unknown confirmation number is a 404', async () => {
    await expectJson(await send('GET', '/api/v1/reservations/confirmation/RSV-ZZZZZZZZ', operator), 404)
    await expectJson(
      await send('POST', '/api/v1/reservations/check-in', operator, { confirmation_number: 'RSV-ZZZZZZZZ' }),
      404,
    )
  })
})
