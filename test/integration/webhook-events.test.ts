import mqtt from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { components, ParkingClient } from '../../src/client/index.ts'
import type { EventSink } from '../../src/modules/webhooks/webhooks.contract.ts'
import { type Account, createAccount, signInAdmin, testAdmin } from '../harness/accounts.ts'
import { clientFor, expectData } from '../harness/client.ts'
import { createHourlyRate, createLot, enterVehicle, type TestLot, uniquePlate } from '../harness/facility.ts'
import { startTestPlatform, type TestPlatform } from '../harness/platform.ts'
import {
  type ReceivedWebhook,
  signedBy,
  startWebhookReceiver,
  type WebhookEndpoint,
  type WebhookReceiver,
} from '../harness/webhook-receiver.ts'

// What happens in the platform reaches a subscriber as signed webhook deliveries: sensor messages
// over the real broker become space.state_changed and threshold crossings, a silent sensor
// sensor.stale, a walk-in's entry, payment and exit session and payment events, a booking and its
// cancel reservation events. A local receiver on 127.0.0.1 (test/harness/webhook-receiver.ts)
// records every delivery, and each is checked with the receivers' verifier (src/client/webhooks.ts). Calls to the
// platform's API go through the typed client (src/client).

async function until<T>(read: () => T | Promise<T>, ok: (value: T) => boolean, what: string, ms = 20_000) {
  const deadline = Date.now() + ms
  for (;;) {
    const value = await read()
    if (ok(value)) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(value)}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

/** Deliveries to one subscription's endpoint, of one type, matching `data`. */
const deliveriesOf = (endpoint: WebhookEndpoint, type: string, data: Record<string, unknown> = {}) =>
  endpoint
    .received()
    .filter(
      (d) =>
        d.event.type === type && Object.entries(data).every(([key, value]) => d.event.data?.[key] === value),
    )

/** The deliveries of one event type. */
const ofType = (deliveries: readonly ReceivedWebhook[], type: string) =>
  deliveries.filter((d) => d.event.type === type)

/** Every delivered event came once, under its own id, and signed with the subscription's secret. */
function expectOnceEach(deliveries: readonly ReceivedWebhook[], secret: string) {
  const ids = deliveries.map((d) => d.id)
  expect(new Set(ids).size, `duplicate deliveries: ${ids.join(', ')}`).toBe(ids.length)
  for (const d of deliveries) {
    expect(d.event.id).toBe(d.id)
    expect(signedBy(secret, d)).toBe(true)
  }
}

type EventTypes = components['schemas']['WebhookSubscriptionCreate']['event_types']

const quickWebhooks = {
  WEBHOOK_POLL_MS: '20',
  WEBHOOK_RETRY_BASE_MS: '50',
  WEBHOOK_RETRY_MAX_MS: '500',
  WEBHOOK_REFRESH_MS: '500',
}

type Sensed = { receiver: WebhookReceiver; platform: TestPlatform; broker: mqtt.MqttClient }

/** A webhook receiver, and a platform taking sensor messages (no dwell) with quick webhook retries, and its broker. */
async function startSensed(settings: Record<string, string> = {}): Promise<Sensed> {
  const receiver = await startWebhookReceiver()
  let platform: TestPlatform | undefined
  try {
    platform = await startTestPlatform({
      ...testAdmin,
      ...quickWebhooks,
      INGEST_ENABLED: 'true',
      OCCUPANCY_DWELL_MS: '0',
      ...settings,
    })
    const broker = await mqtt.connectAsync(platform.urls.mqtt, { protocolVersion: 5 })
    return { receiver, platform, broker }
  } catch (error) {
    await platform?.stop()
    await receiver.close()
    throw error
  }
}

/** Stops what startSensed started (what of it there is). */
async function stopSensed({ receiver, platform, broker }: Partial<Sensed>) {
  await broker?.endAsync()
  await platform?.stop()
  await receiver?.close()
}

const reading = (device: string, seq: number, occupied: boolean) => ({
  device_id: device,
  boot_id: 'boot-1',
  seq,
  measured_at: Date.now(),
  occupied,
  battery: 90,
  signal: -70,
})

async function subscribe(
  platform: TestPlatform,
  admin: Account,
  endpoint: WebhookEndpoint,
  body: Omit<components['schemas']['WebhookSubscriptionCreate'], 'url'>,
): Promise<{ id: string; secret: string }> {
  const created = await expectData(
    clientFor(platform, admin).POST('/api/v1/webhooks/subscriptions', {
      body: { url: endpoint.url, ...body },
    }),
    201,
  )
  expect(created.secret).toEqual(expect.any(String))
  return { id: created.id, secret: created.secret }
}

/** The lot's spaces, each bound to a sensor of its own in the hot state (the sensors API has tests of its own). */
async function sensedLot(platform: TestPlatform, admin: Account, spaces: number) {
  const lot = await createLot(platform, admin, { spaces: { STANDARD: spaces } })
  const listed = await expectData(
    clientFor(platform, admin).GET('/api/v1/spaces', {
      params: { query: { zone_id: lot.zoneId, limit: 100 } },
    }),
  )
  const spaceIds = listed.data.sort((a, b) => a.number.localeCompare(b.number)).map((s) => s.id)
  const devices = spaceIds.map((_, i) => `wh-${lot.lotId.slice(-8)}-${i}`)
  for (const [i, spaceId] of spaceIds.entries())
    await platform.occupancy.index.bindDevice(devices[i] ?? '', spaceId)
  return { lot, spaceIds, devices }
}

describe('webhook events from the platform', () => {
  let platform: TestPlatform
  let broker: mqtt.MqttClient
  let receiver: WebhookReceiver
  let admin: Account
  let operator: Account
  /** The typed client as the admin, as the operator, and as nobody. */
  let asAdmin: ParkingClient
  let asOperator: ParkingClient
  let anyone: ParkingClient
  const publish = async (device: string, seq: number, occupied: boolean) =>
    await broker.publishAsync(
      `parking/sensors/${device}/state`,
      JSON.stringify(reading(device, seq, occupied)),
      {
        qos: 1,
      },
    )
  const freeSpaces = async (lot: TestLot) =>
    (await expectData(anyone.GET('/api/v1/lots/{id}/availability', { params: { path: { id: lot.lotId } } })))
      .available
  /** A lot of two spaces, and a subscription to its events of `types` at an endpoint of its own. */
  const subscribedLot = async (event_types: EventTypes) => {
    const lot = await createLot(platform, admin, { spaces: { STANDARD: 2 } })
    const endpoint = receiver.endpoint()
    const { secret } = await subscribe(platform, admin, endpoint, { event_types, lot_id: lot.lotId })
    return { lot, endpoint, secret }
  }
  /** A booking by the operator, from `start` to `end` (epoch ms). */
  const book = async (lot: TestLot, start: number, end: number) =>
    await expectData(
      asOperator.POST('/api/v1/reservations', {
        body: {
          lot_id: lot.lotId,
          license_plate: uniquePlate(),
          start_time: new Date(start).toISOString(),
          end_time: new Date(end).toISOString(),
        },
      }),
      201,
    )
  /** Waits for at least `count` deliveries to `endpoint`, and returns them all. */
  const receivedAtLeast = async (endpoint: WebhookEndpoint, count: number, what: string) =>
    await until(
      () => endpoint.received(),
      (found) => found.length >= count,
      what,
    )

  beforeAll(async () => {
    ;({ receiver, platform, broker } = await startSensed())
    admin = await signInAdmin(platform)
    operator = await createAccount(platform, admin, 'operator')
    asAdmin = clientFor(platform, admin)
    asOperator = clientFor(platform, operator)
    anyone = clientFor(platform)
  }, 120_000)
  afterAll(() => stopSensed({ receiver, platform, broker }))

  it('sensor messages become space.state_changed and threshold crossings, each once though a batch ran twice', async () => {
    const { lot, spaceIds, devices } = await sensedLot(platform, admin, 3)
    const [d1, d2] = devices as [string, string, string]
    const [s1, s2] = spaceIds as [string, string]
    // Every space free, written, before anyone subscribes.
    for (const d of devices) await publish(d, 1, false)
    await until(
      () => freeSpaces(lot),
      (free) => free === 3,
      'three free spaces',
    )
    await until(
      () => platform.occupancy.persister.backlog(),
      (n) => n === 0,
      'the persister to catch up',
    )

    const occupancy = receiver.endpoint()
    const { secret } = await subscribe(platform, admin, occupancy, {
      event_types: ['space.state_changed', 'lot.availability_threshold_crossed'],
      lot_id: lot.lotId,
      threshold_free_spaces: 2,
    })

    // The first batch after the subscription fails once after its events were recorded: it is
    // not acknowledged, the persister writes it again and tells its events again.
    const sink = platform.services.webhooks.sink as EventSink
    const realAvailability = sink.availability
    let availabilityCalls = 0
    sink.availability = async (lots) => {
      availabilityCalls++
      if (availabilityCalls === 1) throw new Error('lost the connection after publishing')
      return await realAvailability.call(sink, lots)
    }
    try {
      // 3 -> 2 free: the first observation for the subscription (not below 2), no crossing.
      await publish(d1, 2, true)
      const [occupied] = await until(
        () => deliveriesOf(occupancy, 'space.state_changed', { space_id: s1 }),
        (found) => found.length > 0,
        'the first space change',
      )
      await until(
        () => availabilityCalls,
        (n) => n >= 2,
        'the batch to run again',
      )
      expect(occupied?.event).toMatchObject({
        type: 'space.state_changed',
        lot_id: lot.lotId,
        data: {
          space_id: s1,
          lot_id: lot.lotId,
          level_id: lot.levelId,
          zone_id: lot.zoneId,
          number: expect.any(String),
          type: 'STANDARD',
          kind: 'sensor',
          status_from: 'free',
          status_to: 'occupied',
          sensed_from: 'free',
          sensed_to: 'occupied',
          overlay: null,
          device_id: d1,
          session_id: null,
          changed_at: expect.any(String),
        },
      })
    } finally {
      sink.availability = realAvailability
    }

    // 2 -> 1 free: below the threshold; 1 -> 2: back at it.
    await publish(d2, 2, true)
    await until(
      () => deliveriesOf(occupancy, 'lot.availability_threshold_crossed'),
      (found) => found.length === 1,
      'the crossing below',
    )
    await publish(d2, 3, false)
    const crossings = await until(
      () => deliveriesOf(occupancy, 'lot.availability_threshold_crossed'),
      (found) => found.length === 2,
      'the crossing back above',
    )
    expect(crossings.map((d) => d.event.data)).toEqual([
      expect.objectContaining({ lot_id: lot.lotId, threshold: 2, direction: 'below', free: 1, total: 3 }),
      expect.objectContaining({ lot_id: lot.lotId, threshold: 2, direction: 'above', free: 2, total: 3 }),
    ])
    const changes = await until(
      () => deliveriesOf(occupancy, 'space.state_changed'),
      (found) => found.length >= 3,
      'three space changes',
    )
    // Deliveries may overtake each other: in the stream's order.
    const streamOrder = (d: ReceivedWebhook) =>
      String(d.event.data.change_id).split('-').map(Number) as [number, number]
    const sorted = [...changes].sort((a, b) => {
      const [am, as] = streamOrder(a)
      const [bm, bs] = streamOrder(b)
      return am - bm || as - bs
    })
    expect(sorted.map((d) => [d.event.data.space_id, d.event.data.status_to])).toEqual([
      [s1, 'occupied'],
      [s2, 'occupied'],
      [s2, 'free'],
    ])
    expectOnceEach(occupancy.received(), secret)
  })

  it('a walk-in entry, its payment, exit and a refund become session.started, payment.succeeded, session.closed and payment.refunded', async () => {
    const { lot, endpoint, secret } = await subscribedLot([
      'session.started',
      'session.closed',
      'payment.succeeded',
      'payment.refunded',
    ])
    await createHourlyRate(platform, admin, lot.lotId, 500)
    const plate = uniquePlate()
    const entry = await enterVehicle(platform, operator, { license_plate: plate, lot_id: lot.lotId })
    const sessionId = entry.session.id as string
    const payment = await expectData(
      asOperator.POST('/api/v1/payments', {
        params: { header: { 'idempotency-key': `webhook-${sessionId}` } },
        body: { session_id: sessionId, payment_method: 'cash', amount: 500, tendered: 500 },
      }),
      201,
    )
    await expectData(
      asOperator.POST('/api/v1/sessions/exit', { body: { ticket_number: entry.ticket_number } }),
    )
    const refund = await expectData(
      asAdmin.POST('/api/v1/payments/{id}/refunds', {
        params: { path: { id: payment.id } },
        body: { amount: 100, reason: 'goodwill' },
      }),
      201,
    )

    const delivered = await receivedAtLeast(endpoint, 4, 'the session and payment events')
    const byType = (type: string) => ofType(delivered, type)
    expect(byType('session.started')).toHaveLength(1)
    expect(byType('session.started')[0]?.event).toMatchObject({
      lot_id: lot.lotId,
      data: {
        session_id: sessionId,
        ticket_number: entry.ticket_number,
        lot_id: lot.lotId,
        license_plate: plate,
        status: 'active',
        entry_at: expect.any(String),
      },
    })
    expect(byType('payment.succeeded')).toHaveLength(1)
    expect(byType('payment.succeeded')[0]?.event.data).toMatchObject({
      payment_id: payment.id,
      session_id: sessionId,
      lot_id: lot.lotId,
      method: 'cash',
      amount: 500,
      currency: lot.currency,
      settled_at: expect.any(String),
    })
    expect(byType('session.closed')).toHaveLength(1)
    const closed = byType('session.closed')[0]?.event.data
    expect(closed).toMatchObject({
      session_id: sessionId,
      status: 'closed',
      fee: { amount: 500, currency: lot.currency },
      duration_minutes: expect.any(Number),
    })
    expect(Date.parse(closed.exit_at)).toBeGreaterThanOrEqual(Date.parse(closed.entry_at))
    expect(byType('payment.refunded')).toHaveLength(1)
    expect(byType('payment.refunded')[0]?.event.data).toMatchObject({
      payment_id: payment.id,
      session_id: sessionId,
      refund_id: refund.id,
      amount: 100,
      currency: lot.currency,
      refunded_at: expect.any(String),
    })
    expectOnceEach(delivered, secret)
  })

  it('a booking and its cancel become reservation.created and reservation.cancelled', async () => {
    const { lot, endpoint, secret } = await subscribedLot(['reservation.created', 'reservation.cancelled'])
    const hour = 3_600_000
    const start = Math.ceil(Date.now() / hour) * hour + 24 * hour
    const booked = await book(lot, start, start + 2 * hour)
    const id = booked.reservation.id
    await expectData(asOperator.DELETE('/api/v1/reservations/{id}', { params: { path: { id } } }))

    const delivered = await receivedAtLeast(endpoint, 2, 'the reservation events')
    const [created, cancelled] = [
      ofType(delivered, 'reservation.created'),
      ofType(delivered, 'reservation.cancelled'),
    ]
    expect(created).toHaveLength(1)
    expect(created[0]?.event).toMatchObject({
      lot_id: lot.lotId,
      data: {
        reservation_id: id,
        status: 'confirmed',
        lot_id: lot.lotId,
        space_id: booked.reservation.space_id,
        start_time: new Date(start).toISOString(),
        end_time: new Date(start + 2 * hour).toISOString(),
        payment_status: 'not_required',
      },
    })
    expect(cancelled).toHaveLength(1)
    expect(cancelled[0]?.event.data).toMatchObject({
      reservation_id: id,
      status: 'cancelled',
      cancelled_at: expect.any(String),
      refund: null,
    })
    // The confirmation number checks a car in at the gate: it never leaves in an event.
    for (const d of delivered) expect(d.text).not.toContain(booked.confirmation_number)
    expectOnceEach(delivered, secret)
  })

  it('a check-in becomes reservation.checked_in with its session, and session.started with the reservation', async () => {
    const { lot, endpoint, secret } = await subscribedLot(['reservation.checked_in', 'session.started'])
    // The next 15-minute slot: check-in opens 30 minutes before its start, so it is open now.
    const slot = 15 * 60_000
    const start = Math.ceil(Date.now() / slot) * slot
    const booked = await book(lot, start, start + 4 * slot)
    const id = booked.reservation.id
    const checkedIn = await expectData(
      asOperator.POST('/api/v1/reservations/{id}/check-in', { params: { path: { id } } }),
      201,
    )
    const sessionId = checkedIn.session.id

    const delivered = await receivedAtLeast(endpoint, 2, 'the check-in events')
    const [reservation, session] = [
      ofType(delivered, 'reservation.checked_in'),
      ofType(delivered, 'session.started'),
    ]
    expect(reservation).toHaveLength(1)
    expect(reservation[0]?.event.data).toMatchObject({
      reservation_id: id,
      status: 'checked_in',
      session_id: sessionId,
      checked_in_at: expect.any(String),
    })
    expect(session).toHaveLength(1)
    expect(session[0]?.event.data).toMatchObject({ session_id: sessionId, reservation_id: id })
    expectOnceEach(delivered, secret)
  })
})

describe('sensor.stale', () => {
  let platform: TestPlatform
  let broker: mqtt.MqttClient
  let receiver: WebhookReceiver

  beforeAll(async () => {
    ;({ receiver, platform, broker } = await startSensed({ SENSOR_STALE_AFTER_SECONDS: '5' }))
  }, 120_000)
  afterAll(() => stopSensed({ receiver, platform, broker }))

  it('a sensor silent for longer than the staleness window becomes one sensor.stale', async () => {
    const admin = await signInAdmin(platform)
    const { lot, spaceIds, devices } = await sensedLot(platform, admin, 1)
    const [device] = devices as [string]
    const [space] = spaceIds as [string]
    const sensors = receiver.endpoint()
    const { secret } = await subscribe(platform, admin, sensors, {
      event_types: ['sensor.stale'],
      lot_id: lot.lotId,
    })
    await broker.publishAsync(`parking/sensors/${device}/state`, JSON.stringify(reading(device, 1, true)), {
      qos: 1,
    })
    const [stale] = await until(
      () => deliveriesOf(sensors, 'sensor.stale'),
      (found) => found.length > 0,
      'sensor.stale',
      30_000,
    )
    expect(stale?.event).toMatchObject({
      type: 'sensor.stale',
      lot_id: lot.lotId,
      data: {
        device_id: device,
        space_id: space,
        lot_id: lot.lotId,
        stale_after_seconds: 5,
        status_from: 'occupied',
        status_to: 'unknown',
        last_seen_at: expect.any(String),
        detected_at: expect.any(String),
      },
    })
    const silentMs = Date.parse(stale?.event.data.detected_at) - Date.parse(stale?.event.data.last_seen_at)
    // The silent-sensor index may lag the last message by a tenth of the window.
    expect(silentMs).toBeGreaterThanOrEqual(4_500)
    // The space is unknown now; nothing more to say until the sensor speaks again.
    await until(
      () => platform.occupancy.persister.backlog(),
      (n) => n === 0,
      'the persister to catch up',
    )
    expectOnceEach(sensors.received(), secret)
    expect(deliveriesOf(sensors, 'sensor.stale')).toHaveLength(1)
  })
})
