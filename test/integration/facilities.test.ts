import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createFacilitiesRepository } from '../../src/modules/facilities/facilities.repository.ts'
import { createFacilitiesService } from '../../src/modules/facilities/facilities.service.ts'
import type { OccupancyIndex, SpacePlacement } from '../../src/modules/occupancy/occupancy.contract.ts'
import { DependencyDown, isDependencyFailure } from '../../src/shared/errors.ts'
import { connectDatabase, type Database } from '../../src/shared/mongo.ts'
import { type Account, bearer, createAccount, jsonBody, signInAdmin, testAdmin } from '../harness/accounts.ts'
import { type Json, json } from '../harness/http.ts'
import { startTestPlatform, type TestPlatform } from '../harness/platform.ts'

let platform: TestPlatform
let db: Database
let admin: Account
let customer: Account
let operator: Account

beforeAll(async () => {
  platform = await startTestPlatform(testAdmin)
  db = await connectDatabase(platform.urls.mongodb)
  admin = await signInAdmin(platform)
  ;[customer, operator] = await Promise.all([
    createAccount(platform, admin, 'customer'),
    createAccount(platform, admin, 'operator'),
  ])
})
afterAll(async () => {
  await db?.close()
  await platform?.stop()
})

const send = (
  method: string,
  path: string,
  account: Account | undefined,
  body?: unknown,
  headers: Record<string, string> = {},
) =>
  platform.request(path, {
    method,
    ...(body === undefined
      ? { headers: { ...headers, ...(account ? bearer(account.token) : {}) } }
      : jsonBody(body, { ...headers, ...(account ? bearer(account.token) : {}) })),
  })

const missing = '01a20000-0000-7000-8000-000000000000'
const tag = () => randomBytes(3).toString('hex')

const lotBody = (name = `Lot ${tag()}`) => ({
  name,
  address: '1 Main Street, Springfield',
  latitude: 48.8566,
  longitude: 2.3522,
  time_zone: 'Europe/Paris',
  currency: 'EUR',
})

async function created(res: Response): Promise<Json> {
  if (res.status !== 201) throw new Error(`expected 201, got ${res.status} ${await res.text()}`)
  return await json(res)
}

const newLot = async (body: Record<string, unknown> = lotBody()) =>
  await created(await send('POST', '/api/v1/lots', admin, body))
const newLevel = async (lotId: string, floor = 0) =>
  await created(await send('POST', '/api/v1/levels', admin, { lot_id: lotId, name: `Level ${floor}`, floor }))
const newZone = async (levelId: string, name = `Zone ${tag()}`) =>
  await created(await send('POST', '/api/v1/zones', admin, { level_id: levelId, name }))
const newSpace = async (zoneId: string, number: string, type = 'STANDARD', flags: string[] = []) =>
  await created(await send('POST', '/api/v1/spaces', admin, { zone_id: zoneId, number, type, flags }))

/** A lot with one level and one zone. */
async function structure() {
  const lot = await newLot()
  const level = await newLevel(lot.id, 1)
  const zone = await newZone(level.id)
  return { lot, level, zone }
}

const problemFields = async (res: Response) =>
  ((await json(res)).errors ?? []).map((e: { field: string }) => e.field)

