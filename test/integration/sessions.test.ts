import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connectRedis } from '../../src/shared/redis.ts'
import { type Account, bearer, createAccount, jsonBody, signInAdmin, testAdmin } from '../harness/accounts.ts'
import { createLot, enterVehicle, type TestLot, uniquePlate } from '../harness/facility.ts'
import { json, requester } from '../harness/http.ts'
import { startTestPlatform, type TestPlatform } from '../harness/platform.ts'

let platform: TestPlatform
let admin: Account
let operator: Account
let customer: Account
let otherCustomer: Account

beforeAll(async () => {
  platform = await startTestPlatform(testAdmin)
  admin = await signInAdmin(platform)
  ;[operator, customer, otherCustomer] = await Promise.all([
    createAccount(platform, admin, 'operator'),
    createAccount(platform, admin, 'customer'),
    createAccount(platform, admin, 'customer'),
  ])
})
afterAll(async () => {
  await platform?.stop()
})

const send = requester(() => platform)

const availability = async (lot: TestLot) =>
  await json(await send('GET', `/api/v1/zones/${lot.zoneId}/availability`, undefined))

const exit = (body: Record<string, unknown>, account: Account = operator) =>
  send('POST', '/api/v1/sessions/exit', account, body)

describe('entry', () => {
  it('opens a session with a ticket and a space, and the space counts as occupied at once', async () => {
    const lot = await createLot(platform, admin, { spaces: { STANDARD: 3 } })
    const before = await availability(lot)
    expect(before).toMatchObject({ total: 3, occupied: 0 })

    const plate = uniquePlate()
    const res = await send('POST', '/api/v1/sessions/entry', operator, {
      license_plate: plate.toLowerCase(),
      lot_id: lot.lotId,
      entry_gate: 'Main Entrance',
    })
    expect(res.status).toBe(201)
    const entry = await json(res)
    expect(entry.ticket_number).toMatch(/^TKT-[0-9A-F]{12}$/)
    expect(entry.session).toMatchObject({
      status: 'active',
      lot_id: lot.lotId,
      plate_normalized: plate,
      entry_gate: 'Main Entrance',
      vehicle_type: 'standard',
      ticket_number: entry.ticket_number,
    })
    expect(entry.space_assigned).toMatchObject({
      type: 'STANDARD',
      space_number: expect.stringMatching(/^S-00[1-3]$/),
      zone: { id: lot.zoneId, name: 'Zone A', level: { id: lot.levelId, name: 'Level 1' } },
    })
    expect(entry.session.space_id).toBe(entry.space_assigned.id)

    // Spaces without a sensor are unknown; the held one counts as occupied.
    expect(await availability(lot)).toMatchObject({ total: 3, occupied: 1, unknown: 2 })
    const state = await json(await send('GET', `/api/v1/spaces/${entry.space_assigned.id}/state`, operator))
    expect(state).toMatchObject({ status: 'occupied', session_id: entry.session.id })
  })

  it('answers 409 already_parked for a plate that is parked, in any spelling', async () => {
    const lot = await createLot(platform, admin)
    const plate = uniquePlate()
    const first = await enterVehicle(platform, operator, { license_plate: plate, lot_id: lot.lotId })
    const again = await send('POST', '/api/v1/sessions/entry', operator, {
      license_plate: `${plate.slice(0, 3)}-${plate.slice(3).toLowerCase()}`,
      lot_id: lot.lotId,
    })
    expect(again.status).toBe(409)
    expect(await json(again)).toMatchObject({
      code: 'CONFLICT',
      reason: 'already_parked',
      session_id: first.session.id,
    })
  })

  it('gives one session to 50 concurrent entries of one plate', async () => {
    const lot = await createLot(platform, admin, { spaces: { STANDARD: 60 } })
    const plate = uniquePlate()
    const results = await Promise.all(
      Array.from({ length: 50 }, () =>
        send('POST', '/api/v1/sessions/entry', operator, { license_plate: plate, lot_id: lot.lotId }),
      ),
    )
    const statuses = results.map((r) => r.status)
    expect(statuses.filter((s) => s === 201)).toHaveLength(1)
    expect(statuses.filter((s) => s !== 201 && s !== 409)).toEqual([])
    const active = await json(await send('GET', `/api/v1/sessions/active?lot_id=${lot.lotId}`, operator))
    expect(active.data.map((s: { plate_normalized: string }) => s.plate_normalized)).toEqual([plate])
    // The losers let go of the spaces they were given.
    expect(await availability(lot)).toMatchObject({ total: 60, occupied: 1 })
  })

  it('gives the last free space to exactly one of 50 concurrent entries; the rest hear lot_full', async () => {
    const lot = await createLot(platform, admin, { spaces: { STANDARD: 1 } })
    const results = await Promise.all(
      Array.from({ length: 50 }, () =>
        send('POST', '/api/v1/sessions/entry', operator, { license_plate: uniquePlate(), lot_id: lot.lotId }),
      ),
    )
    const statuses = results.map((r) => r.status)
    expect(statuses.filter((s) => s === 201)).toHaveLength(1)
    const refusals = await Promise.all(results.filter((r) => r.status !== 201).map((r) => json(r)))
    expect(new Set(refusals.map((p) => `${p.status} ${p.reason}`))).toEqual(new Set(['409 lot_full']))
    expect(await availability(lot)).toMatchObject({ total: 1, occupied: 1, available: 0 })
  })

  it('keeps EV bays for EVs and accessible bays for permit holders', async () => {
    const lot = await createLot(platform, admin, { spaces: { EV: 1, HANDICAPPED: 1 } })
    const car = await send('POST', '/api/v1/sessions/entry', operator, {
      license_plate: uniquePlate(),
      lot_id: lot.lotId,
    })
    expect(car.status).toBe(409)
    expect(await json(car)).toMatchObject({ reason: 'lot_full', space_types: ['STANDARD'] })

    const ev = await enterVehicle(platform, operator, {
      license_plate: uniquePlate(),
      lot_id: lot.lotId,
      is_ev: true,
    })
    expect(ev.space_assigned.type).toBe('EV')
    const permit = await enterVehicle(platform, operator, {
      license_plate: uniquePlate(),
      lot_id: lot.lotId,
      accessible: true,
    })
    expect(permit.space_assigned.type).toBe('HANDICAPPED')
  })

  it('takes the type of a registered vehicle and links the session to its owner', async () => {
    const lot = await createLot(platform, admin, { spaces: { STANDARD: 1, MOTORCYCLE: 1 } })
    const plate = uniquePlate()
    const vehicle = await json(
      await send('POST', '/api/v1/vehicles', customer, {
        license_plate: plate,
        vehicle_type_id: 'motorcycle',
      }),
    )
    const entry = await enterVehicle(platform, operator, { license_plate: plate, lot_id: lot.lotId })
    expect(entry.session).toMatchObject({
      vehicle_id: vehicle.id,
      user_id: customer.id,
      vehicle_type: 'motorcycle',
    })
    expect(entry.space_assigned.type).toBe('MOTORCYCLE')

    const own = await send('GET', `/api/v1/sessions/${entry.session.id}`, customer)
    expect(own.status).toBe(200)
    expect((await send('GET', `/api/v1/sessions/${entry.session.id}`, otherCustomer)).status).toBe(404)
    const mine = await json(await send('GET', '/api/v1/sessions', customer))
    expect(mine.data.map((s: { id: string }) => s.id)).toEqual([entry.session.id])
    expect((await json(await send('GET', '/api/v1/sessions', otherCustomer))).data).toEqual([])
  })

  it('refuses an uncertain plate read, and entries without a lot when there are several', async () => {
    const lot = await createLot(platform, admin)
    const lpr = await send('POST', '/api/v1/sessions/entry', operator, {
      license_plate: uniquePlate(),
      lot_id: lot.lotId,
      source: 'lpr',
      lpr_confidence: 0.4,
    })
    expect(lpr.status).toBe(422)
    expect(await json(lpr)).toMatchObject({ code: 'UNPROCESSABLE', reason: 'low_confidence' })
    const sure = await enterVehicle(platform, operator, {
      license_plate: uniquePlate(),
      lot_id: lot.lotId,
      source: 'lpr',
      lpr_confidence: 0.97,
    })
    expect(sure.session).toMatchObject({ entry_source: 'lpr', lpr_confidence: 0.97 })

    const noLot = await send('POST', '/api/v1/sessions/entry', operator, { license_plate: uniquePlate() })
    expect(noLot.status).toBe(400)
    expect((await json(noLot)).errors).toEqual([expect.objectContaining({ field: 'lot_id' })])
  })

  it('answers 404 for an unknown lot and zone', async () => {
    const lot = await createLot(platform, admin)
    const unknown = '0193a5c2-7f1e-7b3c-9a41-2f0c8e1d4b6a'
    const noLot = await send('POST', '/api/v1/sessions/entry', operator, {
      license_plate: uniquePlate(),
      lot_id: unknown,
    })
    expect(noLot.status).toBe(404)
    const noZone = await send('POST', '/api/v1/sessions/entry', operator, {
      license_plate: uniquePlate(),
      lot_id: lot.lotId,
      zone_id: unknown,
    })
    expect(noZone.status).toBe(404)
  })
})

