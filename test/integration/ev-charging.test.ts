import { randomBytes, randomUUID } from 'node:crypto'
import mqtt from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { costOf, energyAtStop, energyUntil, sessionCharges } from '../../src/modules/ev/ev.energy.ts'
import type { ChargeRecord, ChargeStopRecord } from '../../src/modules/ev/ev.model.ts'
import { connectDatabase, type Database } from '../../src/shared/mongo.ts'
import { type Account, createAccount, signInAdmin, testAdmin } from '../harness/accounts.ts'
import { createHourlyRate, createLot, type TestLot, uniquePlate } from '../harness/facility.ts'
import { expectJson, type Json, json, requester } from '../harness/http.ts'
import { startTestPlatform, type TestPlatform } from '../harness/platform.ts'

// EV charging through the HTTP API on the real services: seed 004's journey 3 with a meter that
// reports over MQTT with its own device credentials, estimated energy and idle fees, a busy
// station, an exit that stops a running charge, list filters, and the role and ownership matrix.

let platform: TestPlatform
let db: Database
let admin: Account
let operator: Account
let customer: Account
let otherCustomer: Account
const devices: mqtt.MqttClient[] = []
const run = randomBytes(3).toString('hex')
let counter = 0

beforeAll(async () => {
  platform = await startTestPlatform({
    ...testAdmin,
    ACCOUNT_APPROVAL_REQUIRED: 'false',
    INGEST_ENABLED: 'true',
    OCCUPANCY_DWELL_MS: '0',
  })
  db = await connectDatabase(platform.urls.mongodb)
  admin = await signInAdmin(platform)
  operator = await createAccount(platform, admin, 'operator')
  customer = await createAccount(platform, admin, 'customer')
  otherCustomer = await createAccount(platform, admin, 'customer')
})
afterAll(async () => {
  await Promise.all(devices.map((client) => client.endAsync(true).catch(() => {})))
  await db?.close()
  await platform?.stop()
})

const send = requester(() => platform)

async function problem(res: Response | Promise<Response>, status: number, reason?: string) {
  const body = await expectJson(res, status)
  if (reason) expect(body.reason).toBe(reason)
  return body
}