describe('lots', () => {
  it('creates, reads, lists, replaces and deletes a lot', async () => {
    const res = await send('POST', '/api/v1/lots', admin, {
      ...lotBody('Central Garage'),
      time_zone: 'europe/paris',
      opening_hours: [
        { day: 1, opens: '07:00', closes: '22:00' },
        { day: 'sat', opens: '22:00', closes: '02:00' },
      ],
    })
    const lot = await created(res)
    expect(lot).toEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      name: 'Central Garage',
      address: '1 Main Street, Springfield',
      latitude: 48.8566,
      longitude: 2.3522,
      time_zone: 'Europe/Paris',
      currency: 'EUR',
      opening_hours: [
        { day: 'mon', opens: '07:00', closes: '22:00' },
        { day: 'sat', opens: '22:00', closes: '02:00' },
      ],
      created_at: expect.any(String),
      updated_at: expect.any(String),
    })
    expect(await json(await send('GET', `/api/v1/lots/${lot.id}`, customer))).toEqual(lot)

    const replaced = await send('PUT', `/api/v1/lots/${lot.id}`, admin, {
      ...lotBody('Central Garage North'),
      currency: 'USD',
      time_zone: 'America/New_York',
    })
    expect(replaced.status).toBe(200)
    expect(await json(replaced)).toMatchObject({
      id: lot.id,
      name: 'Central Garage North',
      currency: 'USD',
      time_zone: 'America/New_York',
      opening_hours: null,
      created_at: lot.created_at,
    })

    expect((await send('DELETE', `/api/v1/lots/${lot.id}`, admin)).status).toBe(204)
    expect((await send('GET', `/api/v1/lots/${lot.id}`, customer)).status).toBe(404)
    expect((await send('DELETE', `/api/v1/lots/${lot.id}`, admin)).status).toBe(404)
  })

  it('filters by name prefix in any case, and pages', async () => {
    const prefix = `Pfx${tag()}`
    const ids = []
    for (let i = 0; i < 3; i++) ids.push((await newLot(lotBody(`${prefix} garage ${i}`))).id)
    await newLot(lotBody(`Other ${prefix}`))
    const first = await json(
      await send('GET', `/api/v1/lots?name_prefix=${prefix.toLowerCase()}&limit=2`, customer),
    )
    expect(first.data.map((l: Json) => l.id)).toEqual(ids.slice(0, 2))
    const second = await json(
      await send(
        'GET',
        `/api/v1/lots?name_prefix=${prefix.toUpperCase()}&limit=2&cursor=${first.next_cursor}`,
        customer,
      ),
    )
    expect(second).toMatchObject({ data: [{ id: ids[2] }], next_cursor: null })
  })

  it('names each invalid field', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ latitude: 91 }, 'latitude'],
      [{ longitude: -180.5 }, 'longitude'],
      [{ currency: 'eur' }, 'currency'],
      [{ time_zone: 'Mars/Olympus_Mons' }, 'time_zone'],
      [{ time_zone: '+01:00' }, 'time_zone'],
      [{ name: '   ' }, 'name'],
      [{ opening_hours: [{ day: 7, opens: '07:00', closes: '22:00' }] }, 'opening_hours.0.day'],
      [{ opening_hours: [{ day: 'mon', opens: '24:00', closes: '22:00' }] }, 'opening_hours.0.opens'],
      [{ opening_hours: [] }, 'opening_hours'],
      [{ floors: 3 }, ''],
    ]
    for (const [change, field] of cases) {
      const res = await send('POST', '/api/v1/lots', admin, { ...lotBody(), ...change })
      expect(res.status, JSON.stringify(change)).toBe(400)
      const problem = await json(res)
      expect(problem.code).toBe('VALIDATION_FAILED')
      expect(problem.errors[0], JSON.stringify(change)).toMatchObject({ in: 'body', field })
    }
    const missingField = await send('POST', '/api/v1/lots', admin, { name: 'No address' })
    expect(await problemFields(missingField)).toEqual(
      expect.arrayContaining(['address', 'latitude', 'longitude', 'time_zone', 'currency']),
    )
  })

  it('answers 409 when deleting a lot that has levels', async () => {
    const lot = await newLot()
    const level = await newLevel(lot.id)
    const res = await send('DELETE', `/api/v1/lots/${lot.id}`, admin)
    expect(res.status).toBe(409)
    expect((await json(res)).detail).toBe('The lot still has levels: delete them first')
    expect((await send('GET', `/api/v1/lots/${lot.id}`, admin)).status).toBe(200)
    expect((await send('DELETE', `/api/v1/levels/${level.id}`, admin)).status).toBe(204)
    expect((await send('DELETE', `/api/v1/lots/${lot.id}`, admin)).status).toBe(204)
  })

  it('answers a retry with the same Idempotency-Key with the same lot', async () => {
    const key = `lot-${tag()}`
    const body = lotBody()
    const first = await created(await send('POST', '/api/v1/lots', admin, body, { 'Idempotency-Key': key }))
    const again = await created(await send('POST', '/api/v1/lots', admin, body, { 'Idempotency-Key': key }))
    expect(again.id).toBe(first.id)
    const other = await send('POST', '/api/v1/lots', admin, lotBody(), { 'Idempotency-Key': key })
    expect(other.status).toBe(422)
    expect(await json(other)).toMatchObject({ code: 'UNPROCESSABLE' })
    expect(await db.collection('lots').countDocuments({ name: body.name })).toBe(1)
  })
})