describe('exit', () => {
  it('closes a free stay, frees the space, refuses a second exit and lets the plate in again', async () => {
    const lot = await createLot(platform, admin, { spaces: { STANDARD: 1 } })
    const plate = uniquePlate()
    const entry = await enterVehicle(platform, operator, { license_plate: plate, lot_id: lot.lotId })
    expect(await availability(lot)).toMatchObject({ occupied: 1 })

    const res = await exit({ ticket_number: entry.ticket_number.toLowerCase(), exit_gate: 'Exit A' })
    expect(res.status).toBe(200)
    const done = await json(res)
    expect(done.session).toMatchObject({ status: 'closed', exit_gate: 'Exit A', fee_total: 0 })
    expect(done.fee).toMatchObject({ total: 0, currency: lot.currency })
    expect(await availability(lot)).toMatchObject({ occupied: 0, unknown: 1 })

    const twice = await exit({ ticket_number: entry.ticket_number })
    expect(twice.status).toBe(409)
    expect(await json(twice)).toMatchObject({ reason: 'already_exited' })

    const again = await enterVehicle(platform, operator, { license_plate: plate, lot_id: lot.lotId })
    expect(again.session.id).not.toBe(entry.session.id)
  })

  it('tells the closing listeners again when an exit is retried after one of them failed', async () => {
    const listener = platform.services.reservations.listener
    const original = listener.sessionClosed
    const told: string[] = []
    let failures = 1
    listener.sessionClosed = async (facts, fee) => {
      told.push(facts.id)
      if (failures-- > 0) throw new Error('a database hiccup')
      await original(facts, fee)
    }
    try {
      const lot = await createLot(platform, admin, { spaces: { STANDARD: 1 } })
      const entry = await enterVehicle(platform, operator, {
        license_plate: uniquePlate(),
        lot_id: lot.lotId,
      })
      expect((await exit({ ticket_number: entry.ticket_number })).status).toBe(200) // the failure is logged
      const retried = await exit({ ticket_number: entry.ticket_number })
      expect(retried.status).toBe(409)
      expect(told).toEqual([entry.session.id, entry.session.id])
    } finally {
      listener.sessionClosed = original
    }
  })

  it('exits by plate with a lost ticket, and 404s an unknown ticket or plate', async () => {
    const lot = await createLot(platform, admin)
    const plate = uniquePlate()
    await enterVehicle(platform, operator, { license_plate: plate, lot_id: lot.lotId })
    const res = await exit({ license_plate: plate, lost_ticket: true })
    expect(res.status).toBe(200)
    expect((await json(res)).session).toMatchObject({ lost_ticket: true, status: 'closed' })
    expect((await exit({ license_plate: plate })).status).toBe(404)
    expect((await exit({ ticket_number: 'TKT-000000000000' })).status).toBe(404)
  })

  it('says which fields are wrong', async () => {
    const res = await exit({ ticket_number: 'nope' })
    expect(res.status).toBe(400)
    const problem = await json(res)
    expect(problem.code).toBe('VALIDATION_FAILED')
    expect(problem.errors.length).toBeGreaterThan(0)
  })
})

