import { randomBytes } from 'node:crypto'
import mqtt from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createHttpApp } from '../../src/http/app.ts'
import type { Services } from '../../src/http/context.ts'
import type {
  DeviceHealth,
  IngestOutcome,
  ReadingSink,
} from '../../src/modules/occupancy/occupancy.contract.ts'
import { type BrokerAccounts, createDynsecAccounts } from '../../src/modules/sensors/dynsec.ts'
import { sensorModels } from '../../src/modules/sensors/sensors.model.ts'
import { createSensorsRepository } from '../../src/modules/sensors/sensors.repository.ts'
import { createSensorsService, type SensorsService } from '../../src/modules/sensors/sensors.service.ts'
import { AppError, DependencyDown, isDependencyFailure } from '../../src/shared/errors.ts'
import { createLogger } from '../../src/shared/logger.ts'
import { createMetrics } from '../../src/shared/metrics.ts'
import { connectDatabase, type Database, initModels, type ModelRegistration } from '../../src/shared/mongo.ts'
import { type BrokerClient, connectBroker } from '../../src/shared/mqtt.ts'
import { type Account, bearer, createAccount, jsonBody, signInAdmin, testAdmin } from '../harness/accounts.ts'
import { type Json, json } from '../harness/http.ts'
import { startTestPlatform, type TestPlatform } from '../harness/platform.ts'

// The broker is shared by every test file of a run: device ids carry this file's random suffix.

let platform: TestPlatform
let db: Database
let observer: BrokerClient
let admin: Account
let operator: Account
let customer: Account
let deviceBrokerUrl = ''
const devices: mqtt.MqttClient[] = []
const run = randomBytes(3).toString('hex')
let counter = 0
const newId = (name = 'dev') => `t${run}-${name}-${++counter}`
/** The zone new spaces go in; null when this build has no facilities capability to ask. */
let zoneId: string | null | undefined

/**
 * A space the platform knows: made through the facilities API when it is there, otherwise just a
 * fresh id (the platform then takes any space id).
 */
async function newSpace(): Promise<string> {
  if (zoneId === undefined) {
    const lot = await send('POST', '/api/v1/lots', admin, {
      name: `Sensors lot ${run}`,
      address: '1 Main Street, Springfield',
      latitude: 48.8566,
      longitude: 2.3522,
      time_zone: 'Europe/Paris',
      currency: 'EUR',
    })
    if (lot.status === 404) {
      zoneId = null
    } else {
      const levelRes = await send('POST', '/api/v1/levels', admin, {
        lot_id: (await json(lot)).id,
        name: 'L0',
        floor: 0,
      })
      const zoneRes = await send('POST', '/api/v1/zones', admin, {
        level_id: (await json(levelRes)).id,
        name: 'Z',
      })
      zoneId = (await json(zoneRes)).id as string
    }
  }
  if (zoneId === null) return `space-${run}-${++counter}`
  const res = await send('POST', '/api/v1/spaces', admin, {
    zone_id: zoneId,
    number: `S${++counter}`,
    type: 'STANDARD',
    flags: [],
  })
  if (res.status !== 201) throw new Error(`creating a space failed: ${res.status} ${await res.text()}`)
  return (await json(res)).id
}