describe('levels', () => {
  it('creates, reads, replaces and deletes a level; lists a lot’s levels in floor order', async () => {
    const lot = await newLot()
    const ground = await newLevel(lot.id, 0)
    expect(ground).toEqual({
      id: expect.any(String),
      lot_id: lot.id,
      name: 'Level 0',
      floor: 0,
      created_at: expect.any(String),
      updated_at: expect.any(String),
    })
    const top = await newLevel(lot.id, 2)
    const basement = await newLevel(lot.id, -1)
    const other = await newLot()
    await newLevel(other.id, -3)

    const first = await json(await send('GET', `/api/v1/levels?lot_id=${lot.id}&limit=2`, customer))
    expect(first.data.map((l: Json) => l.floor)).toEqual([-1, 0])
    const second = await json(
      await send('GET', `/api/v1/levels?lot_id=${lot.id}&limit=2&cursor=${first.next_cursor}`, customer),
    )
    expect(second).toMatchObject({ data: [{ id: top.id, floor: 2 }], next_cursor: null })

    const renamed = await send('PUT', `/api/v1/levels/${basement.id}`, admin, { name: 'Basement', floor: -2 })
    expect(await json(renamed)).toMatchObject({
      id: basement.id,
      lot_id: lot.id,
      name: 'Basement',
      floor: -2,
    })
    expect((await json(await send('GET', `/api/v1/levels/${basement.id}`, operator))).floor).toBe(-2)
    // A level stays in its lot.
    const move = await send('PUT', `/api/v1/levels/${basement.id}`, admin, {
      lot_id: other.id,
      name: 'Basement',
      floor: -2,
    })
    expect(move.status).toBe(400)

    expect((await send('DELETE', `/api/v1/levels/${ground.id}`, admin)).status).toBe(204)
    expect((await send('GET', `/api/v1/levels/${ground.id}`, admin)).status).toBe(404)
  })

  it('answers 404 for a level in an unknown lot, and 400 for a fractional floor', async () => {
    const res = await send('POST', '/api/v1/levels', admin, { lot_id: missing, name: 'L1', floor: 1 })
    expect(res.status).toBe(404)
    expect((await json(res)).detail).toBe(`No lot ${missing}`)
    const lot = await newLot()
    const fractional = await send('POST', '/api/v1/levels', admin, { lot_id: lot.id, name: 'L1', floor: 1.5 })
    expect(await problemFields(fractional)).toEqual(['floor'])
  })

  it('answers 409 when deleting a level that has zones', async () => {
    const { level, zone } = await structure()
    expect((await send('DELETE', `/api/v1/levels/${level.id}`, admin)).status).toBe(409)
    expect((await send('DELETE', `/api/v1/zones/${zone.id}`, admin)).status).toBe(204)
    expect((await send('DELETE', `/api/v1/levels/${level.id}`, admin)).status).toBe(204)
  })
})

describe('zones', () => {
  it('creates, reads, replaces and deletes a zone; filters by level and lot', async () => {
    const lot = await newLot()
    const levelA = await newLevel(lot.id, 0)
    const levelB = await newLevel(lot.id, 1)
    const res = await send('POST', '/api/v1/zones', admin, {
      level_id: levelA.id,
      name: 'Zone A',
      description: 'Short stay',
    })
    const zoneA = await created(res)
    expect(zoneA).toEqual({
      id: expect.any(String),
      lot_id: lot.id,
      level_id: levelA.id,
      name: 'Zone A',
      description: 'Short stay',
      created_at: expect.any(String),
      updated_at: expect.any(String),
    })
    const zoneB = await newZone(levelB.id)
    expect(
      (await json(await send('GET', `/api/v1/zones?level_id=${levelA.id}`, customer))).data.map(
        (z: Json) => z.id,
      ),
    ).toEqual([zoneA.id])
    expect(
      (await json(await send('GET', `/api/v1/zones?lot_id=${lot.id}`, customer))).data.map((z: Json) => z.id),
    ).toEqual([zoneA.id, zoneB.id])

    const replaced = await send('PUT', `/api/v1/zones/${zoneA.id}`, admin, { name: 'Zone A1' })
    expect(await json(replaced)).toMatchObject({ name: 'Zone A1', description: null, level_id: levelA.id })
    expect((await send('DELETE', `/api/v1/zones/${zoneA.id}`, admin)).status).toBe(204)
    expect((await send('GET', `/api/v1/zones/${zoneA.id}`, customer)).status).toBe(404)
  })

  it('answers 404 for a zone on an unknown level', async () => {
    const res = await send('POST', '/api/v1/zones', admin, { level_id: missing, name: 'Zone X' })
    expect(res.status).toBe(404)
  })

  it('answers 409 when deleting a zone that has spaces', async () => {
    const { zone } = await structure()
    const space = await newSpace(zone.id, 'Z-1')
    expect((await send('DELETE', `/api/v1/zones/${zone.id}`, admin)).status).toBe(409)
    expect((await send('DELETE', `/api/v1/spaces/${space.id}`, admin)).status).toBe(204)
    expect((await send('DELETE', `/api/v1/zones/${zone.id}`, admin)).status).toBe(204)
  })
})