describe('lookups and assignment', () => {
  it('shows a ticket to anyone, without the plate or the owner', async () => {
    const lot = await createLot(platform, admin)
    const entry = await enterVehicle(platform, operator, { license_plate: uniquePlate(), lot_id: lot.lotId })
    const res = await send('GET', `/api/v1/sessions/ticket/${entry.ticket_number}`, undefined)
    expect(res.status).toBe(200)
    const view = await json(res)
    expect(view).toMatchObject({ ticket_number: entry.ticket_number, status: 'active', lot_id: lot.lotId })
    expect(Object.keys(view)).not.toContain('license_plate')
    expect(Object.keys(view)).not.toContain('user_id')
    expect((await send('GET', '/api/v1/sessions/ticket/TKT-FFFFFFFFFFFF', undefined)).status).toBe(404)
  })

  it('moves a session to a free space by hand and refuses a taken one', async () => {
    const lot = await createLot(platform, admin, { spaces: { STANDARD: 3 } })
    const a = await enterVehicle(platform, operator, { license_plate: uniquePlate(), lot_id: lot.lotId })
    const b = await enterVehicle(platform, operator, { license_plate: uniquePlate(), lot_id: lot.lotId })
    const spaces = await json(await send('GET', `/api/v1/spaces?zone_id=${lot.zoneId}&limit=10`, operator))
    const free = spaces.data.find(
      (s: { id: string }) => s.id !== a.space_assigned.id && s.id !== b.space_assigned.id,
    )
    const taken = await send('POST', `/api/v1/sessions/${a.session.id}/assign-space`, operator, {
      space_id: b.space_assigned.id,
    })
    expect(taken.status).toBe(409)
    expect(await json(taken)).toMatchObject({ reason: 'space_taken' })

    const moved = await send('POST', `/api/v1/sessions/${a.session.id}/assign-space`, operator, {
      space_id: free.id,
    })
    expect(moved.status).toBe(200)
    expect((await json(moved)).session).toMatchObject({ space_id: free.id })
    const old = await json(await send('GET', `/api/v1/spaces/${a.space_assigned.id}/state`, operator))
    expect(old).toMatchObject({ session_id: null })
    expect(await availability(lot)).toMatchObject({ occupied: 2, unknown: 1 })
  })

  it('refuses a space of another lot and leaves the session where it was', async () => {
    const [here, there] = await Promise.all([createLot(platform, admin), createLot(platform, admin)])
    const entry = await enterVehicle(platform, operator, { license_plate: uniquePlate(), lot_id: here.lotId })
    const elsewhere = await json(
      await send('GET', `/api/v1/spaces?zone_id=${there.zoneId}&limit=1`, operator),
    )
    const res = await send('POST', `/api/v1/sessions/${entry.session.id}/assign-space`, operator, {
      space_id: elsewhere.data[0].id,
    })
    expect(res.status).toBe(422)
    expect(await json(res)).toMatchObject({ reason: 'wrong_lot' })
    const state = await json(await send('GET', `/api/v1/spaces/${entry.space_assigned.id}/state`, operator))
    expect(state).toMatchObject({ session_id: entry.session.id, status: 'occupied' })
    expect(await availability(there)).toMatchObject({ occupied: 0 })
  })

  it('lists active sessions with their fee so far', async () => {
    const lot = await createLot(platform, admin)
    const entry = await enterVehicle(platform, operator, { license_plate: uniquePlate(), lot_id: lot.lotId })
    const page = await json(await send('GET', `/api/v1/sessions/active?lot_id=${lot.lotId}`, operator))
    expect(page.data).toEqual([
      expect.objectContaining({ id: entry.session.id, duration_minutes: 0, fee_so_far: expect.any(Number) }),
    ])
  })

  it.each([
    ['POST', '/api/v1/sessions/entry'],
    ['POST', '/api/v1/sessions/exit'],
    ['GET', '/api/v1/sessions/active'],
    ['POST', '/api/v1/sessions/0193a5c2-7f1e-7b3c-9a41-2f0c8e1d4b6a/assign-space'],
  ])('keeps %s %s for operators and admins', async (method, path) => {
    const body = method === 'POST' ? {} : undefined
    expect((await send(method, path, undefined, body)).status).toBe(401)
    expect((await send(method, path, customer, body)).status).toBe(403)
  })

  it.each([
    ['GET', '/api/v1/sessions/0193a5c2-7f1e-7b3c-9a41-2f0c8e1d4b6a'],
    ['GET', '/api/v1/sessions/0193a5c2-7f1e-7b3c-9a41-2f0c8e1d4b6a/calculate-fee'],
  ])('answers 404 for %s %s of no session', async (method, path) => {
    expect((await send(method, path, operator)).status).toBe(404)
    expect((await send(method, path, undefined)).status).toBe(401)
  })
})

