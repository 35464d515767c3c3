import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connectDatabase, type Database } from '../../src/shared/mongo.ts'
import { type Account, bearer, createAccount, jsonBody, signInAdmin, testAdmin } from '../harness/accounts.ts'
import { json } from '../harness/http.ts'
import { startTestPlatform, type TestPlatform } from '../harness/platform.ts'

let platform: TestPlatform
let db: Database
let admin: Account
let customer: Account
let otherCustomer: Account
let operator: Account

beforeAll(async () => {
  platform = await startTestPlatform(testAdmin)
  db = await connectDatabase(platform.urls.mongodb)
  admin = await signInAdmin(platform)
  ;[customer, otherCustomer, operator] = await Promise.all([
    createAccount(platform, admin, 'customer'),
    createAccount(platform, admin, 'customer'),
    createAccount(platform, admin, 'operator'),
  ])
})
afterAll(async () => {
  await db?.close()
  await platform?.stop()
})

const send = (method: string, path: string, account: Account | undefined, body?: unknown) =>
  platform.request(path, {
    method,
    ...(body === undefined
      ? { headers: account ? bearer(account.token) : {} }
      : jsonBody(body, account ? bearer(account.token) : {})),
  })

/** A plate no other test uses: two letters and eight hex digits. */
const uniquePlate = () => `T${randomBytes(4).toString('hex').toUpperCase()}X`

const vehicleBody = (license_plate = uniquePlate()) => ({
  license_plate,
  vehicle_type_id: 'standard',
  make: 'Toyota',
  model: 'Camry',
  color: 'Silver',
})

async function registerVehicle(owner: Account, body: Record<string, unknown> = vehicleBody()) {
  const res = await send('POST', '/api/v1/vehicles', owner, body)
  if (res.status !== 201) throw new Error(`registering a vehicle failed: ${res.status} ${await res.text()}`)
  return await json(res)
}

describe('vehicle types', () => {
  it('lists the default types from the migration', async () => {
    const res = await send('GET', '/api/v1/vehicle-types', customer)
    expect(res.status).toBe(200)
    const body = await json(res)
    expect(body.data.map((t: { id: string }) => t.id)).toEqual(
      expect.arrayContaining(['compact', 'large', 'motorcycle', 'standard', 'van']),
    )
    expect(body.data.find((t: { id: string }) => t.id === 'motorcycle')).toMatchObject({
      name: 'Motorcycle',
      size_category: 'MOTORCYCLE',
    })
  })

  it('lets an admin create a type once', async () => {
    const id = `bus-${randomBytes(3).toString('hex')}`
    const created = await send('POST', '/api/v1/vehicle-types', admin, {
      id,
      name: 'Bus',
      size_category: 'LARGE',
    })
    expect(created.status).toBe(201)
    expect(await json(created)).toMatchObject({ id, name: 'Bus', size_category: 'LARGE', description: null })
    const again = await send('POST', '/api/v1/vehicle-types', admin, {
      id,
      name: 'Bus',
      size_category: 'LARGE',
    })
    expect(again.status).toBe(409)
    const standard = await send('POST', '/api/v1/vehicle-types', admin, {
      id: 'standard',
      name: 'Standard',
      size_category: 'STANDARD',
    })
    expect(standard.status).toBe(409)
  })

  it('pages by code with an opaque cursor', async () => {
    const first = await json(await send('GET', '/api/v1/vehicle-types?limit=2', customer))
    expect(first.data).toHaveLength(2)
    expect(first.next_cursor).toEqual(expect.any(String))
    const second = await json(
      await send('GET', `/api/v1/vehicle-types?limit=2&cursor=${first.next_cursor}`, customer),
    )
    expect(second.data[0].id > first.data[1].id).toBe(true)
  })
})

