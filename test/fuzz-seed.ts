import { randomBytes } from 'node:crypto'

// The fuzz stage of `npm test` (test/run.ts) seeds a small facility through the HTTP API before
// fuzzing, so that path parameters name real resources and schemathesis reaches past the 404 of
// an id it made up. Each id route is pointed at its seeded resource in a generated schemathesis
// config; deletions keep generated ids (a deleted lot would turn the rest of the run into 404s).

export type Seed = {
  customerToken: string
  lot: string
  level: string
  zone: string
  space: string
  evSpace: string
  vehicle: string
  plate: string
  rate: string
  session: string
  ticket: string
  reservation: string
  confirmation: string
  plan: string
  membership: string
  station: string
  charge: string
  export: string
  webhookSubscription: string
  webhookDelivery: string
  auditRecord: string
  jobs: string[]
}

/** The fields of the API's answers that seeding reads. */
type Answer = {
  id: string
  data: { id: string; type: string }[]
  session: { id: string; space_id: string | null }
  ticket_number: string
  reservation: { id: string }
  confirmation_number: string
}

export async function seedFacility(base: string, adminToken: string): Promise<Seed> {
  const send = async (token: string, method: string, path: string, body?: unknown) => {
    const res = await fetch(`${base}/api/v1${path}`, {
      method,
      headers: { Authorization: `Bearer ${token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    })
    const text = await res.text()
    if (res.status >= 300)
      throw new Error(`seeding the fuzz platform: ${method} ${path}: ${res.status} ${text}`)
    return (text ? JSON.parse(text) : null) as Answer
  }
  const admin = (method: string, path: string, body?: unknown) => send(adminToken, method, path, body)

  const lot = await admin('POST', '/lots', {
    name: 'Fuzz Lot',
    address: '1 Fuzz Street',
    latitude: 52.5,
    longitude: 13.4,
    time_zone: 'Europe/Berlin',
    currency: 'EUR',
  })
  const level = await admin('POST', '/levels', { lot_id: lot.id, name: 'L1', floor: 1 })
  const zone = await admin('POST', '/zones', { level_id: level.id, name: 'A' })
  const bulk = { zone_id: zone.id, pad: 3 }
  await admin('POST', '/spaces/bulk', { ...bulk, prefix: 'S-', from: 1, to: 6, type: 'STANDARD' })
  await admin('POST', '/spaces/bulk', { ...bulk, prefix: 'E-', from: 7, to: 9, type: 'EV' })
  const spaces = (await admin('GET', `/spaces?lot_id=${lot.id}&limit=100`)).data as {
    id: string
    type: string
  }[]
  const ofType = (type: string) => spaces.filter((s) => s.type === type).map((s) => s.id)
  const [space] = ofType('STANDARD')
  const [evSpace] = ofType('EV')
  if (!space || !evSpace) throw new Error('seeding the fuzz platform: the spaces were not made')
  const rate = await admin('POST', '/rates', {
    name: 'Fuzz hourly',
    lot_id: lot.id,
    rate_type: 'hourly',
    amount: 300,
    grace_period_minutes: 0,
    effective_from: '2024-01-01T00:00:00Z',
  })
  const plate = `FZ${randomBytes(3).toString('hex').toUpperCase()}`
  const vehicle = await admin('POST', '/vehicles', {
    license_plate: plate,
    vehicle_type_id: 'standard',
    is_ev: true,
  })
  const plan = await admin('POST', '/membership-plans', {
    lot_id: lot.id,
    name: 'Monthly',
    duration_months: 1,
    price: 1500,
    vehicle_limit: 3,
    included_hours: 10,
    discount_percentage: 12.5,
  })
  const membership = await admin('POST', '/memberships', {
    plan_id: plan.id,
    vehicle_ids: [vehicle.id],
    payment_method: 'cash',
  })
  const station = await admin('POST', '/ev-stations', {
    space_id: evSpace,
    charger_type: 'LEVEL2',
    connector_type: 'J1772',
    power_kw: 7.2,
    price_per_kwh: 25,
    idle_fee_per_minute: 5,
  })
  // The active session parks on the station's space, so that it can charge there.
  const entry = await admin('POST', '/sessions/entry', {
    license_plate: 'FUZZEV1',
    lot_id: lot.id,
    space_type: 'EV',
  })
  if (entry.session.space_id !== evSpace)
    await admin('POST', `/sessions/${entry.session.id}/assign-space`, { space_id: evSpace })
  const charge = await admin('POST', '/ev-charging/start', {
    station_id: station.id,
    parking_session_id: entry.session.id,
  })
  const hours = (n: number) => new Date(Date.now() + n * 3_600_000).toISOString()
  const booked = await admin('POST', '/reservations', {
    license_plate: 'FUZZRSV1',
    lot_id: lot.id,
    space_type: 'STANDARD',
    start_time: hours(24),
    end_time: hours(26),
  })

  // Exports are a customer's own: a customer asks for one, and fuzzes the exports as that customer.
  const email = `fuzz-customer-${randomBytes(4).toString('hex')}@example.com`
  const password = `fuzz-${randomBytes(12).toString('hex')}`
  await admin('POST', '/users', { email, password, full_name: 'Fuzz Customer', role: 'customer' })
  const login = await fetch(`${base}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ email, password }),
  })
  if (!login.ok) throw new Error(`seeding the fuzz platform: the customer could not sign in: ${login.status}`)
  const customerToken = ((await login.json()) as { access_token: string }).access_token
  const exported = await send(customerToken, 'POST', '/exports/parking-history', {})
  // A webhook subscription and a delivery of it: the test ping queues one (the fuzz platform never
  // dispatches, test/run.ts). The URL is the discard port on loopback all the same.
  const subscription = await admin('POST', '/webhooks/subscriptions', {
    url: 'http://127.0.0.1:9/fuzz-webhooks',
    event_types: ['session.started'],
    lot_id: lot.id,
    description: 'Fuzz receiver',
  })
  const delivery = await admin('POST', `/webhooks/subscriptions/${subscription.id}/test`)
  const auditRecord = await firstAuditRecord(admin)
  const jobs = ((await admin('GET', '/jobs')).data as unknown as { name: string }[]).map((job) => job.name)

  return {
    customerToken,
    lot: lot.id,
    level: level.id,
    zone: zone.id,
    space,
    evSpace,
    vehicle: vehicle.id,
    plate,
    rate: rate.id,
    session: entry.session.id,
    ticket: entry.ticket_number,
    reservation: booked.reservation.id,
    confirmation: booked.confirmation_number,
    plan: plan.id,
    membership: membership.id,
    station: station.id,
    charge: charge.id,
    export: exported.id,
    webhookSubscription: subscription.id,
    webhookDelivery: delivery.id,
    auditRecord,
    jobs,
  }
}