describe('spaces', () => {
  it('creates, reads, moves and deletes a space; its number is unique per lot in any case', async () => {
    const { lot, level, zone } = await structure()
    const space = await created(
      await send('POST', '/api/v1/spaces', admin, {
        zone_id: zone.id,
        number: 'a-105',
        type: 'EV',
        flags: ['ev_charger', 'covered', 'ev_charger'],
      }),
    )
    expect(space).toEqual({
      id: expect.any(String),
      lot_id: lot.id,
      level_id: level.id,
      zone_id: zone.id,
      number: 'A-105',
      type: 'EV',
      flags: ['covered', 'ev_charger'],
      overlay: null,
      overlay_reason: null,
      created_at: expect.any(String),
      updated_at: expect.any(String),
    })
    expect(await json(await send('GET', `/api/v1/spaces/${space.id}`, customer))).toEqual(space)

    const again = await send('POST', '/api/v1/spaces', admin, {
      zone_id: zone.id,
      number: 'A-105',
      type: 'STANDARD',
    })
    expect(again.status).toBe(409)
    expect((await json(again)).code).toBe('CONFLICT')
    // Another lot may use the number.
    const elsewhere = await structure()
    await newSpace(elsewhere.zone.id, 'A-105')

    // Move to a zone on another level of the same lot: the denormalised ids follow.
    const upper = await newLevel(lot.id, 2)
    const upperZone = await newZone(upper.id)
    const moved = await send('PUT', `/api/v1/spaces/${space.id}`, admin, {
      zone_id: upperZone.id,
      number: 'A-105',
      type: 'STANDARD',
    })
    expect(moved.status).toBe(200)
    expect(await json(moved)).toMatchObject({
      lot_id: lot.id,
      level_id: upper.id,
      zone_id: upperZone.id,
      number: 'A-105',
      type: 'STANDARD',
      flags: [],
    })

    // Move to another lot, where A-105 is taken: 409, nothing changes.
    const taken = await send('PUT', `/api/v1/spaces/${space.id}`, admin, {
      zone_id: elsewhere.zone.id,
      number: 'A-105',
      type: 'STANDARD',
    })
    expect(taken.status).toBe(409)
    // Renumbered and moved to the other lot: the old number is free in the first lot.
    const renumbered = await send('PUT', `/api/v1/spaces/${space.id}`, admin, {
      zone_id: elsewhere.zone.id,
      number: 'B-1',
      type: 'STANDARD',
    })
    expect(await json(renumbered)).toMatchObject({
      lot_id: elsewhere.lot.id,
      level_id: elsewhere.level.id,
      number: 'B-1',
    })
    const reuse = await newSpace(zone.id, 'A-105')
    expect(reuse.lot_id).toBe(lot.id)

    expect((await send('DELETE', `/api/v1/spaces/${space.id}`, admin)).status).toBe(204)
    expect((await send('GET', `/api/v1/spaces/${space.id}`, admin)).status).toBe(404)
    expect(
      await db.collection('space_number_claims').countDocuments({ _id: `${elsewhere.lot.id}:B-1` } as object),
    ).toBe(0)
    await newSpace(elsewhere.zone.id, 'B-1')
  })

  it('makes exactly one space of 20 concurrent creations of one number', async () => {
    const { lot, level, zone } = await structure()
    const zone2 = await newZone(level.id)
    const statuses = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        send('POST', '/api/v1/spaces', admin, {
          zone_id: i % 2 ? zone.id : zone2.id,
          number: i % 3 ? 'C-7' : 'c-7',
          type: 'COMPACT',
        }).then((r) => r.status),
      ),
    )
    expect(statuses.filter((s) => s === 201)).toHaveLength(1)
    expect(statuses.filter((s) => s === 409)).toHaveLength(19)
    expect(await db.collection('spaces').countDocuments({ lot_id: lot.id, number: 'C-7' })).toBe(1)
  })

  it('names invalid fields and unknown zones', async () => {
    const { zone } = await structure()
    const cases: [Record<string, unknown>, string][] = [
      [{ number: '-12' }, 'number'],
      [{ number: 'A 1' }, 'number'],
      [{ type: 'TRUCK' }, 'type'],
      [{ flags: ['EV Charger'] }, 'flags.0'],
      [{ overlay: 'closed' }, ''],
      [{ zone_id: 'zone-1' }, 'zone_id'],
    ]
    for (const [change, field] of cases) {
      const res = await send('POST', '/api/v1/spaces', admin, {
        zone_id: zone.id,
        number: 'V-1',
        type: 'STANDARD',
        ...change,
      })
      expect(res.status, JSON.stringify(change)).toBe(400)
      expect((await json(res)).errors[0], JSON.stringify(change)).toMatchObject({ in: 'body', field })
    }
    const unknown = await send('POST', '/api/v1/spaces', admin, {
      zone_id: missing,
      number: 'V-1',
      type: 'EV',
    })
    expect(unknown.status).toBe(404)
    expect((await json(unknown)).detail).toBe(`No zone ${missing}`)
  })

  it('filters by lot, level, zone, type, overlay and number prefix, and pages', async () => {
    const { lot, level, zone } = await structure()
    const zone2 = await newZone(level.id)
    const level2 = await newLevel(lot.id, 3)
    const zone3 = await newZone(level2.id)
    const a1 = await newSpace(zone.id, 'F-1', 'EV', ['ev_charger'])
    const a2 = await newSpace(zone.id, 'F-2')
    const b1 = await newSpace(zone2.id, 'G-1', 'HANDICAPPED', ['wide'])
    const c1 = await newSpace(zone3.id, 'F-10', 'MOTORCYCLE')
    const ids = async (query: string) =>
      (await json(await send('GET', `/api/v1/spaces?${query}`, customer))).data.map((s: Json) => s.id)

    expect(await ids(`lot_id=${lot.id}`)).toEqual([a1.id, a2.id, b1.id, c1.id])
    expect(await ids(`level_id=${level.id}`)).toEqual([a1.id, a2.id, b1.id])
    expect(await ids(`zone_id=${zone2.id}`)).toEqual([b1.id])
    expect(await ids(`lot_id=${lot.id}&type=EV`)).toEqual([a1.id])
    expect(await ids(`lot_id=${lot.id}&number_prefix=f-1`)).toEqual([a1.id, c1.id])
    await send('PUT', `/api/v1/spaces/${a2.id}/overlay`, operator, { overlay: 'closed' })
    expect(await ids(`lot_id=${lot.id}&overlay=closed`)).toEqual([a2.id])
    expect(await ids(`lot_id=${lot.id}&overlay=none`)).toEqual([a1.id, b1.id, c1.id])

    const first = await json(await send('GET', `/api/v1/spaces?lot_id=${lot.id}&limit=3`, customer))
    expect(first.data).toHaveLength(3)
    const second = await json(
      await send('GET', `/api/v1/spaces?lot_id=${lot.id}&limit=3&cursor=${first.next_cursor}`, customer),
    )
    expect(second).toMatchObject({ data: [{ id: c1.id }], next_cursor: null })

    const bad = await send('GET', '/api/v1/spaces?type=TRUCK&limit=500', customer)
    expect(bad.status).toBe(400)
    expect((await json(bad)).errors.map((e: Json) => [e.in, e.field])).toEqual([
      ['query', 'limit'],
      ['query', 'type'],
    ])
  })

  it('answers a retry with the same Idempotency-Key with the same space', async () => {
    const { zone } = await structure()
    const body = { zone_id: zone.id, number: 'K-1', type: 'STANDARD' }
    const key = { 'Idempotency-Key': `space-${tag()}` }
    const first = await created(await send('POST', '/api/v1/spaces', admin, body, key))
    const again = await created(await send('POST', '/api/v1/spaces', admin, body, key))
    expect(again).toEqual(first)
    // Without the key, the same body is another space with a number that is taken.
    expect((await send('POST', '/api/v1/spaces', admin, body)).status).toBe(409)
    expect((await send('POST', '/api/v1/spaces', admin, { ...body, number: 'K-2' }, key)).status).toBe(422)
    // Deleted since: the key does not bring it back.
    expect((await send('DELETE', `/api/v1/spaces/${first.id}`, admin)).status).toBe(204)
    expect((await send('POST', '/api/v1/spaces', admin, body, key)).status).toBe(409)
    // A refused create frees its key for a corrected request.
    const key2 = { 'Idempotency-Key': `space-${tag()}` }
    expect((await send('POST', '/api/v1/spaces', admin, { ...body, zone_id: missing }, key2)).status).toBe(
      404,
    )
    expect((await send('POST', '/api/v1/spaces', admin, body, key2)).status).toBe(201)
  })

  it('leaves /spaces/available to the occupancy capability', async () => {
    const res = await send('GET', '/api/v1/spaces/available', customer)
    const body = res.status === 200 ? {} : await json(res)
    expect((body.errors ?? []).filter((e: Json) => e.in === 'path')).toEqual([])
    expect((await send('GET', '/api/v1/spaces/not-a-space', customer)).status).toBe(404)
  })
})