describe('vehicles', () => {
  it('registers, lists, reads, replaces and deletes a vehicle, with a normalised plate', async () => {
    const owner = await createAccount(platform, admin, 'customer')
    const suffix = randomBytes(2).toString('hex')
    const created = await send('POST', '/api/v1/vehicles', owner, {
      ...vehicleBody(` ab-12 c.${suffix} `),
      is_ev: true,
    })
    expect(created.status).toBe(201)
    const vehicle = await json(created)
    const normalized = `AB12C${suffix.toUpperCase()}`
    expect(vehicle).toEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      license_plate: `ab-12 c.${suffix}`,
      plate_normalized: normalized,
      vehicle_type_id: 'standard',
      make: 'Toyota',
      model: 'Camry',
      color: 'Silver',
      is_ev: true,
      owner_id: owner.id,
      created_at: expect.any(String),
      updated_at: expect.any(String),
    })

    const list = await json(await send('GET', '/api/v1/vehicles', owner))
    expect(list).toEqual({ data: [vehicle], next_cursor: null })
    expect(await json(await send('GET', `/api/v1/vehicles/${vehicle.id}`, owner))).toEqual(vehicle)

    const byPlate = await send(
      'GET',
      `/api/v1/vehicles/plate/${encodeURIComponent(`Ab 12-C${suffix}`)}`,
      operator,
    )
    expect(byPlate.status).toBe(200)
    expect((await json(byPlate)).id).toBe(vehicle.id)

    const newPlate = uniquePlate()
    const replaced = await send('PUT', `/api/v1/vehicles/${vehicle.id}`, owner, {
      license_plate: newPlate.toLowerCase(),
      vehicle_type_id: 'van',
    })
    expect(replaced.status).toBe(200)
    expect(await json(replaced)).toMatchObject({
      id: vehicle.id,
      license_plate: newPlate.toLowerCase(),
      plate_normalized: newPlate,
      vehicle_type_id: 'van',
      make: null,
      model: null,
      color: null,
      is_ev: false,
    })
    // The old plate is free again; the new one is taken.
    expect((await send('GET', `/api/v1/vehicles/plate/${normalized}`, operator)).status).toBe(404)
    const reuse = await registerVehicle(otherCustomer, vehicleBody(normalized))
    expect(reuse.plate_normalized).toBe(normalized)
    expect((await send('POST', '/api/v1/vehicles', otherCustomer, vehicleBody(newPlate))).status).toBe(409)

    // Replacing with the same plate in another spelling keeps it.
    const same = await send(
      'PUT',
      `/api/v1/vehicles/${vehicle.id}`,
      owner,
      vehicleBody(newPlate.toLowerCase()),
    )
    expect(same.status).toBe(200)

    expect((await send('DELETE', `/api/v1/vehicles/${vehicle.id}`, owner)).status).toBe(204)
    expect((await send('GET', `/api/v1/vehicles/${vehicle.id}`, owner)).status).toBe(404)
    expect((await send('GET', `/api/v1/vehicles/plate/${newPlate}`, admin)).status).toBe(404)
    expect(await db.collection('plate_claims').countDocuments({ _id: newPlate } as object)).toBe(0)
    await registerVehicle(otherCustomer, vehicleBody(newPlate))
  })

  it('refuses a plate registered in another spelling with 409', async () => {
    const plate = uniquePlate()
    await registerVehicle(customer, vehicleBody(plate))
    const spaced = plate.toLowerCase().split('').join(' ')
    const res = await send('POST', '/api/v1/vehicles', otherCustomer, vehicleBody(spaced))
    expect(res.status).toBe(409)
    expect((await json(res)).code).toBe('CONFLICT')
  })

  it('makes exactly one vehicle of 50 concurrent registrations of one plate', async () => {
    const owners: Account[] = []
    for (let batch = 0; batch < 5; batch++) {
      owners.push(
        ...(await Promise.all(Array.from({ length: 10 }, () => createAccount(platform, admin, 'customer')))),
      )
    }
    const plate = uniquePlate()
    const statuses = await Promise.all(
      owners.map((owner, i) =>
        send(
          'POST',
          '/api/v1/vehicles',
          owner,
          vehicleBody(i % 2 ? plate : `${plate.slice(0, 3)}-${plate.slice(3)}`),
        ).then((r) => r.status),
      ),
    )
    expect(statuses.filter((s) => s === 201)).toHaveLength(1)
    expect(statuses.filter((s) => s === 409)).toHaveLength(49)
    expect(await db.collection('vehicles').countDocuments({ plate_normalized: plate })).toBe(1)
  })

  it('pages the caller’s own vehicles only', async () => {
    const owner = await createAccount(platform, admin, 'customer')
    const mine = []
    for (let i = 0; i < 3; i++) mine.push((await registerVehicle(owner)).id)
    await registerVehicle(otherCustomer)
    const first = await json(await send('GET', '/api/v1/vehicles?limit=2', owner))
    expect(first.data.map((v: { id: string }) => v.id)).toEqual(mine.slice(0, 2))
    const second = await json(
      await send('GET', `/api/v1/vehicles?limit=2&cursor=${first.next_cursor}`, owner),
    )
    expect(second).toMatchObject({ data: [{ id: mine[2] }], next_cursor: null })
  })

  it('answers another customer with 404 on my vehicle, and lets staff read it', async () => {
    const vehicle = await registerVehicle(customer)
    const path = `/api/v1/vehicles/${vehicle.id}`
    expect((await send('GET', path, otherCustomer)).status).toBe(404)
    expect((await send('PUT', path, otherCustomer, vehicleBody())).status).toBe(404)
    expect((await send('DELETE', path, otherCustomer)).status).toBe(404)
    expect((await send('PUT', path, operator, vehicleBody())).status).toBe(404)
    expect((await send('GET', path, operator)).status).toBe(200)
    expect((await send('GET', path, admin)).status).toBe(200)
    expect(await json(await send('GET', path, customer))).toEqual(vehicle)
  })

  it('refuses a pending account with 403', async () => {
    const res = await platform.request('/api/v1/auth/register', {
      method: 'POST',
      ...jsonBody({
        email: `pending-${randomBytes(5).toString('hex')}@example.com`,
        password: 'a perfectly long passphrase',
        full_name: 'Pending Driver',
      }),
    })
    expect(res.status).toBe(201)
    const session = await json(res)
    expect(session.user.status).toBe('pending')
    const create = await platform.request('/api/v1/vehicles', {
      method: 'POST',
      ...jsonBody(vehicleBody(), bearer(session.access_token)),
    })
    expect(create.status).toBe(403)
  })
})