async function eventually<T>(read: () => Promise<T>, done: (value: T) => boolean, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const value = await read()
    if (done(value) || Date.now() > deadline) return value
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

type Site = TestLot & { evSpaces: string[]; standardSpaces: string[] }

/** A lot with EV and standard spaces and an hourly rate of 2.00 EUR. */
async function site(spaces: { EV: number; STANDARD?: number } = { EV: 1, STANDARD: 1 }): Promise<Site> {
  const lot = await createLot(platform, admin, { spaces, currency: 'EUR' })
  const list = await expectJson(send('GET', `/api/v1/spaces?lot_id=${lot.lotId}&limit=100`, admin))
  const ofType = (type: string) =>
    (list.data as { id: string; type: string; number: string }[])
      .filter((s) => s.type === type)
      .sort((a, b) => a.number.localeCompare(b.number))
      .map((s) => s.id)
  await createHourlyRate(platform, admin, lot.lotId, 200)
  return { ...lot, evSpaces: ofType('EV'), standardSpaces: ofType('STANDARD') }
}

async function station(spaceId: string, extra: Record<string, unknown> = {}): Promise<Json> {
  return await expectJson(
    send('POST', '/api/v1/ev-stations', admin, {
      space_id: spaceId,
      charger_type: 'level2',
      power_kw: 7.2,
      connector_type: 'J1772',
      price_per_kwh: 25,
      ...extra,
    }),
    201,
  )
}

/** A customer's registered EV, entered by the operator: the session and its space. */
async function parkEv(owner: Account, lot: Site, entry: Record<string, unknown> = {}) {
  const plate = uniquePlate()
  const vehicle = await expectJson(
    send('POST', '/api/v1/vehicles', owner, {
      license_plate: plate,
      vehicle_type_id: 'standard',
      is_ev: true,
    }),
    201,
  )
  const entered = await expectJson(
    send('POST', '/api/v1/sessions/entry', operator, { license_plate: plate, lot_id: lot.lotId, ...entry }),
    201,
  )
  return {
    vehicle,
    session: entered.session,
    ticket: entered.ticket_number as string,
    space: entered.space_assigned,
  }
}

const start = (account: Account, body: Record<string, unknown>) =>
  send('POST', '/api/v1/ev-charging/start', account, body)

async function payAndExit(sessionId: string, ticket: string) {
  const fee = await expectJson(send('GET', `/api/v1/sessions/${sessionId}/calculate-fee`, operator))
  if (fee.amount_due > 0) {
    await expectJson(
      send(
        'POST',
        '/api/v1/payments',
        operator,
        { session_id: sessionId, payment_method: 'cash', amount: fee.amount_due },
        { 'Idempotency-Key': `ev-${sessionId}` },
      ),
      201,
    )
  }
  return await expectJson(send('POST', '/api/v1/sessions/exit', operator, { ticket_number: ticket }))
}

/**
 * The charger: a device of kind `charger` registered through /devices and bound to the station's
 * space (its heartbeats carry the meter and leave the space's state alone), with its own broker
 * credentials.
 */
async function registerMeter(spaceId: string) {
  const id = `t${run}-meter-${++counter}`
  const device = await expectJson(
    send('POST', '/api/v1/devices', admin, { id, kind: 'charger', space_id: spaceId }),
    201,
  )
  const url = new URL(platform.urls.mqtt)
  url.username = ''
  url.password = ''
  const client = await mqtt.connectAsync(url.toString(), {
    protocolVersion: 5,
    username: device.credentials.username,
    password: device.credentials.password,
    clientId: device.credentials.client_id,
    reconnectPeriod: 0,
    connectTimeout: 3_000,
  })
  devices.push(client)
  let seq = 0
  /** Publishes the meter's cumulative reading as the charger would, and waits until it is kept. */
  const report = async (energyWh: number) => {
    seq += 1
    const body = {
      device_id: id,
      boot_id: 'boot-1',
      seq,
      measured_at: new Date().toISOString(),
      energy_wh: energyWh,
    }
    await client.publishAsync(device.credentials.topics.heartbeat, JSON.stringify(body), { qos: 1 })
    const [health] = await eventually(
      () => platform.occupancy.index.deviceHealth([id]),
      ([h]) => h?.meterWh === energyWh,
    )
    expect(health?.meterWh).toBe(energyWh)
  }
  return { id, report }
}

const minutesAgo = (minutes: number) => new Date(Date.now() - minutes * 60_000)
const charges = () => db.collection('ev_charges')
const stops = () => db.collection('ev_charge_stops')

describe('seed 004 journey 3: EV charging', () => {
  it('enters an EV onto the EV space, charges it on a metered station, bills parking + charging, pays, exits', async () => {
    const lot = await site()
    const evSpace = lot.evSpaces[0] as string
    const meter = await registerMeter(evSpace)
    const created = await station(evSpace, { meter_device_id: meter.id })
    expect(created).toMatchObject({
      space_id: evSpace,
      lot_id: lot.lotId,
      charger_type: 'LEVEL2',
      connector_type: 'J1772',
      power_kw: 7.2,
      price_per_kwh: 25,
      currency: 'EUR',
      idle_fee_per_minute: 0,
      idle_grace_minutes: 10,
      service_status: 'available',
      status: 'available',
      meter_device_id: meter.id,
    })
    await meter.report(100_000)

    // 1. Enter: the EV gets the EV space, and the station shows it occupied.
    const parked = await parkEv(customer, lot)
    expect(parked.space).toMatchObject({ id: evSpace, type: 'EV' })
    expect(await expectJson(send('GET', `/api/v1/ev-stations/${created.id}`, customer))).toMatchObject({
      status: 'occupied',
    })

    // 2. Start charging, as the driver.
    const charge = await expectJson(
      start(customer, {
        station_id: created.id,
        vehicle_id: parked.vehicle.id,
        parking_session_id: parked.session.id,
        max_power_requested: 7.2,
      }),
      201,
    )
    expect(charge).toMatchObject({
      station_id: created.id,
      parking_session_id: parked.session.id,
      vehicle_id: parked.vehicle.id,
      user_id: customer.id,
      status: 'charging',
      energy_source: 'meter',
      meter_start_wh: 100_000,
      energy_kwh: 0,
      cost: 0,
      currency: 'EUR',
    })
    const live = await expectJson(send('GET', `/api/v1/ev-stations/${created.id}`, customer))
    expect(live.status).toBe('charging')
    expect(live.space_status).toEqual(expect.any(String))

    // 3. Monitor: the meter reports 12.5 kWh more.
    await meter.report(112_500)
    expect(await expectJson(send('GET', `/api/v1/ev-charging/${charge.id}`, customer))).toMatchObject({
      status: 'charging',
      energy_kwh: 12.5,
      cost: 313,
    })

    // 4. Stop: seed 004's answer, and the same again.
    const stopped = await expectJson(send('POST', `/api/v1/ev-charging/${charge.id}/stop`, customer))
    expect(stopped).toMatchObject({
      session: { id: charge.id, status: 'completed', energy_kwh: 12.5, cost: 313, stop_reason: 'stopped' },
      energy_used: 12.5,
      energy_source: 'meter',
      cost: 313,
      currency: 'EUR',
      duration_minutes: 0,
    })
    await meter.report(150_000)
    expect(await expectJson(send('POST', `/api/v1/ev-charging/${charge.id}/stop`, operator))).toEqual(stopped)
    expect(await expectJson(send('GET', `/api/v1/ev-charging/${charge.id}`, customer))).toEqual(
      stopped.session,
    )

    // 5. The fee: parking + charging, itemised; paid; the car leaves.
    const fee = await expectJson(send('GET', `/api/v1/sessions/${parked.session.id}/calculate-fee`, customer))
    expect(fee).toMatchObject({ currency: 'EUR', total: 513, amount_due: 513 })
    expect(fee.breakdown).toEqual([
      expect.objectContaining({ kind: 'parking', amount: 200 }),
      { kind: 'ev_charging', description: 'EV charging, 12.500 kWh @ 0.25 EUR/kWh', amount: 313 },
    ])
    const exited = await payAndExit(parked.session.id, parked.ticket)
    expect(exited).toMatchObject({ session: { status: 'closed', fee_total: 513 }, amount_paid: 513 })

    // 6. The station is free again.
    expect((await expectJson(send('GET', `/api/v1/ev-stations/${created.id}`, customer))).status).toBe(
      'available',
    )
  })

  it('estimates the energy without a meter (the station’s power x time, whatever the request) and bills idle minutes past the grace', async () => {
    const lot = await site()
    const created = await station(lot.evSpaces[0] as string, {
      power_kw: 3.6,
      idle_fee_per_minute: 50,
      idle_grace_minutes: 10,
    })
    const parked = await parkEv(customer, lot)
    const charge = await expectJson(
      start(customer, {
        station_id: created.id,
        parking_session_id: parked.session.id,
        // Nothing enforces a request at the charger: it must not set the price of the estimate.
        max_power_requested: 0.1,
      }),
      201,
    )
    expect(charge).toMatchObject({
      energy_source: 'estimated',
      power_kw: 3.6,
      max_power_requested: 0.1,
      meter_start_wh: null,
    })
    // An hour of charging at 3.6 kW.
    await charges().updateOne({ _id: charge.id } as object, { $set: { started_at: minutesAgo(60) } })

    // A running charge is priced up to now in the fee.
    const running = await expectJson(
      send('GET', `/api/v1/sessions/${parked.session.id}/calculate-fee`, customer),
    )
    expect(running.breakdown).toContainEqual({
      kind: 'ev_charging',
      description: expect.stringMatching(/^EV charging, 3\.60\d kWh \(estimated\) @ 0\.25 EUR\/kWh$/),
      amount: 90,
    })

    const stopped = await expectJson(send('POST', `/api/v1/ev-charging/${charge.id}/stop`, customer))
    expect(stopped).toMatchObject({ energy_source: 'estimated', cost: 90, duration_minutes: 60 })
    expect(stopped.energy_used).toBeCloseTo(3.6, 2)

    // The car stayed 25 minutes after the charge ended: 15 minutes past the 10 minutes' grace.
    await stops().updateOne({ _id: charge.id } as object, { $set: { stopped_at: minutesAgo(25) } })
    const fee = await expectJson(send('GET', `/api/v1/sessions/${parked.session.id}/calculate-fee`, customer))
    expect(fee.breakdown).toEqual([
      expect.objectContaining({ kind: 'parking', amount: 200 }),
      expect.objectContaining({ kind: 'ev_charging', amount: 90 }),
      {
        kind: 'ev_idle',
        description: 'EV idle fee, 15 min after the 10 min grace @ 0.50 EUR/min',
        amount: 750,
      },
    ])
    expect(fee).toMatchObject({ total: 200 + 90 + 750 })
  })
})

describe('starting a charge', () => {
  it('answers 409 station_busy for another vehicle, 409 already_charging for the same session, and starts once under concurrency', async () => {
    const lot = await site({ EV: 1, STANDARD: 1 })
    const created = await station(lot.evSpaces[0] as string)
    const first = await parkEv(customer, lot)
    const attempts = await Promise.all(
      Array.from({ length: 6 }, () =>
        start(operator, { station_id: created.id, parking_session_id: first.session.id }),
      ),
    )
    const statuses = attempts.map((r) => r.status).sort()
    expect(statuses).toEqual([201, 409, 409, 409, 409, 409])
    for (const res of attempts.filter((r) => r.status === 409))
      expect((await json(res)).reason).toBe('already_charging')

    // Another car (on the standard space) asking for the busy station.
    const second = await parkEv(otherCustomer, lot)
    expect(second.space.type).toBe('STANDARD')
    await problem(
      start(otherCustomer, { station_id: created.id, parking_session_id: second.session.id }),
      409,
      'station_busy',
    )
    const running = await expectJson(
      send('GET', `/api/v1/ev-charging/sessions?station_id=${created.id}&status=charging`, operator),
    )
    expect(running.data).toHaveLength(1)
  })

  it('refuses a session that is not on the station’s space (422 wrong_space) until an operator assigns the space', async () => {
    const lot = await site({ EV: 1, STANDARD: 2 })
    const created = await station(lot.evSpaces[0] as string)
    const parked = await parkEv(customer, lot, { space_type: 'STANDARD' })
    expect(parked.space.type).toBe('STANDARD')
    await problem(
      start(customer, { station_id: created.id, parking_session_id: parked.session.id }),
      422,
      'wrong_space',
    )
    await expectJson(
      send('POST', `/api/v1/sessions/${parked.session.id}/assign-space`, operator, {
        space_id: lot.evSpaces[0],
      }),
    )
    await expectJson(start(customer, { station_id: created.id, parking_session_id: parked.session.id }), 201)
  })

  it('refuses a station out of service (409), another vehicle id (422), and a closed session (422)', async () => {
    const lot = await site({ EV: 1, STANDARD: 1 })
    const evSpace = lot.evSpaces[0] as string
    const created = await station(evSpace)
    const input = {
      space_id: evSpace,
      charger_type: 'LEVEL2',
      connector_type: 'ccs2',
      power_kw: 11,
      price_per_kwh: 30,
    }
    const down = await expectJson(
      send('PUT', `/api/v1/ev-stations/${created.id}`, admin, { ...input, status: 'out_of_service' }),
    )
    expect(down).toMatchObject({
      status: 'out_of_service',
      service_status: 'out_of_service',
      connector_type: 'CCS2',
    })
    const parked = await parkEv(customer, lot)
    await problem(
      start(customer, { station_id: created.id, parking_session_id: parked.session.id }),
      409,
      'station_unavailable',
    )
    await expectJson(send('PUT', `/api/v1/ev-stations/${created.id}`, admin, input))
    await problem(
      start(customer, {
        station_id: created.id,
        parking_session_id: parked.session.id,
        vehicle_id: randomUUID(),
      }),
      422,
      'wrong_vehicle',
    )
    await payAndExit(parked.session.id, parked.ticket)
    await problem(
      start(customer, { station_id: created.id, parking_session_id: parked.session.id }),
      422,
      'session_not_active',
    )
  })
})

describe('the exit', () => {
  it('stops a running charge at the exit time and frees the station; the sweep finds nothing left, then repairs an exit it missed', async () => {
    const lot = await site()
    const created = await station(lot.evSpaces[0] as string)
    const parked = await parkEv(customer, lot)
    const charge = await expectJson(
      start(customer, { station_id: created.id, parking_session_id: parked.session.id }),
      201,
    )
    const exited = await payAndExit(parked.session.id, parked.ticket)
    const after = await expectJson(send('GET', `/api/v1/ev-charging/${charge.id}`, customer))
    expect(after).toMatchObject({
      status: 'completed',
      stop_reason: 'exit',
      stopped_at: exited.session.exit_time,
    })
    expect((await expectJson(send('GET', `/api/v1/ev-stations/${created.id}`, customer))).status).toBe(
      'available',
    )
    expect(await platform.scheduler.runNow('ev.charging-sweep')).toEqual({ finished: 0, stopped: 0 })

    // An exit whose listener did not get through: the charge still says charging and holds the station.
    await stops().deleteOne({ _id: charge.id } as object)
    await charges().updateOne({ _id: charge.id } as object, {
      $set: { status: 'charging', stopped_at: null, energy_wh: null, cost: null, stop_reason: null },
    })
    const now = new Date()
    await db
      .collection('ev_station_claims')
      .insertOne({ _id: created.id, charge_id: charge.id, created_at: now } as never)
    await db.collection('ev_session_claims').insertOne({
      _id: parked.session.id,
      charge_id: charge.id,
      created_at: now,
    } as never)
    expect((await expectJson(send('GET', `/api/v1/ev-stations/${created.id}`, customer))).status).toBe(
      'charging',
    )
    const sweeps = await Promise.all([
      platform.scheduler.runNow('ev.charging-sweep'),
      platform.scheduler.runNow('ev.charging-sweep'),
    ])
    // Which sweep reports the stop depends on the interleaving (the later one may find it done);
    // what counts is one stop fact and the charge completed at the exit time.
    expect(sweeps.map((s) => (s as { stopped: number }).stopped).reduce((a, b) => a + b)).toBeGreaterThan(0)
    expect(await stops().countDocuments({ _id: charge.id } as object)).toBe(1)
    expect(await platform.scheduler.runNow('ev.charging-sweep')).toEqual({ finished: 0, stopped: 0 })
    expect(await expectJson(send('GET', `/api/v1/ev-charging/${charge.id}`, customer))).toMatchObject({
      status: 'completed',
      stop_reason: 'exit',
      stopped_at: exited.session.exit_time,
    })
    expect(await stops().countDocuments({ _id: charge.id } as object)).toBe(1)
    expect((await expectJson(send('GET', `/api/v1/ev-stations/${created.id}`, customer))).status).toBe(
      'available',
    )
  })
  it('bills a charge that ran on after the payment: the exit answers 402 for the difference; stopped and paid, the car leaves', async () => {
    const lot = await site()
    const evSpace = lot.evSpaces[0] as string
    const meter = await registerMeter(evSpace)
    const created = await station(evSpace, { meter_device_id: meter.id })
    await meter.report(100_000)
    const parked = await parkEv(customer, lot)
    const charge = await expectJson(
      start(customer, { station_id: created.id, parking_session_id: parked.session.id }),
      201,
    )
    // Paid while charging: 2.00 parking + 12.5 kWh (3.13).
    await meter.report(112_500)
    const fee = await expectJson(send('GET', `/api/v1/sessions/${parked.session.id}/calculate-fee`, operator))
    expect(fee).toMatchObject({ total: 513, amount_due: 513 })
    await expectJson(
      send(
        'POST',
        '/api/v1/payments',
        operator,
        { session_id: parked.session.id, payment_method: 'cash', amount: 513 },
        { 'Idempotency-Key': `ev-run-on-${parked.session.id}` },
      ),
      201,
    )
    // The charge goes on: 20 kWh in all (5.00), 1.87 more than paid, owed at the gate.
    await meter.report(120_000)
    const refused = await problem(
      send('POST', '/api/v1/sessions/exit', operator, { ticket_number: parked.ticket }),
      402,
    )
    expect(refused).toMatchObject({ amount_due: 187, currency: 'EUR' })
    expect((await expectJson(send('GET', `/api/v1/ev-charging/${charge.id}`, customer))).status).toBe(
      'charging',
    )

    // Stopped, paid, gone: parking as paid plus the whole charge.
    const stopped = await expectJson(send('POST', `/api/v1/ev-charging/${charge.id}/stop`, customer))
    expect(stopped).toMatchObject({ energy_used: 20, cost: 500, energy_source: 'meter' })
    const exited = await payAndExit(parked.session.id, parked.ticket)
    expect(exited).toMatchObject({ session: { status: 'closed', fee_total: 700 }, amount_paid: 700 })
  })
})

describe('stations', () => {
  it('lists with live status, filtered by lot, charger type (any case) and available_only, paginated', async () => {
    const lot = await site({ EV: 3, STANDARD: 0 })
    const [a, b, c] = lot.evSpaces as [string, string, string]
    const level2 = await station(a)
    const fast = await station(b, { charger_type: 'DC_FAST', power_kw: 150, connector_type: 'CCS2' })
    const level1 = await station(c, { charger_type: 'Level1', power_kw: 1.9 })
    await expectJson(
      send('PUT', `/api/v1/ev-stations/${fast.id}`, admin, {
        space_id: b,
        charger_type: 'dc_fast',
        power_kw: 150,
        connector_type: 'CCS2',
        price_per_kwh: 45,
        status: 'out_of_service',
      }),
    )
    // A car on the LEVEL1 station's space, without a charge.
    const parked = await parkEv(customer, lot, { space_type: 'EV' })
    await expectJson(
      send('POST', `/api/v1/sessions/${parked.session.id}/assign-space`, operator, { space_id: c }),
    )

    const all = await expectJson(send('GET', `/api/v1/ev-stations?lot_id=${lot.lotId}`, customer))
    expect(Object.fromEntries(all.data.map((s: Json) => [s.id, s.status]))).toEqual({
      [level2.id]: 'available',
      [fast.id]: 'out_of_service',
      [level1.id]: 'occupied',
    })
    const available = await expectJson(
      send('GET', `/api/v1/ev-stations?lot_id=${lot.lotId}&available_only=true`, customer),
    )
    expect(available.data.map((s: Json) => s.id)).toEqual([level2.id])
    expect(available.next_cursor).toBeNull()
    const fastOnes = await expectJson(
      send('GET', `/api/v1/ev-stations?lot_id=${lot.lotId}&charger_type=dc_fast`, customer),
    )
    expect(fastOnes.data.map((s: Json) => [s.id, s.charger_type])).toEqual([[fast.id, 'DC_FAST']])
    const none = await expectJson(
      send(
        'GET',
        `/api/v1/ev-stations?lot_id=${lot.lotId}&charger_type=LEVEL2&available_only=false&limit=1`,
        customer,
      ),
    )
    expect(none.data.map((s: Json) => s.id)).toEqual([level2.id])

    const first = await expectJson(send('GET', `/api/v1/ev-stations?lot_id=${lot.lotId}&limit=2`, customer))
    expect(first.data).toHaveLength(2)
    const rest = await expectJson(
      send('GET', `/api/v1/ev-stations?lot_id=${lot.lotId}&limit=2&cursor=${first.next_cursor}`, customer),
    )
    expect(rest).toMatchObject({ data: [expect.objectContaining({ id: level1.id })], next_cursor: null })
    const availablePage = await expectJson(
      send('GET', `/api/v1/ev-stations?lot_id=${lot.lotId}&available_only=true&limit=1`, customer),
    )
    expect(availablePage.data.map((s: Json) => s.id)).toEqual([level2.id])
  })

  it('takes as its meter only a sensor or charger bound to its own space (422 meter_not_bound)', async () => {
    const lot = await site({ EV: 2, STANDARD: 0 })
    const [a, b] = lot.evSpaces as [string, string]
    const device = async (kind: string, spaceId: string | null) => {
      const id = `t${run}-dev-${++counter}`
      await expectJson(
        send('POST', '/api/v1/devices', admin, { id, kind, ...(spaceId ? { space_id: spaceId } : {}) }),
        201,
      )
      return id
    }
    const onA = await device('charger', a)
    const onB = await device('sensor', b)
    const unbound = await device('charger', null)
    const gateway = await device('gateway', null)
    const body = (spaceId: string, meter: string) => ({
      space_id: spaceId,
      charger_type: 'LEVEL2',
      connector_type: 'J1772',
      power_kw: 7.2,
      price_per_kwh: 25,
      meter_device_id: meter,
    })
    // Another bay's meter, an unbound one, a gateway, an unknown id: none bills this bay.
    for (const meter of [onB, unbound, gateway, `t${run}-nope`]) {
      await problem(send('POST', '/api/v1/ev-stations', admin, body(a, meter)), 422, 'meter_not_bound')
    }
    const created = await station(a, { meter_device_id: onA })
    expect(created.meter_device_id).toBe(onA)
    // On update: the meter of the bay it stays on, or of the bay it moves to.
    await problem(
      send('PUT', `/api/v1/ev-stations/${created.id}`, admin, body(a, onB)),
      422,
      'meter_not_bound',
    )
    await problem(
      send('PUT', `/api/v1/ev-stations/${created.id}`, admin, body(b, onA)),
      422,
      'meter_not_bound',
    )
    const moved = await expectJson(send('PUT', `/api/v1/ev-stations/${created.id}`, admin, body(b, onB)))
    expect(moved).toMatchObject({ space_id: b, meter_device_id: onB })
  })

  it('goes on an EV space only, one station per space, with a known meter', async () => {
    const lot = await site({ EV: 2, STANDARD: 1 })
    const body = (spaceId: string, extra = {}) => ({
      space_id: spaceId,
      charger_type: 'LEVEL2',
      connector_type: 'J1772',
      power_kw: 7.2,
      price_per_kwh: 25,
      ...extra,
    })
    await problem(
      send('POST', '/api/v1/ev-stations', admin, body(lot.standardSpaces[0] as string)),
      422,
      'not_ev_space',
    )
    await problem(send('POST', '/api/v1/ev-stations', admin, body(randomUUID())), 404)
    await problem(
      send(
        'POST',
        '/api/v1/ev-stations',
        admin,
        body(lot.evSpaces[0] as string, { meter_device_id: `t${run}-nope` }),
      ),
      422,
      'meter_not_bound',
    )
    const concurrent = await Promise.all(
      Array.from({ length: 5 }, () =>
        send('POST', '/api/v1/ev-stations', admin, body(lot.evSpaces[0] as string)),
      ),
    )
    expect(concurrent.map((r) => r.status).sort()).toEqual([201, 409, 409, 409, 409])
    for (const res of concurrent.filter((r) => r.status === 409))
      expect((await json(res)).reason).toBe('space_has_station')
    for (const bad of [
      { charger_type: 'level3' },
      { price_per_kwh: 0.25 },
      { power_kw: 0 },
      { idle_grace_minutes: -1 },
      { status: 'charging' },
      { extra: true },
    ]) {
      await problem(send('POST', '/api/v1/ev-stations', admin, body(lot.evSpaces[1] as string, bad)), 400)
    }
    // A move to the other EV space frees the first one for another station.
    const moved = concurrent.find((r) => r.status === 201) as Response
    const movedStation = await json(moved)
    await expectJson(
      send('PUT', `/api/v1/ev-stations/${movedStation.id}`, admin, body(lot.evSpaces[1] as string)),
    )
    await station(lot.evSpaces[0] as string)
  })
})

describe('charging sessions list', () => {
  it('shows customers their own, staff every one, filtered by station and status', async () => {
    const lot = await site({ EV: 2, STANDARD: 0 })
    const [a, b] = lot.evSpaces as [string, string]
    const sa = await station(a)
    const sb = await station(b)
    const mine = await parkEv(customer, lot, { space_type: 'EV' })
    const theirs = await parkEv(otherCustomer, lot, { space_type: 'EV' })
    const stationOf = (spaceId: string) => (spaceId === a ? sa.id : sb.id)
    const myCharge = await expectJson(
      start(customer, { station_id: stationOf(mine.space.id), parking_session_id: mine.session.id }),
      201,
    )
    const theirCharge = await expectJson(
      start(operator, { station_id: stationOf(theirs.space.id), parking_session_id: theirs.session.id }),
      201,
    )
    await expectJson(send('POST', `/api/v1/ev-charging/${theirCharge.id}/stop`, otherCustomer))

    const own = await expectJson(send('GET', '/api/v1/ev-charging/sessions?limit=100', customer))
    expect(own.data.map((c: Json) => c.id)).toContain(myCharge.id)
    expect(own.data.every((c: Json) => c.user_id === customer.id)).toBe(true)
    const completed = await expectJson(
      send(
        'GET',
        `/api/v1/ev-charging/sessions?station_id=${stationOf(theirs.space.id)}&status=completed`,
        admin,
      ),
    )
    expect(completed.data.map((c: Json) => c.id)).toEqual([theirCharge.id])
    const charging = await expectJson(
      send(
        'GET',
        `/api/v1/ev-charging/sessions?station_id=${stationOf(theirs.space.id)}&status=charging`,
        operator,
      ),
    )
    expect(charging.data).toEqual([])
  })
})

describe('access', () => {
  let stationId: string
  let chargeId: string
  let sessionId: string

  beforeAll(async () => {
    const lot = await site({ EV: 1, STANDARD: 0 })
    stationId = (await station(lot.evSpaces[0] as string)).id
    const parked = await parkEv(customer, lot)
    sessionId = parked.session.id
    chargeId = (
      await expectJson(start(customer, { station_id: stationId, parking_session_id: sessionId }), 201)
    ).id
  })

  const stationBody = () => ({
    space_id: randomUUID(),
    charger_type: 'LEVEL2',
    connector_type: 'J1772',
    power_kw: 7.2,
    price_per_kwh: 25,
  })

  const routes: [string, () => string, () => unknown, ('customer' | 'operator' | 'admin')[]][] = [
    ['GET', () => '/api/v1/ev-stations', () => undefined, ['customer', 'operator', 'admin']],
    ['GET', () => `/api/v1/ev-stations/${stationId}`, () => undefined, ['customer', 'operator', 'admin']],
    ['POST', () => '/api/v1/ev-stations', stationBody, ['admin']],
    ['PUT', () => `/api/v1/ev-stations/${stationId}`, stationBody, ['admin']],
    ['GET', () => '/api/v1/ev-charging/sessions', () => undefined, ['customer', 'operator', 'admin']],
    ['GET', () => `/api/v1/ev-charging/${chargeId}`, () => undefined, ['customer', 'operator', 'admin']],
    [
      'POST',
      () => '/api/v1/ev-charging/start',
      () => ({ station_id: randomUUID(), parking_session_id: randomUUID() }),
      ['customer', 'operator', 'admin'],
    ],
    [
      'POST',
      () => `/api/v1/ev-charging/${randomUUID()}/stop`,
      () => undefined,
      ['customer', 'operator', 'admin'],
    ],
  ]

  it.each(routes)(
    '%s %s: 401 without a token, 403 for roles not allowed',
    async (method, path, body, allowed) => {
      expect((await send(method, path(), undefined, body())).status).toBe(401)
      const accounts = { customer, operator, admin }
      for (const role of ['customer', 'operator', 'admin'] as const) {
        const res = await send(method, path(), accounts[role], body())
        if (allowed.includes(role)) expect(res.status).not.toBe(403)
        else expect(res.status).toBe(403)
      }
    },
  )

  it('answers 404 on every id route for an unknown id', async () => {
    const missing = randomUUID()
    await problem(send('GET', `/api/v1/ev-stations/${missing}`, customer), 404)
    await problem(send('PUT', `/api/v1/ev-stations/${missing}`, admin, stationBody()), 404)
    await problem(send('GET', `/api/v1/ev-charging/${missing}`, admin), 404)
    await problem(send('POST', `/api/v1/ev-charging/${missing}/stop`, admin), 404)
    await problem(start(admin, { station_id: missing, parking_session_id: sessionId }), 404)
    await problem(start(admin, { station_id: stationId, parking_session_id: missing }), 404)
  })

  it('hides another customer’s charge and parking session (404), and lets staff act on them', async () => {
    await problem(send('GET', `/api/v1/ev-charging/${chargeId}`, otherCustomer), 404)
    await problem(send('POST', `/api/v1/ev-charging/${chargeId}/stop`, otherCustomer), 404)
    await problem(start(otherCustomer, { station_id: stationId, parking_session_id: sessionId }), 404)
    const list = await expectJson(
      send('GET', `/api/v1/ev-charging/sessions?station_id=${stationId}`, otherCustomer),
    )
    expect(list.data).toEqual([])
    expect(await expectJson(send('GET', `/api/v1/ev-charging/${chargeId}`, operator))).toMatchObject({
      id: chargeId,
    })
    expect(await expectJson(send('POST', `/api/v1/ev-charging/${chargeId}/stop`, operator))).toMatchObject({
      session: { id: chargeId, status: 'completed' },
    })
  })
})

describe('pricing a charge as of a time (pure)', () => {
  const at = (minutes: number) => new Date(Date.UTC(2026, 0, 1, 10, minutes))
  const charge = (fields: Partial<ChargeRecord> = {}): ChargeRecord => ({
    _id: 'c1',
    station_id: 's1',
    parking_session_id: 'p1',
    vehicle_id: null,
    user_id: null,
    lot_id: 'l1',
    space_id: 'sp1',
    currency: 'EUR',
    charger_type: 'LEVEL2',
    price_per_kwh: 25,
    idle_fee_per_minute: 10,
    idle_grace_minutes: 5,
    power_kw: 6,
    max_power_requested: null,
    meter_device_id: null,
    meter_start_wh: null,
    started_at: at(0),
    status: 'charging',
    stopped_at: null,
    energy_wh: null,
    energy_source: 'estimated',
    meter_end_wh: null,
    cost: null,
    stop_reason: null,
    created_by: 'u',
    created_at: at(0),
    updated_at: at(0),
    ...fields,
  })
  const stop = (minutes: number, wh: number, source: 'meter' | 'estimated'): ChargeStopRecord => ({
    _id: 'c1',
    stopped_at: at(minutes),
    energy_wh: wh,
    energy_source: source,
    meter_end_wh: null,
    cost: costOf(wh, 25),
    reason: 'stopped',
    created_by: 'u',
  })

  it('estimates power x time up to the stop or `until`, whichever is first', () => {
    expect(energyUntil(charge(), undefined, at(30), null)).toEqual({ wh: 3000, source: 'estimated' })
    expect(energyUntil(charge(), stop(20, 2000, 'estimated'), at(30), null)).toEqual({
      wh: 2000,
      source: 'estimated',
    })
    // Stopped after `until` (a fee standing as it was paid): counted up to `until`.
    expect(energyUntil(charge(), stop(40, 4000, 'estimated'), at(30), null).wh).toBe(3000)
  })

  it('takes the meter’s advance, pro rata when `until` is before its last reading', () => {
    const metered = charge({ meter_device_id: 'm', meter_start_wh: 10_000, energy_source: 'meter' })
    expect(energyUntil(metered, undefined, at(30), { wh: 14_000, at: at(20) })).toEqual({
      wh: 4000,
      source: 'meter',
    })
    expect(energyUntil(metered, undefined, at(10), { wh: 14_000, at: at(20) })).toEqual({
      wh: 2000,
      source: 'meter',
    })
    expect(energyUntil(metered, stop(40, 8000, 'meter'), at(30), null)).toEqual({ wh: 6000, source: 'meter' })
    // A meter read below its start (replaced) falls back to the estimate.
    expect(energyAtStop(metered, at(30), { wh: 500, at: at(30) })).toMatchObject({
      wh: 3000,
      source: 'estimated',
    })
  })

  it('rounds the cost half up in minor units', () => {
    expect(costOf(12_500, 25)).toBe(313)
    expect(costOf(12_499, 25)).toBe(312)
    expect(costOf(0, 25)).toBe(0)
  })

  it('bills idle minutes while the session holds the charger’s space, until its next charge', () => {
    const first = charge({ _id: 'c1', status: 'completed' })
    const second = charge({ _id: 'c2', started_at: at(50), idle_fee_per_minute: 0 })
    const stops = new Map([['c1', stop(20, 2000, 'estimated')]])
    const lines = sessionCharges([second, first], stops, new Map(), at(59), 'sp1')
    expect(lines.map((l) => [l.kind, l.ref, l.amount])).toEqual([
      ['ev_charging', 'c1', costOf(2000, 25)],
      ['ev_idle', 'c1', (30 - 5) * 10],
      ['ev_charging', 'c2', costOf(900, 25)],
    ])
    // Moved to another space: no idle fee; priced before the second charge began: no line for it.
    expect(sessionCharges([first, second], stops, new Map(), at(40), 'elsewhere').map((l) => l.kind)).toEqual(
      ['ev_charging'],
    )
  })
})