beforeAll(async () => {
  platform = await startTestPlatform(testAdmin)
  db = await connectDatabase(platform.urls.mongodb)
  admin = await signInAdmin(platform)
  ;[operator, customer] = await Promise.all([
    createAccount(platform, admin, 'operator'),
    createAccount(platform, admin, 'customer'),
  ])
  // Devices connect without the platform's credentials; the observer is the platform's admin user.
  const url = new URL(platform.urls.mqtt)
  url.username = ''
  url.password = ''
  deviceBrokerUrl = url.toString()
  observer = await connectBroker(platform.urls.mqtt, () => {})
})
afterAll(async () => {
  await Promise.all(devices.map((client) => client.endAsync(true).catch(() => {})))
  await observer?.endAsync(true)
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

async function createDevice(body: Record<string, unknown>): Promise<Json> {
  const res = await send('POST', '/api/v1/devices', admin, body)
  if (res.status !== 201) throw new Error(`creating a device failed: ${res.status} ${await res.text()}`)
  return await json(res)
}

const createSensor = (extra: Record<string, unknown> = {}) =>
  createDevice({ id: newId('sensor'), kind: 'sensor', ...extra })

/** A device's MQTT 5 connection; rejects with the CONNACK reason code when refused. */
async function connectDevice(username: string, password: string, clientId = username) {
  const client = await mqtt.connectAsync(deviceBrokerUrl, {
    protocolVersion: 5,
    username,
    password,
    clientId,
    reconnectPeriod: 0,
    connectTimeout: 3_000,
  })
  devices.push(client)
  return client
}

async function refusedAtConnect(username: string, password: string, clientId = username): Promise<number> {
  try {
    const client = await connectDevice(username, password, clientId)
    await client.endAsync(true)
  } catch (error) {
    return (error as { code?: number }).code ?? -1
  }
  return 0
}

/** Resolves when the client's connection is gone (Mosquitto's DISCONNECT, or the socket closing). */
function closed(client: mqtt.MqttClient, ms = 3_000): Promise<'closed' | 'still connected'> {
  return new Promise((resolve) => {
    if (!client.connected) return resolve('closed')
    const timer = setTimeout(() => resolve('still connected'), ms)
    client.once('close', () => {
      clearTimeout(timer)
      resolve('closed')
    })
  })
}

/** Messages the observer sees on a topic filter, for as long as the test keeps the array. */
async function watch(filter: string): Promise<{ topic: string; payload: string }[]> {
  const seen: { topic: string; payload: string }[] = []
  const match = new RegExp(`^${filter.replaceAll('+', '[^/]+').replace('#', '.*')}$`)
  observer.on('message', (topic, payload) => {
    if (match.test(topic)) seen.push({ topic, payload: payload.toString() })
  })
  await observer.subscribeAsync(filter, { qos: 1 })
  return seen
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const basic = (username: string, password: string) => ({
  Authorization: `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`,
})

const reading = (deviceId: string, extra: Record<string, unknown> = {}) => ({
  device_id: deviceId,
  boot_id: 'boot-1',
  seq: 1,
  measured_at: new Date().toISOString(),
  occupied: true,
  battery: 87,
  signal: -71,
  ...extra,
})

const ingest = (headers: Record<string, string>, body: unknown) =>
  platform.request('/api/v1/ingest/readings', { method: 'POST', ...jsonBody(body, headers) })

describe('registering a sensor', () => {
  it('answers 201 with the device, its health and its credentials once', async () => {
    const id = newId('sensor')
    const res = await send('POST', '/api/v1/devices', admin, {
      id,
      kind: 'sensor',
      model: ' PS-200 ',
      firmware: '2.4.1',
    })
    expect(res.status).toBe(201)
    const device = await json(res)
    expect(device).toEqual({
      id,
      kind: 'sensor',
      space_id: null,
      model: 'PS-200',
      firmware: '2.4.1',
      last_seen_at: null,
      last_measured_at: null,
      battery: null,
      signal: null,
      stale: false,
      meter_wh: null,
      created_at: expect.any(String),
      updated_at: expect.any(String),
      credentials: {
        username: id,
        password: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
        client_id: id,
        topics: { state: `parking/sensors/${id}/state`, heartbeat: `parking/sensors/${id}/heartbeat` },
      },
    })
    const stored = await db.collection('devices').findOne({ _id: id } as object)
    expect(stored?.secret_hash).toMatch(/^[0-9a-f]{64}$/)
    expect(JSON.stringify(stored)).not.toContain(device.credentials.password)

    const { credentials, ...view } = device
    expect(await json(await send('GET', `/api/v1/devices/${id}`, operator))).toEqual(view)
  })

  it('lets the sensor publish to its own topics, and to no other device’s', async () => {
    const sensor = await createSensor()
    const other = await createSensor()
    const seen = await watch('parking/sensors/#')
    const client = await connectDevice(sensor.credentials.username, sensor.credentials.password)

    const own = await client.publishAsync(sensor.credentials.topics.state, '{"occupied":true}', { qos: 1 })
    expect(own?.messageId).toEqual(expect.any(Number))
    await client.publishAsync(sensor.credentials.topics.heartbeat, '{"battery":90}', { qos: 1 })

    // Mosquitto 2.0.11 answers a denied QoS 1 publish with PUBACK reason 135 (not authorized).
    for (const topic of [other.credentials.topics.state, `parking/sensors/${other.id}/x`, 'parking/other']) {
      await expect(client.publishAsync(topic, 'forged', { qos: 1 })).rejects.toMatchObject({ code: 135 })
    }
    await pause(200)
    expect(seen.map((m) => m.topic)).toEqual(
      expect.arrayContaining([sensor.credentials.topics.state, sensor.credentials.topics.heartbeat]),
    )
    expect(seen.filter((m) => m.payload === 'forged')).toEqual([])
    expect(client.connected).toBe(true)
  })

  it('refuses an unknown device, a wrong password and another client id at connect', async () => {
    const sensor = await createSensor()
    expect(await refusedAtConnect(newId('ghost'), 'whatever')).toBe(135)
    expect(await refusedAtConnect(sensor.id, 'not-the-secret')).toBe(135)
    expect(await refusedAtConnect(sensor.id, sensor.credentials.password, `${sensor.id}-clone`)).toBe(135)
    expect(await refusedAtConnect(sensor.id, sensor.credentials.password)).toBe(0)
  })

  it('answers 409 for an id that exists, whatever the kind, and leaves its credentials alone', async () => {
    const sensor = await createSensor()
    for (const kind of ['sensor', 'gateway']) {
      const res = await send('POST', '/api/v1/devices', admin, { id: sensor.id, kind })
      expect(res.status).toBe(409)
      expect((await json(res)).code).toBe('CONFLICT')
    }
    expect(await refusedAtConnect(sensor.id, sensor.credentials.password)).toBe(0)
  })

  it('registers a gateway with HTTP credentials only: the broker does not know it', async () => {
    const id = newId('gw')
    const gateway = await createDevice({ id, kind: 'gateway', model: 'GW-1' })
    expect(gateway).toMatchObject({ id, kind: 'gateway', space_id: null, model: 'GW-1' })
    expect(gateway.credentials).toEqual({
      username: id,
      password: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
    })
    expect(await refusedAtConnect(id, gateway.credentials.password)).toBe(135)
  })
})

describe('rotating credentials', () => {
  it('issues a new secret: the old password fails, a connected sensor is cut off', async () => {
    const sensor = await createSensor()
    const client = await connectDevice(sensor.id, sensor.credentials.password)
    const res = await send('POST', `/api/v1/devices/${sensor.id}/credentials`, admin)
    expect(res.status).toBe(200)
    const rotated = await json(res)
    expect(rotated).toMatchObject({
      id: sensor.id,
      credentials: { username: sensor.id, client_id: sensor.id },
    })
    expect(rotated.credentials.password).not.toBe(sensor.credentials.password)

    expect(await closed(client)).toBe('closed')
    expect(await refusedAtConnect(sensor.id, sensor.credentials.password)).toBe(135)
    expect(await refusedAtConnect(sensor.id, rotated.credentials.password)).toBe(0)
  })

  it('changes the HTTP secret of a gateway', async () => {
    const gateway = await createDevice({ id: newId('gw'), kind: 'gateway' })
    const rotated = await json(await send('POST', `/api/v1/devices/${gateway.id}/credentials`, admin))
    const body = { readings: [reading(newId())] }
    expect((await ingest(basic(gateway.id, gateway.credentials.password), body)).status).toBe(401)
    // Past authentication: the stand-in pipeline (or the real one) answers, not the guard.
    expect([202, 503]).toContain((await ingest(basic(gateway.id, rotated.credentials.password), body)).status)
  })
})

describe('deleting a device', () => {
  it('disconnects a connected sensor at once and refuses it from then on', async () => {
    const spaceId = await newSpace()
    const sensor = await createSensor({ space_id: spaceId })
    const client = await connectDevice(sensor.id, sensor.credentials.password)
    expect(client.connected).toBe(true)

    expect((await send('DELETE', `/api/v1/devices/${sensor.id}`, admin)).status).toBe(204)
    expect(await closed(client)).toBe('closed')
    expect(await refusedAtConnect(sensor.id, sensor.credentials.password)).toBe(135)
    expect((await send('GET', `/api/v1/devices/${sensor.id}`, admin)).status).toBe(404)
    expect((await send('DELETE', `/api/v1/devices/${sensor.id}`, admin)).status).toBe(404)
    expect(await db.collection('space_bindings').countDocuments({ _id: spaceId } as object)).toBe(0)
    expect(
      (await ingest(basic(sensor.id, sensor.credentials.password), { readings: [reading(sensor.id)] }))
        .status,
    ).toBe(401)

    // The id and the space are free again.
    const again = await createDevice({ id: sensor.id, kind: 'sensor', space_id: spaceId })
    expect(await refusedAtConnect(sensor.id, again.credentials.password)).toBe(0)
  })
})

describe('space bindings', () => {
  it('frees the sensor of a space that is deleted', async () => {
    const space = await newSpace()
    const sensor = await createSensor({ space_id: space })
    expect((await send('DELETE', `/api/v1/spaces/${space}`, admin)).status).toBe(204)
    const after = await json(await send('GET', `/api/v1/devices/${sensor.id}`, admin))
    expect(after.space_id).toBeNull()
    // The space's binding is gone too: a new space can take this sensor.
    const next = await newSpace()
    const res = await send('PUT', `/api/v1/devices/${sensor.id}`, admin, { space_id: next })
    expect(res.status).toBe(200)
  })

  it('binds one device per space; moving and unbinding free the space', async () => {
    const spaceA = await newSpace()
    const spaceB = await newSpace()
    const first = await createSensor({ space_id: spaceA })
    expect(first.space_id).toBe(spaceA)

    // A second sensor for a taken space is refused, and nothing of it is left behind.
    const secondId = newId('sensor')
    const taken = await send('POST', '/api/v1/devices', admin, {
      id: secondId,
      kind: 'sensor',
      space_id: spaceA,
    })
    expect(taken.status).toBe(409)
    expect((await send('GET', `/api/v1/devices/${secondId}`, admin)).status).toBe(404)
    expect(await refusedAtConnect(secondId, 'anything')).toBe(135)

    const second = await createSensor()
    expect((await send('PUT', `/api/v1/devices/${second.id}`, admin, { space_id: spaceA })).status).toBe(409)

    const moved = await send('PUT', `/api/v1/devices/${first.id}`, admin, {
      space_id: spaceB,
      model: 'PS-300',
    })
    expect(moved.status).toBe(200)
    expect(await json(moved)).toMatchObject({
      id: first.id,
      space_id: spaceB,
      model: 'PS-300',
      firmware: null,
    })

    const rebound = await send('PUT', `/api/v1/devices/${second.id}`, admin, { space_id: spaceA })
    expect(rebound.status).toBe(200)
    const bySpace = await json(await send('GET', `/api/v1/devices?space_id=${spaceA}`, operator))
    expect(bySpace).toMatchObject({ data: [{ id: second.id, space_id: spaceA }], next_cursor: null })

    // Re-stating the binding is no change; unbinding frees the space.
    expect((await send('PUT', `/api/v1/devices/${second.id}`, admin, { space_id: spaceA })).status).toBe(200)
    const unbound = await send('PUT', `/api/v1/devices/${second.id}`, admin, { space_id: null })
    expect((await json(unbound)).space_id).toBeNull()
    expect(await json(await send('GET', `/api/v1/devices?space_id=${spaceA}`, operator))).toEqual({
      data: [],
      next_cursor: null,
    })
    expect((await send('PUT', `/api/v1/devices/${first.id}`, admin, { space_id: spaceA })).status).toBe(200)
    const claims = await db
      .collection('space_bindings')
      .find({ device_id: first.id } as object)
      .toArray()
    expect(claims.map((c) => c._id)).toEqual([spaceA])
  })

  it('lets exactly one of 10 concurrent bindings of one space through', async () => {
    const sensors = await Promise.all(Array.from({ length: 10 }, () => createSensor()))
    const spaceId = await newSpace()
    const statuses = await Promise.all(
      sensors.map((s) =>
        send('PUT', `/api/v1/devices/${s.id}`, admin, { space_id: spaceId }).then((r) => r.status),
      ),
    )
    expect(statuses.filter((s) => s === 200)).toHaveLength(1)
    expect(statuses.filter((s) => s === 409)).toHaveLength(9)
    expect(await db.collection('devices').countDocuments({ space_id: spaceId })).toBe(1)
  })

  it('refuses to bind a gateway to a space', async () => {
    const gateway = await createDevice({ id: newId('gw'), kind: 'gateway' })
    expect(
      (await send('PUT', `/api/v1/devices/${gateway.id}`, admin, { space_id: await newSpace() })).status,
    ).toBe(409)
    const withSpace = await send('POST', '/api/v1/devices', admin, {
      id: newId('gw'),
      kind: 'gateway',
      space_id: await newSpace(),
    })
    expect(withSpace.status).toBe(400)
  })
})

describe('lists and health', () => {
  it('pages by id, filters by kind and by staleness', async () => {
    await createSensor()
    await createDevice({ id: newId('gw'), kind: 'gateway' })
    const all: Json[] = []
    let cursor: string | null = null
    do {
      const page: Json = await json(
        await send('GET', `/api/v1/devices?limit=3${cursor ? `&cursor=${cursor}` : ''}`, operator),
      )
      expect(page.data.length).toBeLessThanOrEqual(3)
      all.push(...page.data)
      cursor = page.next_cursor
    } while (cursor)
    const ids = all.map((d) => d.id)
    expect(ids).toEqual([...ids].sort())
    expect(new Set(ids).size).toBe(ids.length)
    expect(ids.length).toBe(await db.collection('devices').countDocuments())

    const gateways = await json(await send('GET', '/api/v1/devices?kind=gateway&limit=100', operator))
    expect(gateways.data.length).toBeGreaterThan(0)
    expect(gateways.data.every((d: Json) => d.kind === 'gateway')).toBe(true)

    // The platform's hot state has heard from no device here: none is stale.
    const fresh = await json(await send('GET', '/api/v1/devices?stale=false&limit=100', operator))
    expect(fresh.data.length).toBe(Math.min(100, ids.length))
    expect(await json(await send('GET', '/api/v1/devices?stale=true', operator))).toEqual({
      data: [],
      next_cursor: null,
    })
  })

  it('summarises the fleet for operators', async () => {
    const res = await send('GET', '/api/v1/sensors/health', operator)
    expect(res.status).toBe(200)
    const summary = await json(res)
    const sensors = await db.collection('devices').countDocuments({ kind: 'sensor' })
    expect(summary).toMatchObject({
      generated_at: expect.any(String),
      sensors,
      gateways: await db.collection('devices').countDocuments({ kind: 'gateway' }),
      ok: 0,
      stale: 0,
      never_seen: sensors,
      low_battery: 0,
    })
    expect(summary.problem_devices.length).toBe(Math.min(100, sensors))
    expect(summary.problem_devices[0].problems).toEqual(['never_seen'])
  })
})

describe('input', () => {
  it('refuses ids that cannot be a username and a topic level, and unknown fields', async () => {
    for (const id of ['a/b', 'a+b', '#', '-lead', '', 'x'.repeat(65), 'ünïcode']) {
      const res = await send('POST', '/api/v1/devices', admin, { id, kind: 'sensor' })
      expect(res.status).toBe(400)
      expect((await json(res)).errors[0]).toMatchObject({ in: 'body', field: 'id' })
    }
    const extra = await send('POST', '/api/v1/devices', admin, {
      id: newId(),
      kind: 'sensor',
      secret: 'mine',
    })
    expect(extra.status).toBe(400)
    const put = await send('PUT', `/api/v1/devices/${newId()}`, admin, { model: 'x' })
    expect(put.status).toBe(400)
    expect((await json(put)).errors[0]).toMatchObject({ field: 'space_id' })
  })
})

describe('roles and unknown ids', () => {
  type Who = 'anonymous' | 'customer' | 'operator' | 'admin'
  let existing = ''
  beforeAll(async () => {
    existing = (await createSensor()).id
    // The POST row's id exists, so that an admin's attempt is the 409 and not a new device.
    await createDevice({ id: 'x', kind: 'gateway' })
  })
  const missing = 'no-such-device'
  const matrix: [string, string, unknown, Record<Who, number>][] = [
    ['GET', '/api/v1/devices', undefined, { anonymous: 401, customer: 403, operator: 200, admin: 200 }],
    [
      'GET',
      '/api/v1/sensors/health',
      undefined,
      { anonymous: 401, customer: 403, operator: 200, admin: 200 },
    ],
    [
      'GET',
      '/api/v1/devices/{existing}',
      undefined,
      { anonymous: 401, customer: 403, operator: 200, admin: 200 },
    ],
    [
      'POST',
      '/api/v1/devices',
      { id: 'x', kind: 'gateway' },
      { anonymous: 401, customer: 403, operator: 403, admin: 409 },
    ],
    [
      'PUT',
      '/api/v1/devices/{existing}',
      { space_id: null },
      { anonymous: 401, customer: 403, operator: 403, admin: 200 },
    ],
    [
      'DELETE',
      '/api/v1/devices/{missing}',
      undefined,
      { anonymous: 401, customer: 403, operator: 403, admin: 404 },
    ],
    [
      'POST',
      '/api/v1/devices/{missing}/credentials',
      undefined,
      { anonymous: 401, customer: 403, operator: 403, admin: 404 },
    ],
    [
      'GET',
      '/api/v1/devices/{missing}',
      undefined,
      { anonymous: 401, customer: 403, operator: 404, admin: 404 },
    ],
    [
      'PUT',
      '/api/v1/devices/{missing}',
      { space_id: null },
      { anonymous: 401, customer: 403, operator: 403, admin: 404 },
    ],
  ]
  const cases = matrix.flatMap(([method, path, body, expected]) =>
    (Object.keys(expected) as Who[]).map((who) => [who, method, path, expected[who], body] as const),
  )

  it.each(cases)('%s: %s %s answers %s', async (who, method, path, status, body) => {
    const account = { anonymous: undefined, customer, operator, admin }[who]
    const url = path.replace('{existing}', existing).replace('{missing}', missing)
    const res = await send(method, url, account, body)
    expect(res.status).toBe(status)
    if (status === 404) expect((await json(res)).detail).toBe(`No device ${missing}`)
  })
})

describe('HTTP ingest on the platform', () => {
  it('refuses a missing, malformed or wrong Basic credential with 401 and WWW-Authenticate', async () => {
    const sensor = await createSensor()
    const body = { readings: [reading(sensor.id)] }
    for (const headers of [
      {},
      bearer(admin.token),
      { Authorization: 'Basic not base64!' },
      { Authorization: `Basic ${Buffer.from(sensor.id).toString('base64')}` },
      basic(sensor.id, 'wrong-secret'),
      basic(sensor.id, `${sensor.credentials.password}x`),
      basic(newId('ghost'), sensor.credentials.password),
      basic('a/b', 'x'),
    ]) {
      const res = await ingest(headers, body)
      expect(res.status).toBe(401)
      expect(res.headers.get('www-authenticate')).toMatch(/^Basic /)
      expect((await json(res)).code).toBe('UNAUTHENTICATED')
    }
  })

  it('checks the credential before the body', async () => {
    const res = await ingest(basic('nobody', 'x'), { readings: 'not a list' })
    expect(res.status).toBe(401)
  })

  it('refuses a sensor sending another device’s reading with 403, naming it', async () => {
    const sensor = await createSensor()
    const res = await ingest(basic(sensor.id, sensor.credentials.password), {
      readings: [reading(sensor.id), reading(newId('other'))],
    })
    expect(res.status).toBe(403)
    expect((await json(res)).errors).toEqual([
      expect.objectContaining({
        in: 'body',
        field: 'readings.1.device_id',
        pointer: '/readings/1/device_id',
      }),
    ])
  })

  it('validates the batch: 1 to 1000 readings of the message contract', async () => {
    const gateway = await createDevice({ id: newId('gw'), kind: 'gateway' })
    const auth = basic(gateway.id, gateway.credentials.password)
    const id = newId()
    for (const body of [
      { readings: [] },
      { readings: Array.from({ length: 1001 }, (_, i) => reading(id, { seq: i })) },
      { readings: [reading(id, { seq: -1 })] },
      { readings: [reading(id, { battery: 101 })] },
      { readings: [reading(id, { signal: 5 })] },
      { readings: [reading(id, { measured_at: 'yesterday' })] },
      { readings: [reading(id, { boot_id: 'b'.repeat(65) })] },
      { readings: [reading(id, { extra: 1 })] },
      { readings: [reading(id)], more: true },
    ]) {
      const res = await ingest(auth, body)
      expect(res.status).toBe(400)
      expect((await json(res)).code).toBe('VALIDATION_FAILED')
    }
  })
})

describe('HTTP ingest into a pipeline', () => {
  // The sensors service on this file's database with a recording sink: the HTTP door end to end,
  // whichever pipeline the platform has wired.
  const calls: { items: readonly unknown[]; onlyDevice: string | null }[] = []
  const sink: ReadingSink = {
    submit: async (items, onlyDevice) => {
      calls.push({ items, onlyDevice })
      return { accepted: items.length, duplicates: 0, stale: 0, rejected: [] } satisfies IngestOutcome
    },
  }
  let app: ReturnType<typeof createHttpApp>

  beforeAll(() => {
    const sensors = createSensorsService({
      repo: createSensorsRepository(db),
      broker: unusedBroker,
      occupancy: quietOccupancy(),
      findSpace: async () => ({}),
      readingSink: sink,
    })
    const services = { metrics: createMetrics(), sensors } as unknown as Services
    app = createHttpApp(services, createLogger('silent'), {
      version: 'test',
      corsOrigins: [],
      bodyLimitBytes: 1_048_576,
      metricsToken: undefined,
      trustProxy: false,
    })
  })

  const post = (headers: Record<string, string>, body: unknown) =>
    app.request('/api/v1/ingest/readings', { method: 'POST', ...jsonBody(body, headers) })

  it('passes a sensor’s own batch with onlyDevice, and answers 202 with the outcome', async () => {
    const sensor = await createSensor()
    const heartbeat = { ...reading(sensor.id, { seq: 2, measured_at: Date.now() }), occupied: undefined }
    const res = await post(basic(sensor.id, sensor.credentials.password), {
      readings: [reading(sensor.id), heartbeat],
    })
    expect(res.status).toBe(202)
    expect(await json(res)).toEqual({ accepted: 2, duplicates: 0, stale: 0, rejected: [] })
    expect(calls.at(-1)).toEqual({
      items: [reading(sensor.id, { measured_at: expect.any(String) }), expect.objectContaining({ seq: 2 })],
      onlyDevice: sensor.id,
    })
  })

  it('passes a gateway’s batch of any devices with no onlyDevice', async () => {
    const gateway = await createDevice({ id: newId('gw'), kind: 'gateway' })
    const batch = Array.from({ length: 1000 }, (_, i) => reading(`dev-${i % 7}`, { seq: i }))
    const res = await post(basic(gateway.id, gateway.credentials.password), { readings: batch })
    expect(res.status).toBe(202)
    expect((await json(res)).accepted).toBe(1000)
    expect(calls.at(-1)?.onlyDevice).toBeNull()
    expect(calls.at(-1)?.items).toHaveLength(1000)
  })
})

const unusedBroker: BrokerAccounts = {
  provisionDevice: async () => {
    throw new Error('not in this test')
  },
  removeDevice: async () => {
    throw new Error('not in this test')
  },
}

function quietOccupancy(health: DeviceHealth[] = []) {
  const bound: [string, string | null][] = []
  return {
    bound,
    bindDevice: async (deviceId: string, spaceId: string | null) => void bound.push([deviceId, spaceId]),
    removeDevice: async () => {},
    deviceHealth: async (ids: readonly string[]) => health.filter((h) => ids.includes(h.deviceId)),
  }
}

describe('the sensors service with a hot state', () => {
  let sensors: SensorsService
  const names = { ok: newId('ok'), stale: newId('stale'), weak: newId('weak'), silent: newId('silent') }
  const seen = new Date('2030-01-01T00:00:00Z')
  const health = (deviceId: string, over: Partial<DeviceHealth>): DeviceHealth => ({
    deviceId,
    spaceId: null,
    lastSeenAt: seen,
    lastMeasuredAt: seen,
    boot: 'b',
    seq: 1,
    battery: 80,
    signal: -70,
    stale: false,
    meterWh: null,
    meterAt: null,
    ...over,
  })
  const occupancy = quietOccupancy([
    health(names.ok, {}),
    health(names.stale, { stale: true }),
    health(names.weak, { battery: 12 }),
  ])
  const spaces = new Set<string>()

  beforeAll(async () => {
    // A database of its own: the summary counts every device in it.
    const own = await connectDatabase(platform.urls.mongodb.replace(/\/[^/]+$/, `/t_sensors_${run}`))
    await initModels(own, [sensorModels as unknown as ModelRegistration])
    sensors = createSensorsService({
      repo: createSensorsRepository(own),
      broker: createDynsecAccounts(observer),
      occupancy,
      findSpace: async (id) => (spaces.has(id) ? { id } : undefined),
      readingSink: { submit: async () => ({ accepted: 0, duplicates: 0, stale: 0, rejected: [] }) },
    })
    for (const id of Object.values(names)) await sensors.create({ id, kind: 'sensor' })
    await sensors.create({ id: newId('gw'), kind: 'gateway' })
    return async () => {
      await own.dropDatabase().catch(() => {})
      await own.close()
    }
  })

  it('merges the hot state into the views', async () => {
    expect(await sensors.get(names.weak)).toMatchObject({
      last_seen_at: seen.toISOString(),
      last_measured_at: seen.toISOString(),
      battery: 12,
      signal: -70,
      stale: false,
    })
    const stale = await sensors.list({ limit: 10, stale: 'true' })
    expect(stale.data.map((d) => d.id)).toEqual([names.stale])
    const fresh = await sensors.list({ limit: 2, stale: 'false', kind: 'sensor' })
    expect(fresh.data).toHaveLength(2)
    const rest = await sensors.list({
      limit: 2,
      stale: 'false',
      kind: 'sensor',
      cursor: fresh.next_cursor ?? '',
    })
    expect([...fresh.data, ...rest.data].map((d) => d.id).sort()).toEqual(
      [names.ok, names.weak, names.silent].sort(),
    )
  })

  it('counts ok, stale, never seen and low battery, and lists the problem sensors', async () => {
    const summary = await sensors.healthSummary()
    expect(summary).toMatchObject({ sensors: 4, gateways: 1, ok: 2, stale: 1, never_seen: 1, low_battery: 1 })
    expect(Object.fromEntries(summary.problem_devices.map((d) => [d.id, d.problems]))).toEqual({
      [names.stale]: ['stale'],
      [names.weak]: ['low_battery'],
      [names.silent]: ['never_seen'],
    })
  })

  it('answers an unknown space with 404 and tells the hot state about bindings', async () => {
    await expect(sensors.create({ id: newId(), kind: 'sensor', space_id: 'nowhere' })).rejects.toMatchObject({
      code: 'NOT_FOUND',
    })
    const spaceId = `space-${run}-${++counter}`
    spaces.add(spaceId)
    const id = newId()
    await sensors.create({ id, kind: 'sensor', space_id: spaceId })
    expect(occupancy.bound.at(-1)).toEqual([id, spaceId])
    await sensors.replace(id, { space_id: null })
    expect(occupancy.bound.at(-1)).toEqual([id, null])
    await sensors.unbindSpace(spaceId)
  })

  it('creates broker credentials idempotently: a second provisioning sets the password again', async () => {
    const accounts = createDynsecAccounts(observer)
    const id = newId('retry')
    await accounts.provisionDevice(id, 'first-password')
    await accounts.provisionDevice(id, 'second-password')
    expect(await refusedAtConnect(id, 'first-password')).toBe(135)
    const client = await connectDevice(id, 'second-password')
    await client.publishAsync(`parking/sensors/${id}/state`, 'x', { qos: 1 })
    await expect(client.publishAsync('parking/sensors/someone/state', 'x', { qos: 1 })).rejects.toMatchObject(
      {
        code: 135,
      },
    )
    await accounts.removeDevice(id)
    await accounts.removeDevice(id)
    expect(await closed(client)).toBe('closed')
  })

  it('turns a broker that does not answer into DependencyDown, and leaves no device behind', async () => {
    const offline = await connectBroker(platform.urls.mqtt, () => {})
    await offline.endAsync(true)
    const accounts = createDynsecAccounts(offline)
    const error = await accounts.provisionDevice(newId(), 'pw').catch((e: unknown) => e)
    expect(error).toBeInstanceOf(DependencyDown)
    expect(isDependencyFailure(error)).toBe(true)

    const down = createSensorsService({
      repo: createSensorsRepository(db),
      broker: accounts,
      occupancy: quietOccupancy(),
      findSpace: async () => ({}),
      readingSink: sink503,
    })
    const id = newId()
    await expect(down.create({ id, kind: 'sensor' })).rejects.toBeInstanceOf(DependencyDown)
    expect(await db.collection('devices').countDocuments({ _id: id } as object)).toBe(0)
    await expect(down.get(id)).rejects.toBeInstanceOf(AppError)
  })

  it('times out a broker that takes the command but never answers', async () => {
    // A client that may publish but whose answers never come: an unsubscribed response topic.
    const silent = await connectBroker(platform.urls.mqtt, () => {})
    try {
      silent.subscribeAsync = (async () => [{ topic: '', qos: 1 }]) as never
      const begin = Date.now()
      const error = await createDynsecAccounts(silent, { timeoutMs: 300 })
        .removeDevice(newId())
        .catch((e: unknown) => e)
      expect(error).toBeInstanceOf(DependencyDown)
      expect(Date.now() - begin).toBeLessThan(2_000)
    } finally {
      await silent.endAsync(true)
    }
  })
})

const sink503: ReadingSink = {
  submit: async () => {
    throw new DependencyDown('not wired')
  },
}