/** The newest audit record: the admin's seeding actions are recorded, though maybe just after each answer. */
async function firstAuditRecord(admin: (method: string, path: string) => Promise<Answer>): Promise<string> {
  const deadline = Date.now() + 10_000
  for (;;) {
    const [record] = (await admin('GET', '/audit-log?limit=1')).data
    if (record) return record.id
    if (Date.now() > deadline) throw new Error('seeding the fuzz platform: no audit record was written')
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

const asRegex = (path: string) => path.replace(/[{}]/g, (c) => `\\\\${c}`)

/**
 * schemathesis settings that point each id route at its seeded resource: the paths under
 * `/api/v1/<resource>/{id}` (except their DELETE) and the query filters lot_id, level_id,
 * zone_id, space_id and session_id. Appended to test/schemathesis.toml: operation settings merge.
 */
export function seedParameters(seed: Seed): string {
  const byPath: [string, Record<string, string>][] = [
    ['/lots/{id}', { 'path.id': seed.lot }],
    ['/levels/{id}', { 'path.id': seed.level }],
    ['/zones/{id}', { 'path.id': seed.zone }],
    ['/spaces/{id}', { 'path.id': seed.space }],
    ['/vehicles/{id}', { 'path.id': seed.vehicle }],
    ['/vehicles/plate/{plate}', { 'path.plate': seed.plate }],
    ['/rates/{id}', { 'path.id': seed.rate }],
    ['/sessions/{id}', { 'path.id': seed.session }],
    ['/sessions/ticket/{ticket}', { 'path.ticket': seed.ticket }],
    ['/reservations/{id}', { 'path.id': seed.reservation }],
    ['/reservations/confirmation/{code}', { 'path.code': seed.confirmation }],
    ['/membership-plans/{id}', { 'path.id': seed.plan }],
    ['/memberships/{id}', { 'path.id': seed.membership, 'path.vehicleId': seed.vehicle }],
    ['/ev-stations/{id}', { 'path.id': seed.station }],
    ['/ev-charging/{id}', { 'path.id': seed.charge }],
    ['/exports/{id}', { 'path.id': seed.export }],
    ['/webhooks/subscriptions/{id}', { 'path.id': seed.webhookSubscription }],
    ['/webhooks/deliveries/{id}', { 'path.id': seed.webhookDelivery }],
    ['/audit-log/{id}', { 'path.id': seed.auditRecord }],
  ]
  const table = (values: Record<string, string>) =>
    `{ ${Object.entries(values)
      .map(([key, value]) => `"${key}" = "${value}"`)
      .join(', ')} }`
  const operations = byPath.map(
    ([path, values]) =>
      `[[operations]]\ninclude-path-regex = "^/api/v1${asRegex(path)}"\nexclude-method = "DELETE"\nparameters = ${table(values)}\n`,
  )
  // Trends take exactly one of lot_id and zone_id: it keeps generating them.
  const filters = {
    'query.lot_id': seed.lot,
    'query.level_id': seed.level,
    'query.zone_id': seed.zone,
    'query.space_id': seed.space,
    'query.session_id': seed.session,
  }
  // Ids in bodies (entries, bookings, stations, charges, memberships, payments) name the seeded
  // resources most of the time, generated ones otherwise.
  const inBodies: Record<string, string> = {
    lot_id: seed.lot,
    level_id: seed.level,
    zone_id: seed.zone,
    space_id: seed.space,
    vehicle_id: seed.vehicle,
    plan_id: seed.plan,
    station_id: seed.station,
    session_id: seed.session,
    parking_session_id: seed.session,
  }
  const bindings = Object.keys(inBodies)
    .map((field) => `"body.${field}" = { dictionary = "${field}", probability = 0.7 }`)
    .join(', ')
  operations.push(
    `[[operations]]\nexclude-operation-id = "getOccupancyTrends"\nparameters = ${table(filters).slice(0, -2)}, ${bindings} }\n`,
  )
  // Half of the runs of POST /jobs/{name}/run run a real job (each must answer within the request
  // timeout on this small facility), the other half a generated name (404).
  operations.push(
    `[[operations]]\ninclude-operation-id = "runJob"\nparameters = { "path.name" = { dictionary = "jobs", probability = 0.5 } }\n`,
  )
  const dictionary = [
    `[dictionaries.jobs]\nvalues = [${seed.jobs.map((name) => `"${name}"`).join(', ')}]\n`,
    ...Object.entries(inBodies).map(([field, id]) => `[dictionaries.${field}]\nvalues = ["${id}"]\n`),
  ].join('\n')
  return `\n# Seeded by test/fuzz-seed.ts for this run.\n${dictionary}\n${operations.join('\n')}`
}
