import { randomUUID } from 'node:crypto'
import fc from 'fast-check'
import mqtt from 'mqtt'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { WebSocket } from 'ws'
import type { SpacePlacement, SpaceType } from '../../src/modules/occupancy/occupancy.contract.ts'
import { connectRedis } from '../../src/shared/redis.ts'
import { type Account, bearer, createAccount, jsonBody, signInAdmin, testAdmin } from '../harness/accounts.ts'
import { json } from '../harness/http.ts'
import { startTestPlatform, type TestPlatform } from '../harness/platform.ts'

// The occupancy pipeline end to end on the real broker, Redis and FerretDB: spaces are placed in
// the hot state and devices bound through the occupancy index (the facilities and sensors APIs
// have tests of their own); sensor messages go through Mosquitto with the platform's credentials.

let platform: TestPlatform
let broker: mqtt.MqttClient
let operator: Account

beforeAll(async () => {
  platform = await startTestPlatform({ ...testAdmin, INGEST_ENABLED: 'true', OCCUPANCY_DWELL_MS: '0' })
  broker = await mqtt.connectAsync(platform.urls.mqtt, { protocolVersion: 5 })
  operator = await createAccount(platform, await signInAdmin(platform), 'operator')
})
afterAll(async () => {
  await broker?.endAsync()
  await platform?.stop()
})

type Site = { lot: string; level: string; zones: string[]; spaces: SpacePlacement[]; devices: string[] }

/** A lot with one level, `zones` zones of `perZone` spaces, each with a bound device. */
async function site(zones = 1, perZone = 4, types: SpaceType[] = ['STANDARD']): Promise<Site> {
  const lot = randomUUID()
  const level = randomUUID()
  const zoneIds = Array.from({ length: zones }, () => randomUUID())
  const spaces = zoneIds.flatMap((zone, z) =>
    Array.from({ length: perZone }, (_, i) => ({
      spaceId: randomUUID(),
      lotId: lot,
      levelId: level,
      zoneId: zone,
      number: `${String.fromCharCode(65 + z)}-${String(i + 1).padStart(3, '0')}`,
      type: types[i % types.length] ?? 'STANDARD',
      overlay: null,
    })),
  )
  await platform.occupancy.index.upsertSpaces(spaces)
  const devices = spaces.map((_, i) => `dev-${lot.slice(0, 8)}-${i}`)
  for (const [i, space] of spaces.entries())
    await platform.occupancy.index.bindDevice(devices[i] ?? '', space.spaceId)
  return { lot, level, zones: zoneIds, spaces, devices }
}

const reading = (device: string, seq: number, occupied: boolean, extra: Record<string, unknown> = {}) => ({
  device_id: device,
  boot_id: 'boot-1',
  seq,
  measured_at: Date.now(),
  occupied,
  battery: 87,
  signal: -71,
  ...extra,
})

async function publish(device: string, body: unknown, kind: 'state' | 'heartbeat' = 'state') {
  const payload = typeof body === 'string' ? body : JSON.stringify(body)
  await broker.publishAsync(`parking/sensors/${device}/${kind}`, payload, { qos: 1 })
}