describe('a Redis that lost its data', () => {
  it('answers 503 instead of "full", rebuilds, and gives active sessions their spaces back', async () => {
    const prefix = `rs_${randomBytes(4).toString('hex')}:`
    const fresh = await startTestPlatform({ ...testAdmin, REDIS_KEY_PREFIX: prefix })
    const redis = await connectRedis(fresh.urls.redis, () => {})
    try {
      const root = await signInAdmin(fresh)
      const staff = await createAccount(fresh, root, 'operator')
      const lot = await createLot(fresh, root, { spaces: { STANDARD: 2 } })
      const parked = await enterVehicle(fresh, staff, { license_plate: uniquePlate(), lot_id: lot.lotId })

      // Every key of this platform goes, as if Redis had restarted empty.
      const keys = await redis.keys(`${prefix}*`)
      if (keys.length > 0) await redis.del(...keys)

      const enter = () =>
        fresh.request('/api/v1/sessions/entry', {
          method: 'POST',
          ...jsonBody({ license_plate: uniquePlate(), lot_id: lot.lotId }, bearer(staff.token)),
        })
      const refused = await enter()
      expect(refused.status).toBe(503)
      expect(await json(refused)).toMatchObject({ code: 'DEPENDENCY_UNAVAILABLE' })
      let next = await enter()
      for (let i = 0; i < 50 && next.status === 503; i++) {
        await new Promise((resolve) => setTimeout(resolve, 100))
        next = await enter()
      }
      expect(next.status).toBe(201)
      const second = await json(next)
      expect(second.space_assigned.id).not.toBe(parked.space_assigned.id)
      const state = await json(await fresh.request(`/api/v1/spaces/${parked.space_assigned.id}/state`))
      expect(state).toMatchObject({ session_id: parked.session.id, status: 'occupied' })
      expect(await json(await fresh.request(`/api/v1/zones/${lot.zoneId}/availability`))).toMatchObject({
        total: 2,
        occupied: 2,
      })
    } finally {
      redis.disconnect()
      await fresh.stop()
    }
  }, 60_000)
})