describe('bulk creation', () => {
  it('makes 500 numbered spaces, skips them all on a retry, and pages them in number order', async () => {
    const { lot, zone } = await structure()
    const body = {
      zone_id: zone.id,
      prefix: 'a-',
      from: 1,
      to: 500,
      pad: 3,
      type: 'STANDARD',
      flags: ['covered'],
    }
    const res = await send('POST', '/api/v1/spaces/bulk', admin, body)
    expect(res.status).toBe(201)
    expect(await json(res)).toEqual({ zone_id: zone.id, created: 500, skipped: [] })

    const retry = await json(await send('POST', '/api/v1/spaces/bulk', admin, body))
    expect(retry.created).toBe(0)
    expect(retry.skipped).toHaveLength(500)
    expect(retry.skipped.slice(0, 2)).toEqual(['A-001', 'A-002'])

    const numbers: string[] = []
    let cursor: string | null = null
    do {
      const page: Json = await json(
        await send(
          'GET',
          `/api/v1/spaces?zone_id=${zone.id}&limit=100${cursor ? `&cursor=${cursor}` : ''}`,
          customer,
        ),
      )
      numbers.push(...page.data.map((s: Json) => s.number))
      cursor = page.next_cursor
    } while (cursor)
    expect(numbers).toHaveLength(500)
    expect(numbers[0]).toBe('A-001')
    expect(numbers[499]).toBe('A-500')
    expect(new Set(numbers).size).toBe(500)

    const nine = await json(
      await send('GET', `/api/v1/spaces?lot_id=${lot.id}&number_prefix=A-00&limit=100`, customer),
    )
    expect(nine.data.map((s: Json) => s.number)).toEqual([
      'A-001',
      'A-002',
      'A-003',
      'A-004',
      'A-005',
      'A-006',
      'A-007',
      'A-008',
      'A-009',
    ])
    expect(nine.data[0]).toMatchObject({ type: 'STANDARD', flags: ['covered'], zone_id: zone.id })

    // An overlapping range creates the new numbers only; a single space took A-503 before.
    await newSpace(zone.id, 'A-503')
    const overlap = await json(
      await send('POST', '/api/v1/spaces/bulk', admin, { ...body, from: 498, to: 505 }),
    )
    expect(overlap).toEqual({ zone_id: zone.id, created: 4, skipped: ['A-498', 'A-499', 'A-500', 'A-503'] })
    expect(await db.collection('spaces').countDocuments({ zone_id: zone.id })).toBe(505)
  })

  it('takes over number claims left by writes that never finished, once they are stale', async () => {
    const { lot, zone } = await structure()
    const claims = db.collection<{ _id: string; space_id: string; created_at: Date }>('space_number_claims')
    const old = new Date(Date.now() - 5 * 60_000)
    await claims.insertMany([
      { _id: `${lot.id}:S-1`, space_id: missing, created_at: old },
      { _id: `${lot.id}:S-2`, space_id: missing, created_at: old },
      { _id: `${lot.id}:S-3`, space_id: missing, created_at: new Date() },
      { _id: `${lot.id}:S-9`, space_id: missing, created_at: old },
    ])
    const bulk = await json(
      await send('POST', '/api/v1/spaces/bulk', admin, {
        zone_id: zone.id,
        prefix: 'S-',
        from: 1,
        to: 3,
        type: 'EV',
      }),
    )
    // A fresh claim may belong to a write under way: it stays.
    expect(bulk).toEqual({ zone_id: zone.id, created: 2, skipped: ['S-3'] })
    const single = await newSpace(zone.id, 'S-9')
    const held = await claims.find({ _id: { $in: [`${lot.id}:S-1`, `${lot.id}:S-9`] } }).toArray()
    expect(held.map((claim) => claim.space_id)).not.toContain(missing)
    expect(held.map((claim) => claim.space_id)).toContain(single.id)
  })

  it('lets exactly one of many concurrent creations take over one stale claim', async () => {
    const { lot, zone } = await structure()
    const claims = db.collection<{ _id: string; space_id: string; created_at: Date }>('space_number_claims')
    await claims.insertOne({
      _id: `${lot.id}:T-1`,
      space_id: missing,
      created_at: new Date(Date.now() - 5 * 60_000),
    })
    const answers = await Promise.all(
      Array.from({ length: 20 }, () =>
        send('POST', '/api/v1/spaces', admin, {
          zone_id: zone.id,
          number: 'T-1',
          type: 'STANDARD',
          flags: [],
        }),
      ),
    )
    expect(answers.map((res) => res.status).sort()).toEqual([201, ...Array(19).fill(409)])
    expect(await db.collection('spaces').countDocuments({ zone_id: zone.id, number: 'T-1' })).toBe(1)
  })

  it('refuses a reversed or too wide range naming `to`, and an unknown zone', async () => {
    const { zone } = await structure()
    const body = { zone_id: zone.id, prefix: 'R', from: 10, to: 9, type: 'STANDARD' }
    const reversed = await send('POST', '/api/v1/spaces/bulk', admin, body)
    expect(reversed.status).toBe(400)
    expect((await json(reversed)).errors).toEqual([
      { in: 'body', field: 'to', pointer: '/to', reason: 'must be at least `from`' },
    ])
    const wide = await send('POST', '/api/v1/spaces/bulk', admin, { ...body, from: 1, to: 2001 })
    expect(await problemFields(wide)).toEqual(['to'])
    expect(await db.collection('spaces').countDocuments({ zone_id: zone.id })).toBe(0)
    const unknown = await send('POST', '/api/v1/spaces/bulk', admin, { ...body, zone_id: missing, to: 11 })
    expect(unknown.status).toBe(404)
  })
})