async function eventually<T>(read: () => Promise<T>, ok: (value: T) => boolean, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const value = await read()
    if (ok(value) || Date.now() > deadline) return value
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

const availability = async (scope: 'lots' | 'levels' | 'zones', id: string) =>
  await json(await platform.request(`/api/v1/${scope}/${id}/availability`))

describe('from a sensor message to the API', () => {
  test('counts a lot, level and zone, lists free spaces by type, and shows a space state', async () => {
    const s = await site(2, 3, ['STANDARD', 'EV', 'HANDICAPPED'])
    expect(await availability('zones', s.zones[0] ?? '')).toMatchObject({
      total: 3,
      unknown: 3,
      available: 0,
    })

    for (const [i, device] of s.devices.entries()) await publish(device, reading(device, 1, i % 3 === 0))
    await eventually(
      () => availability('lots', s.lot),
      (a) => a.unknown === 0,
    )
    const zone = await eventually(
      () => availability('zones', s.zones[0] ?? ''),
      (a) => a.unknown === 0,
    )
    expect(zone).toMatchObject({ zone_id: s.zones[0], total: 3, available: 2, occupied: 1, unknown: 0 })
    expect(zone.occupancy_rate).toBeCloseTo(33.3, 1)
    expect(await availability('levels', s.level)).toMatchObject({ total: 6, available: 4, occupied: 2 })
    expect(await availability('lots', s.lot)).toMatchObject({ total: 6, available: 4, occupied: 2 })

    const ev = await json(await platform.request(`/api/v1/spaces/available?lot_id=${s.lot}&ev=true`))
    expect(ev.total).toBe(2)
    expect(ev.data.map((x: { type: string }) => x.type)).toEqual(['EV', 'EV'])
    const inZone = await json(
      await platform.request(`/api/v1/spaces/available?zone_id=${s.zones[1]}&limit=1`),
    )
    expect(inZone).toMatchObject({ total: 2, data: [{ number: 'B-002', status: 'free' }] })

    const first = s.spaces[0]
    const state = await json(await platform.request(`/api/v1/spaces/${first?.spaceId}/state`))
    expect(state).toMatchObject({
      sensed: 'occupied',
      status: 'occupied',
      overlay: null,
      device_id: s.devices[0],
    })
  })

  test('an operator overlay wins over the sensed state, and both are kept apart', async () => {
    const s = await site(1, 2)
    const [a, b] = s.spaces
    await publish(s.devices[0] ?? '', reading(s.devices[0] ?? '', 1, false))
    await publish(s.devices[1] ?? '', reading(s.devices[1] ?? '', 1, false))
    await eventually(
      () => availability('zones', s.zones[0] ?? ''),
      (x) => x.available === 2,
    )
    await platform.occupancy.index.upsertSpaces([{ ...(a as SpacePlacement), overlay: 'maintenance' }])
    expect(await availability('zones', s.zones[0] ?? '')).toMatchObject({ available: 1, maintenance: 1 })
    await publish(s.devices[0] ?? '', reading(s.devices[0] ?? '', 2, true))
    const state = await eventually(
      async () => await json(await platform.request(`/api/v1/spaces/${a?.spaceId}/state`)),
      (x) => x.sensed === 'occupied',
    )
    expect(state).toMatchObject({ sensed: 'occupied', overlay: 'maintenance', status: 'maintenance' })
    expect(await availability('zones', s.zones[0] ?? '')).toMatchObject({
      available: 1,
      maintenance: 1,
      occupied: 0,
    })
    await platform.occupancy.index.upsertSpaces([{ ...(a as SpacePlacement), overlay: null }])
    expect(await availability('zones', s.zones[0] ?? '')).toMatchObject({
      available: 1,
      occupied: 1,
      maintenance: 0,
    })
    expect(b).toBeDefined()
  })

  test('tells feeds when a space is placed, moved or removed, so counts kept from them stay right', async () => {
    const s = await site(2, 1)
    const head = await platform.occupancy.state.feedHead()
    const [a, b] = s.spaces as [SpacePlacement, SpacePlacement]
    await platform.occupancy.index.upsertSpaces([{ ...a, zoneId: b.zoneId }]) // moved to the other zone
    await platform.occupancy.index.removeSpaces([b.spaceId])
    const events = (await platform.occupancy.state.changesSince(head, 100)).filter((e) => e.lot === s.lot)
    expect(events.map((e) => [e.kind, e.zone, e.space])).toEqual([
      ['removed', a.zoneId, a.spaceId],
      ['placed', b.zoneId, a.spaceId],
      ['removed', b.zoneId, b.spaceId],
    ])
    expect(await availability('zones', b.zoneId)).toMatchObject({ total: 1 })
    expect(await availability('lots', s.lot)).toMatchObject({ total: 1 })
  })

  test('answers 404 for an unknown lot, level, zone or space, and 400 for a malformed id', async () => {
    for (const path of ['lots', 'levels', 'zones'])
      expect((await platform.request(`/api/v1/${path}/${randomUUID()}/availability`)).status).toBe(404)
    expect((await platform.request(`/api/v1/spaces/${randomUUID()}/state`)).status).toBe(404)
    expect((await platform.request('/api/v1/zones/not-a-uuid/availability')).status).toBe(400)
  })

  test('writes every change to the history in MongoDB, readable by operators only', async () => {
    const s = await site(1, 1)
    const device = s.devices[0] ?? ''
    const space = s.spaces[0]?.spaceId
    for (let seq = 1; seq <= 6; seq++) await publish(device, reading(device, seq, seq % 2 === 0))
    const path = `/api/v1/spaces/${space}/history?limit=5`
    // Wait for all seven rows (placed + six readings): a first page of five may exist before the
    // last two are written, and would then rightly have no next cursor.
    await eventually(
      async () =>
        await json(
          await platform.request(`/api/v1/spaces/${space}/history?limit=10`, {
            headers: bearer(operator.token),
          }),
        ),
      (x) => x.data?.length === 7,
    )
    const page = await json(await platform.request(path, { headers: bearer(operator.token) }))
    // Oldest first: the space placed (unknown), then seq 1 (free), 2 (occupied), 3, 4
    expect(page.data.map((e: { kind: string }) => e.kind)).toEqual([
      'placed',
      'sensor',
      'sensor',
      'sensor',
      'sensor',
    ])
    expect(page.data.map((e: { sensed_to: string }) => e.sensed_to)).toEqual([
      'unknown',
      'free',
      'occupied',
      'free',
      'occupied',
    ])
    expect(page.data[1]).toMatchObject({ sensed_from: 'unknown', kind: 'sensor', device_id: device, seq: 1 })
    expect(page.next_cursor).toEqual(expect.any(String))
    const rest = await json(
      await platform.request(`${path}&cursor=${page.next_cursor}`, { headers: bearer(operator.token) }),
    )
    expect(rest.data.map((e: { seq: number }) => e.seq)).toEqual([5, 6])
    expect((await platform.request(path)).status).toBe(401)
  })
})

describe('the Redis step', () => {
  test('keeps the state of the highest sequence number, whatever the order and repetition', async () => {
    const s = await site(1, 1)
    const device = s.devices[0] ?? ''
    const spaceId = s.spaces[0]?.spaceId ?? ''
    let boot = 0
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.boolean(), { minLength: 1, maxLength: 30 }),
        fc.array(fc.nat(), { maxLength: 40 }),
        fc.integer({ min: 1, max: 8 }),
        async (states, shuffle, batches) => {
          boot++ // a fresh boot per run: sequence numbers start again
          const messages = states.map((occupied, i) => ({ seq: i + 1, occupied }))
          // Repeat some messages and shuffle them all, then apply in several batches.
          const stream = [
            ...messages,
            ...shuffle.map((n) => messages[n % messages.length] as (typeof messages)[0]),
          ]
          for (let i = stream.length - 1; i > 0; i--) {
            const j = (shuffle[i % Math.max(shuffle.length, 1)] ?? i) % (i + 1)
            ;[stream[i], stream[j]] = [stream[j] as (typeof stream)[0], stream[i] as (typeof stream)[0]]
          }
          const size = Math.ceil(stream.length / batches)
          const at = Date.now() + boot // each boot later than the last one
          for (let i = 0; i < stream.length; i += size) {
            const args = stream
              .slice(i, i + size)
              .flatMap((m) => [
                device,
                `b${boot}`,
                String(m.seq),
                String(at),
                m.occupied ? '1' : '0',
                '',
                '',
                '',
              ])
            await platform.occupancy.state.apply(args, 0)
          }
          const state = await platform.occupancy.state.space(spaceId)
          const highest = messages.at(-1)
          return state?.sensed === (highest?.occupied ? 'occupied' : 'free')
        },
      ),
      { numRuns: 60 },
    )
  })

  test('counts duplicates and stale readings, and refuses unknown devices', async () => {
    const s = await site(1, 1)
    const d = s.devices[0] ?? ''
    const at = String(Date.now())
    const row = (seq: number, occupied: string) => [d, 'b', String(seq), at, occupied, '', '', '']
    expect(
      await platform.occupancy.state.apply([...row(5, '1'), ...row(5, '1'), ...row(4, '0')], 0),
    ).toMatchObject({
      accepted: 1,
      duplicates: 1,
      stale: 1,
      changes: 1,
    })
    const older = [d, 'old-boot', '99', String(Number(at) - 60_000), '0', '', '', '']
    expect(await platform.occupancy.state.apply(older, 0)).toMatchObject({ accepted: 0, stale: 1 })
    const stranger = ['nobody', 'b', '1', at, '1', '', '', '']
    expect(await platform.occupancy.state.apply([...row(6, '1'), ...stranger], 0)).toMatchObject({
      accepted: 1,
      unknown: [1],
    })
  })

  test('debounces: a change counts once it held for the dwell time, a flap back cancels it', async () => {
    const s = await site(1, 2)
    const [d1, d2] = s.devices as [string, string]
    const [s1, s2] = s.spaces.map((x) => x.spaceId) as [string, string]
    const apply = (device: string, seq: number, occupied: boolean) =>
      platform.occupancy.state.apply(
        [device, 'b', String(seq), String(Date.now()), occupied ? '1' : '0', '', '', ''],
        400,
      )
    await apply(d1, 1, false) // from unknown: at once
    await apply(d2, 1, false)
    expect((await platform.occupancy.state.space(s1))?.sensed).toBe('free')

    await apply(d1, 2, true) // held: counts after 400 ms
    await apply(d2, 2, true) // flaps back: never counts
    await apply(d2, 3, false)
    expect(await platform.occupancy.state.space(s1)).toMatchObject({ sensed: 'free', pending: 'occupied' })
    expect(await platform.occupancy.state.space(s2)).toMatchObject({ sensed: 'free', pending: null })

    const settled = await eventually(
      () => platform.occupancy.state.space(s1),
      (x) => x?.sensed === 'occupied',
      3_000,
    )
    expect(settled).toMatchObject({ sensed: 'occupied', pending: null })
    expect((await platform.occupancy.state.space(s2))?.sensed).toBe('free')
    expect(await availability('zones', s.zones[0] ?? '')).toMatchObject({ occupied: 1, available: 1 })
  })

  test('turns the space of a silent sensor to unknown, and back with its next reading', async () => {
    const s = await site(1, 1)
    const d = s.devices[0] ?? ''
    const space = s.spaces[0]?.spaceId ?? ''
    await platform.occupancy.state.apply([d, 'b', '1', String(Date.now()), '1', '50', '-80', ''], 0)
    await new Promise((resolve) => setTimeout(resolve, 20))
    await platform.occupancy.state.sweep(10) // silent for more than 10 ms
    expect(await platform.occupancy.state.space(space)).toMatchObject({ sensed: 'unknown' })
    const [health] = await platform.occupancy.index.deviceHealth([d])
    expect(health).toMatchObject({ stale: true, battery: 50, signal: -80 })
    await platform.occupancy.state.apply([d, 'b', '2', String(Date.now()), '0', '', '', ''], 0)
    expect(await platform.occupancy.state.space(space)).toMatchObject({ sensed: 'free' })
    expect((await platform.occupancy.index.deviceHealth([d]))[0]?.stale).toBe(false)
  })
})