describe('input', () => {
  it('rejects an operator object and an unknown field, naming the field', async () => {
    const injected = await send('POST', '/api/v1/vehicles', customer, {
      ...vehicleBody(),
      license_plate: { $ne: null },
    })
    expect(injected.status).toBe(400)
    expect((await json(injected)).errors.map((e: { field: string }) => e.field)).toEqual(['license_plate'])

    const extra = await send('POST', '/api/v1/vehicles', customer, { ...vehicleBody(), owner_id: admin.id })
    expect(extra.status).toBe(400)
    expect((await json(extra)).errors[0].reason).toMatch(/owner_id/)
  })

  it('rejects plates that do not normalise to 2 to 10 letters and digits', async () => {
    for (const plate of ['A', '--', 'ABCDEFGHIJK', 'AB_12', 'ÄB12']) {
      const res = await send('POST', '/api/v1/vehicles', customer, vehicleBody(plate))
      expect(res.status).toBe(400)
      expect((await json(res)).errors[0]).toMatchObject({ in: 'body', field: 'license_plate' })
    }
  })

  it('answers an unknown vehicle type with 404 naming it', async () => {
    const res = await send('POST', '/api/v1/vehicles', customer, {
      ...vehicleBody(),
      vehicle_type_id: 'hovercraft',
    })
    expect(res.status).toBe(404)
    expect((await json(res)).detail).toBe('No vehicle type hovercraft')
  })
})

describe('roles', () => {
  type Who = 'anonymous' | 'customer' | 'operator' | 'admin'
  const missing = '01a20000-0000-7000-8000-000000000000'
  let knownPlate = ''
  beforeAll(async () => {
    knownPlate = (await registerVehicle(customer)).plate_normalized
  })
  const typeBody = () => ({
    id: `t-${randomBytes(4).toString('hex')}`,
    name: 'Trike',
    size_category: 'MOTORCYCLE',
  })
  const matrix: [string, string, (() => unknown) | undefined, Record<Who, number>][] = [
    ['GET', '/api/v1/vehicle-types', undefined, { anonymous: 401, customer: 200, operator: 200, admin: 200 }],
    ['POST', '/api/v1/vehicle-types', typeBody, { anonymous: 401, customer: 403, operator: 403, admin: 201 }],
    ['GET', '/api/v1/vehicles', undefined, { anonymous: 401, customer: 200, operator: 200, admin: 200 }],
    [
      'POST',
      '/api/v1/vehicles',
      () => vehicleBody(),
      { anonymous: 401, customer: 201, operator: 201, admin: 201 },
    ],
    [
      'GET',
      '/api/v1/vehicles/plate/{plate}',
      undefined,
      { anonymous: 401, customer: 403, operator: 200, admin: 200 },
    ],
    ['GET', '/api/v1/vehicles/{id}', undefined, { anonymous: 401, customer: 404, operator: 404, admin: 404 }],
    [
      'PUT',
      '/api/v1/vehicles/{id}',
      () => vehicleBody(),
      { anonymous: 401, customer: 404, operator: 404, admin: 404 },
    ],
    [
      'DELETE',
      '/api/v1/vehicles/{id}',
      undefined,
      { anonymous: 401, customer: 404, operator: 404, admin: 404 },
    ],
  ]
  const cases = matrix.flatMap(([method, path, body, expected]) =>
    (Object.keys(expected) as Who[]).map((who) => [who, method, path, expected[who], body] as const),
  )

  it.each(cases)('%s: %s %s answers %s', async (who, method, path, status, body) => {
    const account = { anonymous: undefined, customer, operator, admin }[who]
    const url = path.replace('{plate}', knownPlate).replace('{id}', missing)
    const res = await send(method, url, account, body?.())
    expect(res.status).toBe(status)
  })
})

describe('when an account is deleted', () => {
  it('its vehicles go too, and their plates are free for someone else', async () => {
    const leaving = await createAccount(platform, admin, 'customer')
    const plate = uniquePlate()
    expect((await send('POST', '/api/v1/vehicles', leaving, vehicleBody(plate))).status).toBe(201)
    expect((await send('POST', '/api/v1/vehicles', customer, vehicleBody(plate))).status).toBe(409)

    expect((await send('DELETE', `/api/v1/users/${leaving.id}`, admin)).status).toBe(204)
    expect(await db.collection('vehicles').countDocuments({ owner_id: leaving.id })).toBe(0)
    expect((await send('POST', '/api/v1/vehicles', customer, vehicleBody(plate))).status).toBe(201)
  })
})