describe('overlays', () => {
  it('lets an operator set and clear an overlay, which space writes keep', async () => {
    const { zone } = await structure()
    const space = await newSpace(zone.id, 'O-1')
    const path = `/api/v1/spaces/${space.id}/overlay`
    const set = await send('PUT', path, operator, { overlay: 'maintenance', reason: ' Resurfacing ' })
    expect(set.status).toBe(200)
    expect(await json(set)).toMatchObject({
      id: space.id,
      overlay: 'maintenance',
      overlay_reason: 'Resurfacing',
    })

    const replaced = await send('PUT', `/api/v1/spaces/${space.id}`, admin, {
      zone_id: zone.id,
      number: 'O-1',
      type: 'COMPACT',
    })
    expect(await json(replaced)).toMatchObject({ type: 'COMPACT', overlay: 'maintenance' })

    const cleared = await send('PUT', path, operator, { overlay: null, reason: 'ignored without an overlay' })
    expect(await json(cleared)).toMatchObject({ overlay: null, overlay_reason: null })

    expect((await send('PUT', path, customer, { overlay: 'reserved' })).status).toBe(403)
    expect((await send('PUT', path, operator, { overlay: 'occupied' })).status).toBe(400)
    expect((await send('PUT', path, operator, {})).status).toBe(400)
  })
})