describe('holds: parking sessions and reservations', () => {
  test('a reservation holds a space as reserved; a walk-in never gets it; its check-in takes it over', async () => {
    const s = await site(1, 2)
    const [d1] = s.devices as [string, string]
    const [s1, s2] = s.spaces.map((x) => x.spaceId) as [string, string]
    const zone = s.zones[0] ?? ''
    const now = () => String(Date.now())
    await platform.occupancy.state.apply([d1, 'b', '1', now(), '0', '', '', ''], 0)
    const rsv = `rsv:${randomUUID()}`
    expect(await platform.occupancy.spaces.hold(rsv, s1)).toMatchObject({ spaceId: s1 })
    expect(await platform.occupancy.state.space(s1)).toMatchObject({ status: 'reserved' })
    expect(await availability('zones', zone)).toMatchObject({ reserved: 1 })
    // Walk-ins get the other space, then nothing: a reserved space is not free.
    const walkIn = randomUUID()
    expect(await platform.occupancy.spaces.allocate(walkIn, s.lot, zone, ['STANDARD'])).toMatchObject({
      spaceId: s2,
    })
    expect(await platform.occupancy.spaces.allocate(randomUUID(), s.lot, zone, ['STANDARD'])).toBeNull()
    // Another session cannot take it, not even by naming it; the booked car's session can, even
    // when the car is sensed on it already.
    expect(await platform.occupancy.spaces.hold(randomUUID(), s1)).toBeNull()
    await platform.occupancy.state.apply([d1, 'b', '2', now(), '1', '', '', ''], 0)
    const booked = randomUUID()
    expect(await platform.occupancy.spaces.hold(booked, s1, { takeOverFrom: rsv })).toMatchObject({
      spaceId: s1,
    })
    expect(await platform.occupancy.state.space(s1)).toMatchObject({ status: 'occupied', sessionId: booked })
    expect(await platform.occupancy.spaces.release(rsv)).toBeNull() // handed over: nothing left
    expect(await availability('zones', zone)).toMatchObject({ reserved: 0, occupied: 2 })
  })

  test('a charger meter reading travels the sensor path and is kept with the device', async () => {
    const s = await site(1, 1)
    const d = s.devices[0] ?? ''
    const measured = Date.now()
    await publish(d, { ...reading(d, 1, true), measured_at: measured, energy_wh: 1234.5 }, 'state')
    const [health] = await eventually(
      () => platform.occupancy.index.deviceHealth([d]),
      ([h]) => h?.meterWh !== null,
    )
    expect(health).toMatchObject({ meterWh: 1234.5 })
    expect(health?.meterAt?.getTime()).toBe(measured)
    await publish(
      d,
      { device_id: d, boot_id: 'boot-1', seq: 2, measured_at: Date.now() + 1, energy_wh: 2000 },
      'heartbeat',
    )
    const [later] = await eventually(
      () => platform.occupancy.index.deviceHealth([d]),
      ([h]) => h?.meterWh === 2000,
    )
    expect(later?.meterWh).toBe(2000)
  })
})