describe('roles', () => {
  type Who = 'anonymous' | 'customer' | 'operator' | 'admin'
  let lotId = ''
  let levelId = ''
  let zoneId = ''
  beforeAll(async () => {
    const s = await structure()
    lotId = s.lot.id
    levelId = s.level.id
    zoneId = s.zone.id
  })
  const reads = { anonymous: 401, customer: 200, operator: 200, admin: 200 }
  const readOne = { anonymous: 401, customer: 404, operator: 404, admin: 404 }
  const writeOne = { anonymous: 401, customer: 403, operator: 403, admin: 404 }
  const creates = { anonymous: 401, customer: 403, operator: 403, admin: 201 }
  const matrix: [string, string, (() => unknown) | undefined, Record<Who, number>][] = [
    ['GET', '/api/v1/lots', undefined, reads],
    ['POST', '/api/v1/lots', () => lotBody(), creates],
    ['GET', '/api/v1/lots/{id}', undefined, readOne],
    ['PUT', '/api/v1/lots/{id}', () => lotBody(), writeOne],
    ['DELETE', '/api/v1/lots/{id}', undefined, writeOne],
    ['GET', '/api/v1/levels', undefined, reads],
    ['POST', '/api/v1/levels', () => ({ lot_id: lotId, name: 'L', floor: 9 }), creates],
    ['GET', '/api/v1/levels/{id}', undefined, readOne],
    ['PUT', '/api/v1/levels/{id}', () => ({ name: 'L', floor: 9 }), writeOne],
    ['DELETE', '/api/v1/levels/{id}', undefined, writeOne],
    ['GET', '/api/v1/zones', undefined, reads],
    ['POST', '/api/v1/zones', () => ({ level_id: levelId, name: 'Z' }), creates],
    ['GET', '/api/v1/zones/{id}', undefined, readOne],
    ['PUT', '/api/v1/zones/{id}', () => ({ name: 'Z' }), writeOne],
    ['DELETE', '/api/v1/zones/{id}', undefined, writeOne],
    ['GET', '/api/v1/spaces', undefined, reads],
    ['POST', '/api/v1/spaces', () => ({ zone_id: zoneId, number: `R-${tag()}`, type: 'EV' }), creates],
    [
      'POST',
      '/api/v1/spaces/bulk',
      () => ({ zone_id: zoneId, prefix: `B${tag()}`, from: 1, to: 3, type: 'STANDARD' }),
      creates,
    ],
    ['GET', '/api/v1/spaces/{id}', undefined, readOne],
    ['PUT', '/api/v1/spaces/{id}', () => ({ zone_id: zoneId, number: 'R-1', type: 'EV' }), writeOne],
    ['DELETE', '/api/v1/spaces/{id}', undefined, writeOne],
    [
      'PUT',
      '/api/v1/spaces/{id}/overlay',
      () => ({ overlay: 'closed' }),
      { anonymous: 401, customer: 403, operator: 404, admin: 404 },
    ],
  ]
  const cases = matrix.flatMap(([method, path, body, expected]) =>
    (Object.keys(expected) as Who[]).map((who) => [who, method, path, expected[who], body] as const),
  )

  it.each(cases)('%s: %s %s answers %s', async (who, method, path, status, body) => {
    const account = { anonymous: undefined, customer, operator, admin }[who]
    const res = await send(method, path.replace('{id}', missing), account, body?.())
    expect(res.status).toBe(status)
  })
})