describe('silent sensors, without false alarms', () => {
  const apply = (device: string, seq: number, occupied: string, seenEveryMs = 1_000) =>
    platform.occupancy.state.apply(
      [device, 'b', String(seq), String(Date.now()), occupied, '', '', ''],
      0,
      seenEveryMs,
    )

  test('a sensor that reports often is never taken for silent', async () => {
    const s = await site(1, 1)
    const d = s.devices[0] ?? ''
    for (let seq = 1; seq <= 12; seq++) {
      await apply(d, seq, '1', 50) // the silent-sensor index may lag 50 ms
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
    await platform.occupancy.state.sweep(150) // silent means: nothing for 150 ms
    expect(await platform.occupancy.state.space(s.spaces[0]?.spaceId ?? '')).toMatchObject({
      sensed: 'occupied',
    })
  })

  test('after going silent, a heartbeat and then the same state as before restore the space', async () => {
    const s = await site(1, 1)
    const d = s.devices[0] ?? ''
    const space = s.spaces[0]?.spaceId ?? ''
    await apply(d, 1, '1')
    await new Promise((resolve) => setTimeout(resolve, 20))
    await platform.occupancy.state.sweep(10)
    expect((await platform.occupancy.state.space(space))?.sensed).toBe('unknown')
    await apply(d, 2, '') // heartbeat
    await apply(d, 3, '1') // the same report as before the silence
    expect((await platform.occupancy.state.space(space))?.sensed).toBe('occupied')
  })
})

describe('a Redis that lost its data', () => {
  test('refuses readings until the hot state is rebuilt from MongoDB, then takes them', async () => {
    const prefix = `rb_${randomUUID().slice(0, 8)}:`
    const fresh = await startTestPlatform({ ...testAdmin, OCCUPANCY_DWELL_MS: '0', REDIS_KEY_PREFIX: prefix })
    const redis = await connectRedis(fresh.urls.redis, () => {})
    try {
      const admin = await signInAdmin(fresh)
      const post = async (path: string, body: unknown) =>
        await json(await fresh.request(path, { method: 'POST', ...jsonBody(body, bearer(admin.token)) }))
      const lot = await post('/api/v1/lots', {
        name: 'Rebuild lot',
        address: '1 Main Street',
        latitude: 48.1,
        longitude: 11.5,
        time_zone: 'Europe/Berlin',
        currency: 'EUR',
      })
      const level = await post('/api/v1/levels', { lot_id: lot.id, name: 'L0', floor: 0 })
      const zone = await post('/api/v1/zones', { level_id: level.id, name: 'Z' })
      const space = await post('/api/v1/spaces', {
        zone_id: zone.id,
        number: 'R-1',
        type: 'STANDARD',
        flags: [],
      })
      const device = await post('/api/v1/devices', {
        id: `rb-${lot.id.slice(-8)}`,
        kind: 'sensor',
        space_id: space.id,
      })

      // Every key of this platform goes, as if Redis had restarted empty.
      const keys = await redis.keys(`${prefix}*`)
      if (keys.length > 0) await redis.del(...keys)

      const ingest = () =>
        fresh.request('/api/v1/ingest/readings', {
          method: 'POST',
          ...jsonBody(
            {
              readings: [
                { device_id: device.id, boot_id: 'b', seq: 1, measured_at: Date.now(), occupied: true },
              ],
            },
            {
              Authorization: `Basic ${Buffer.from(`${device.id}:${device.credentials.password}`).toString('base64')}`,
            },
          ),
        })
      expect((await ingest()).status).toBe(503) // the hot state is not built: nothing is taken
      const accepted = await eventually(
        async () => (await ingest()).status,
        (status) => status === 202,
      )
      expect(accepted).toBe(202)
      expect(await json(await fresh.request(`/api/v1/spaces/${space.id}/state`))).toMatchObject({
        sensed: 'occupied',
        device_id: device.id,
      })
      expect(await json(await fresh.request(`/api/v1/lots/${lot.id}/availability`))).toMatchObject({
        total: 1,
        occupied: 1,
      })
    } finally {
      redis.disconnect()
      await fresh.stop()
    }
  })
})

describe('bad messages', () => {
  test('go to the dead letters with a reason, and the pipeline goes on', async () => {
    const s = await site(1, 1)
    const d = s.devices[0] ?? ''
    const marker = `garbage-${randomUUID()}`
    await publish(d, marker)
    await publish(d, { ...reading(d, 1, true), seq: -1 })
    await publish(d, reading('someone-else', 1, true))
    await publish(d, { ...reading(d, 2, true), measured_at: Date.now() + 3_600_000 })
    await publish(d, reading(d, 3, true))
    const letters = await eventually(
      async () =>
        await json(
          await platform.request('/api/v1/ingest/dead-letters?limit=500', {
            headers: bearer(operator.token),
          }),
        ),
      (x) => x.data.filter((l: { topic: string }) => l.topic.includes(d)).length >= 4,
    )
    const mine = letters.data
      .filter((l: { topic: string }) => l.topic.includes(d))
      .map((l: { reason: string }) => l.reason)
    expect(mine).toEqual(
      expect.arrayContaining([
        'payload: not UTF-8 JSON',
        expect.stringMatching(/^seq: /),
        expect.stringMatching(/does not match the topic/),
        expect.stringMatching(/^measured_at: more than 5 minutes in the future/),
      ]),
    )
    const state = await eventually(
      () => platform.occupancy.state.space(s.spaces[0]?.spaceId ?? ''),
      (x) => x?.sensed === 'occupied',
    )
    expect(state?.sensed).toBe('occupied')
  })
})

describe('live feeds', () => {
  async function* sse(path: string, headers: Record<string, string> = {}, signal?: AbortSignal) {
    const res = await fetch(`${platform.url}${path}`, { headers, ...(signal ? { signal } : {}) })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toMatch(/text\/event-stream/)
    const decoder = new TextDecoder()
    let text = ''
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      text += decoder.decode(chunk, { stream: true })
      let end = text.indexOf('\n\n')
      while (end >= 0) {
        const block = text.slice(0, end)
        text = text.slice(end + 2)
        const event: Record<string, string> = {}
        for (const line of block.split('\n')) {
          const colon = line.indexOf(':')
          if (colon > 0) event[line.slice(0, colon)] = line.slice(colon + 1).trim()
        }
        if (event.event) yield event
        end = text.indexOf('\n\n')
      }
    }
  }

  test('streams changes as Server-Sent Events, and resumes after a reconnect without a gap', async () => {
    const s = await site(1, 3)
    const abort = new AbortController()
    const events = sse(`/api/v1/lots/${s.lot}/feed`, {}, abort.signal)
    expect((await events.next()).value?.event).toBe('hello')
    const snapshot = (await events.next()).value
    expect(snapshot?.event).toBe('availability')
    expect(JSON.parse(snapshot?.data ?? '{}')).toMatchObject({ total: 3, unknown: 3 })
    // Nothing to replay on a fresh connection: caught up at the snapshot's position.
    const fresh = (await events.next()).value
    expect(fresh?.event).toBe('caught_up')
    expect(JSON.parse(fresh?.data ?? '{}')).toEqual({ type: 'caught_up', id: snapshot?.id })

    const [d0, d1, d2] = s.devices as [string, string, string]
    await publish(d0, reading(d0, 1, true))
    const first = (await events.next()).value
    expect(first?.event).toBe('change')
    expect(JSON.parse(first?.data ?? '{}').change).toMatchObject({
      space: s.spaces[0]?.spaceId,
      sensed_to: 'occupied',
    })
    abort.abort()

    // Changes while disconnected are replayed after Last-Event-ID, then the feed goes live.
    await publish(d1, reading(d1, 1, false))
    await publish(d2, reading(d2, 1, true))
    await eventually(
      () => availability('lots', s.lot),
      (a) => a.unknown === 0,
    )
    const again = new AbortController()
    const resumed = sse(`/api/v1/lots/${s.lot}/feed`, { 'Last-Event-ID': first?.id ?? '' }, again.signal)
    expect((await resumed.next()).value?.event).toBe('hello')
    const replayed = [(await resumed.next()).value, (await resumed.next()).value]
    expect(replayed.map((e) => JSON.parse(e?.data ?? '{}').change.space)).toEqual([
      s.spaces[1]?.spaceId,
      s.spaces[2]?.spaceId,
    ])
    // Right after the replay, before any live change: caught up, at the last replayed id.
    const caughtUp = (await resumed.next()).value
    expect(caughtUp?.event).toBe('caught_up')
    expect(caughtUp?.id).toBe(replayed[1]?.id)
    expect(JSON.parse(caughtUp?.data ?? '{}')).toEqual({ type: 'caught_up', id: replayed[1]?.id })
    await publish(d0, reading(d0, 2, false))
    const live = (await resumed.next()).value
    expect(live?.event).toBe('change')
    expect(JSON.parse(live?.data ?? '{}').change).toMatchObject({
      space: s.spaces[0]?.spaceId,
      sensed_to: 'free',
    })
    again.abort()
  })

  test('gives a first listener of a fresh platform the snapshot and then changes, no reset', async () => {
    const fresh = await startTestPlatform({ OCCUPANCY_DWELL_MS: '0' })
    try {
      const lot = randomUUID()
      const space = { spaceId: randomUUID(), lotId: lot, levelId: randomUUID(), zoneId: randomUUID() }
      await fresh.occupancy.index.upsertSpaces([{ ...space, number: 'A-1', type: 'STANDARD', overlay: null }])
      await fresh.occupancy.index.bindDevice('fresh-1', space.spaceId)
      const seen: string[] = []
      const stop = await fresh.services.occupancy.follow(lot, null, (message) => seen.push(message.type))
      await fresh.occupancy.state.apply(['fresh-1', 'b', '1', String(Date.now()), '1', '', '', ''], 0)
      await eventually(
        async () => seen,
        (types) => types.length >= 2,
      )
      stop()
      expect(seen).toEqual(['availability', 'change'])
    } finally {
      await fresh.stop()
    }
  })

  test('streams the same feed over WebSocket, resumable with ?since=', async () => {
    const s = await site(1, 2)
    const wsUrl = `${platform.url.replace('http', 'ws')}/api/v1/lots/${s.lot}/live`
    const open = async (url: string) => {
      const socket = new WebSocket(url)
      const messages: { type: string; id: string; change?: { space: string } }[] = []
      socket.on('message', (data) => messages.push(JSON.parse(String(data))))
      await new Promise((resolve, reject) => {
        socket.once('open', resolve)
        socket.once('error', reject)
      })
      return { socket, messages }
    }
    const first = await open(wsUrl)
    await eventually(
      async () => first.messages,
      (m) => m.length >= 2,
    )
    expect(first.messages[0]?.type).toBe('availability')
    expect(first.messages[1]).toEqual({ type: 'caught_up', id: first.messages[0]?.id })
    const [d0, d1] = s.devices as [string, string]
    await publish(d0, reading(d0, 1, true))
    const got = await eventually(
      async () => first.messages,
      (m) => m.length >= 3,
    )
    expect(got[2]).toMatchObject({ type: 'change', change: { space: s.spaces[0]?.spaceId } })
    first.socket.close()

    await publish(d1, reading(d1, 1, true))
    await eventually(
      () => availability('lots', s.lot),
      (a) => a.occupied === 2,
    )
    const second = await open(`${wsUrl}?since=${got[2]?.id}`)
    const replay = await eventually(
      async () => second.messages,
      (m) => m.length >= 2,
    )
    expect(replay[0]).toMatchObject({ type: 'change', change: { space: s.spaces[1]?.spaceId } })
    expect(replay[1]).toEqual({ type: 'caught_up', id: replay[0]?.id })
    second.socket.close()

    const refused = new WebSocket(`${platform.url.replace('http', 'ws')}/api/v1/lots/${randomUUID()}/live`)
    const status = await new Promise<number>((resolve) =>
      refused.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0)),
    )
    expect(status).toBe(404)
  })
})