describe('the hot state', () => {
  /** Records what the service tells the hot state; fails the calls it is told to. */
  function recordingIndex() {
    const upserts: SpacePlacement[] = []
    const removals: string[] = []
    let failures = 0
    const maybeFail = () => {
      if (failures > 0) {
        failures--
        throw new DependencyDown('redis down (test)')
      }
    }
    const index: OccupancyIndex = {
      upsertSpaces: async (spaces) => {
        maybeFail()
        upserts.push(...spaces)
      },
      removeSpaces: async (ids) => {
        maybeFail()
        removals.push(...ids)
      },
      bindDevice: async () => {},
      removeDevice: async () => {},
      deviceHealth: async () => [],
    }
    return { index, upserts, removals, failNext: () => failures++ }
  }

  const serviceWith = (index: OccupancyIndex) =>
    createFacilitiesService({ repo: createFacilitiesRepository(db), occupancy: index })
  const creator = { callerId: 'test' }

  it('is told of every space write, with the placement built from the record', async () => {
    const { lot, level, zone } = await structure()
    const other = await newZone(level.id)
    const hot = recordingIndex()
    const facilities = serviceWith(hot.index)

    const space = await facilities.createSpace(
      { zone_id: zone.id, number: 'h-1', type: 'EV', flags: [] },
      creator,
    )
    const placement = { spaceId: space.id, lotId: lot.id, levelId: level.id, zoneId: zone.id, number: 'H-1' }
    expect(hot.upserts.at(-1)).toEqual({ ...placement, type: 'EV', overlay: null })

    await facilities.replaceSpace(space.id, { zone_id: other.id, number: 'H-1', type: 'COMPACT', flags: [] })
    expect(hot.upserts.at(-1)).toEqual({ ...placement, zoneId: other.id, type: 'COMPACT', overlay: null })

    await facilities.setOverlay(space.id, { overlay: 'reserved' })
    expect(hot.upserts.at(-1)).toMatchObject({ spaceId: space.id, overlay: 'reserved' })

    const bulk = await facilities.createSpaces({
      zone_id: zone.id,
      prefix: 'H-',
      from: 2,
      to: 4,
      pad: 0,
      type: 'STANDARD',
      flags: [],
    })
    expect(bulk.created).toBe(3)
    expect(hot.upserts.slice(-3).map((p) => p.number)).toEqual(['H-2', 'H-3', 'H-4'])

    await facilities.deleteSpace(space.id)
    expect(hot.removals).toEqual([space.id])
  })

  it('fails a write whose hot-state step fails as a dependency failure (503), and a retry repairs it', async () => {
    const { zone } = await structure()
    const hot = recordingIndex()
    const facilities = serviceWith(hot.index)

    // A create: the space is in MongoDB, the hot state missed it; the same keyed request completes it.
    const input = { zone_id: zone.id, number: 'Q-1', type: 'STANDARD' as const, flags: [] }
    const keyed = { callerId: 'test', idempotencyKey: `k-${tag()}` }
    hot.failNext()
    const failure = await facilities.createSpace(input, keyed).catch((error: unknown) => error)
    expect(isDependencyFailure(failure)).toBe(true)
    expect(hot.upserts).toEqual([])
    const space = await facilities.createSpace(input, keyed)
    expect(hot.upserts.map((p) => p.spaceId)).toEqual([space.id])
    expect(await db.collection('spaces').countDocuments({ zone_id: zone.id })).toBe(1)

    // A bulk call: the same call again tells the hot state about the zone's spaces it skipped.
    const bulk = {
      zone_id: zone.id,
      prefix: 'Q-',
      from: 1,
      to: 5,
      pad: 0,
      type: 'STANDARD' as const,
      flags: [],
    }
    hot.failNext()
    expect(isDependencyFailure(await facilities.createSpaces(bulk).catch((error: unknown) => error))).toBe(
      true,
    )
    hot.upserts.length = 0
    expect(await facilities.createSpaces(bulk)).toMatchObject({
      created: 0,
      skipped: ['Q-1', 'Q-2', 'Q-3', 'Q-4', 'Q-5'],
    })
    expect(hot.upserts.map((p) => p.number).sort()).toEqual(['Q-1', 'Q-2', 'Q-3', 'Q-4', 'Q-5'])

    // An overlay and a move are simply sent again.
    hot.failNext()
    await expect(facilities.setOverlay(space.id, { overlay: 'closed' })).rejects.toThrow('redis down')
    await facilities.setOverlay(space.id, { overlay: 'closed' })
    expect(hot.upserts.at(-1)).toMatchObject({ spaceId: space.id, overlay: 'closed' })

    // A delete: the retry answers 404, and takes the space out of the hot state all the same.
    hot.failNext()
    await expect(facilities.deleteSpace(space.id)).rejects.toThrow('redis down')
    expect(hot.removals).toEqual([])
    await expect(facilities.deleteSpace(space.id)).rejects.toMatchObject({ code: 'NOT_FOUND' })
    expect(hot.removals).toEqual([space.id])
  })

  it('pages every placement by id for a rebuild, and finds a space by id', async () => {
    const { zone } = await structure()
    const facilities = serviceWith(recordingIndex().index)
    await facilities.createSpaces({
      zone_id: zone.id,
      prefix: 'P',
      from: 1,
      to: 1200,
      pad: 4,
      type: 'EV',
      flags: [],
    })
    const pages: SpacePlacement[][] = []
    for await (const page of facilities.placements()) pages.push(page)
    expect(pages.every((page) => page.length <= 1000)).toBe(true)
    const all = pages.flat()
    const ids = all.map((p) => p.spaceId)
    expect(ids).toEqual([...ids].sort())
    expect(new Set(ids).size).toBe(ids.length)
    const ours = all.filter((p) => p.zoneId === zone.id)
    expect(ours).toHaveLength(1200)
    expect(ours[0]).toMatchObject({ number: 'P0001', type: 'EV', overlay: null })

    expect(await facilities.findSpace(ours[0]?.spaceId ?? '')).toMatchObject({ number: 'P0001' })
    expect(await facilities.findSpace(missing)).toBeUndefined()
    expect(await facilities.exists('zone', zone.id)).toBe(true)
    expect(await facilities.exists('lot', missing)).toBe(false)
  })
})
