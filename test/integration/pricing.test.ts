import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { toFeeTask } from '../../src/modules/pricing/pricing.pool.ts'
import type { FeeRequest } from '../../src/modules/sessions/operations.contract.ts'
import { quoteFee } from '../../workers/fee.ts'
import { type Account, bearer, createAccount, jsonBody, signInAdmin, testAdmin } from '../harness/accounts.ts'
import { createLot, type TestLot } from '../harness/facility.ts'
import { json } from '../harness/http.ts'
import { startTestPlatform, type TestPlatform } from '../harness/platform.ts'

let platform: TestPlatform
let admin: Account
let customer: Account
let operator: Account
let lot: TestLot
let otherLot: TestLot

beforeAll(async () => {
  platform = await startTestPlatform(testAdmin)
  admin = await signInAdmin(platform)
  ;[customer, operator] = await Promise.all([
    createAccount(platform, admin, 'customer'),
    createAccount(platform, admin, 'operator'),
  ])
  lot = await createLot(platform, admin, { spaces: { STANDARD: 1 } })
  otherLot = await createLot(platform, admin, { spaces: { STANDARD: 1 }, currency: 'USD' })
})
afterAll(async () => {
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

const rateBody = (over: Record<string, unknown> = {}) => ({
  name: 'Standard Hourly',
  lot_id: lot.lotId,
  rate_type: 'hourly',
  amount: 500,
  grace_period_minutes: 15,
  effective_from: '2024-01-01T00:00:00Z',
  ...over,
})

async function createRate(over: Record<string, unknown> = {}) {
  const res = await send('POST', '/api/v1/rates', admin, rateBody(over))
  if (res.status !== 201) throw new Error(`creating a rate failed: ${res.status} ${await res.text()}`)
  return await json(res)
}

async function quote(body: Record<string, unknown>, account?: Account) {
  const res = await send('POST', '/api/v1/rates/quote', account, body)
  if (res.status !== 200) throw new Error(`quote failed: ${res.status} ${await res.text()}`)
  return await json(res)
}

/** A fresh lot, so that plans of other tests never compete. */
const freshLot = () => createLot(platform, admin, { spaces: { STANDARD: 1 } })

describe('rate plans', () => {
  it("creates a plan in the lot's currency, reads, lists, replaces and deactivates it", async () => {
    const created = await send('POST', '/api/v1/rates', admin, rateBody({ daily_max: 2000 }))
    expect(created.status).toBe(201)
    const rate = await json(created)
    expect(rate).toEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      name: 'Standard Hourly',
      lot_id: lot.lotId,
      zone_id: null,
      vehicle_type: null,
      currency: 'EUR',
      rate_type: 'hourly',
      amount: 500,
      step_minutes: 60,
      grace_period_minutes: 15,
      daily_max: 2000,
      lost_ticket_fee: 0,
      bands: [],
      effective_from: '2024-01-01T00:00:00.000Z',
      effective_to: null,
      is_active: true,
      created_at: expect.any(String),
      updated_at: expect.any(String),
    })

    const read = await send('GET', `/api/v1/rates/${rate.id}`, customer)
    expect(read.status).toBe(200)
    expect(await json(read)).toEqual(rate)

    const band = {
      kind: 'peak',
      name: 'Evening peak',
      days: ['mon', 'fri'],
      start: '17:00',
      end: '19:00',
      multiplier_percent: 150,
    }
    const replaced = await send(
      'PUT',
      `/api/v1/rates/${rate.id}`,
      admin,
      rateBody({ name: 'Peak Hourly', amount: 600, bands: [band], effective_from: undefined }),
    )
    expect(replaced.status).toBe(200)
    const updated = await json(replaced)
    expect(updated).toMatchObject({
      id: rate.id,
      name: 'Peak Hourly',
      amount: 600,
      daily_max: null,
      bands: [band],
      // Left out on a replacement: unchanged.
      effective_from: '2024-01-01T00:00:00.000Z',
    })

    const listed = await json(await send('GET', `/api/v1/rates?lot_id=${lot.lotId}&limit=100`, operator))
    expect(listed.data.map((r: { id: string }) => r.id)).toContain(rate.id)

    expect((await send('DELETE', `/api/v1/rates/${rate.id}`, admin)).status).toBe(204)
    expect(await json(await send('GET', `/api/v1/rates/${rate.id}`, admin))).toMatchObject({
      is_active: false,
    })
    const active = await json(
      await send('GET', `/api/v1/rates?lot_id=${lot.lotId}&active=true&limit=100`, admin),
    )
    expect(active.data.map((r: { id: string }) => r.id)).not.toContain(rate.id)
    const inactive = await json(
      await send('GET', `/api/v1/rates?lot_id=${lot.lotId}&active=false&limit=100`, admin),
    )
    expect(inactive.data.map((r: { id: string }) => r.id)).toContain(rate.id)
    // Deactivating twice is harmless.
    expect((await send('DELETE', `/api/v1/rates/${rate.id}`, admin)).status).toBe(204)
  })

  it('pages with a cursor', async () => {
    const mine = await freshLot()
    for (let i = 0; i < 3; i++) await createRate({ lot_id: mine.lotId, name: `Plan ${i}` })
    const first = await json(await send('GET', `/api/v1/rates?lot_id=${mine.lotId}&limit=2`, admin))
    expect(first.data).toHaveLength(2)
    const second = await json(
      await send('GET', `/api/v1/rates?lot_id=${mine.lotId}&limit=2&cursor=${first.next_cursor}`, admin),
    )
    expect(second.data.map((r: { name: string }) => r.name)).toEqual(['Plan 2'])
    expect(second.next_cursor).toBeNull()
  })

  it('answers a retried create with the same Idempotency-Key with the same plan', async () => {
    const key = { 'Idempotency-Key': `rate-${randomUUID()}` }
    const body = rateBody({ name: 'Keyed' })
    const first = await send('POST', '/api/v1/rates', admin, body, key)
    const again = await send('POST', '/api/v1/rates', admin, body, key)
    expect(first.status).toBe(201)
    expect(again.status).toBe(201)
    expect((await json(again)).id).toBe((await json(first)).id)
    const other = await send('POST', '/api/v1/rates', admin, { ...body, amount: 1 }, key)
    expect(other.status).toBe(422)
  })

  it('stores bands of both kinds as given', async () => {
    const bands = [
      { kind: 'price', name: 'Night', days: ['sun', 'sat'], start: '22:00', end: '06:00', step_amount: 200 },
      { kind: 'peak', name: 'Rush', days: ['mon'], start: '07:00', end: '24:00', multiplier_percent: 0 },
    ]
    const rate = await createRate({ bands })
    expect(rate.bands).toEqual(bands)
    expect((await json(await send('GET', `/api/v1/rates/${rate.id}`, admin))).bands).toEqual(bands)
  })
})

describe('access', () => {
  const someId = '0193a5c2-7f1e-7b3c-9a41-2f0c8e1d4b6a'

  it.each([
    ['customer', () => customer],
    ['operator', () => operator],
  ])('a %s may read plans but not write them', async (_role, who) => {
    const rate = await createRate()
    expect((await send('GET', '/api/v1/rates', who())).status).toBe(200)
    expect((await send('GET', `/api/v1/rates/${rate.id}`, who())).status).toBe(200)
    expect((await send('POST', '/api/v1/rates', who(), rateBody())).status).toBe(403)
    expect((await send('PUT', `/api/v1/rates/${rate.id}`, who(), rateBody())).status).toBe(403)
    expect((await send('DELETE', `/api/v1/rates/${rate.id}`, who())).status).toBe(403)
    expect((await json(await send('GET', `/api/v1/rates/${rate.id}`, admin))).is_active).toBe(true)
  })

  it.each([
    ['GET', '/api/v1/rates'],
    ['POST', '/api/v1/rates'],
    ['GET', `/api/v1/rates/${someId}`],
    ['PUT', `/api/v1/rates/${someId}`],
    ['DELETE', `/api/v1/rates/${someId}`],
  ])('anonymous %s %s is a 401', async (method, path) => {
    const res = await send(
      method,
      path,
      undefined,
      method === 'POST' || method === 'PUT' ? rateBody() : undefined,
    )
    expect(res.status).toBe(401)
  })

  it('anyone may ask for a quote', async () => {
    const fee = await quote({
      lot_id: lot.lotId,
      entry_time: '2026-06-01T10:00:00Z',
      exit_time: '2026-06-01T10:05:00Z',
    })
    expect(fee.currency).toBe('EUR')
  })

  it('another method on /rates/quote is a 405, not a question about an id', async () => {
    const res = await send('GET', '/api/v1/rates/quote', admin)
    expect(res.status).toBe(405)
  })
})

describe('not found', () => {
  const unknown = '0193a5c2-7f1e-7b3c-9a41-2f0c8e1d4b6a'

  it.each([
    ['GET', undefined],
    ['PUT', rateBody],
    ['DELETE', undefined],
  ])('%s of an unknown plan is a 404', async (method, body) => {
    const res = await send(method, `/api/v1/rates/${unknown}`, admin, body?.())
    expect(res.status).toBe(404)
    expect(await json(res)).toMatchObject({ code: 'NOT_FOUND' })
  })

  it('a plan of an unknown lot or zone is a 404', async () => {
    expect((await send('POST', '/api/v1/rates', admin, rateBody({ lot_id: unknown }))).status).toBe(404)
    expect((await send('POST', '/api/v1/rates', admin, rateBody({ zone_id: unknown }))).status).toBe(404)
  })

  it('a quote for an unknown lot is a 404', async () => {
    const res = await send('POST', '/api/v1/rates/quote', undefined, {
      lot_id: unknown,
      entry_time: '2026-06-01T10:00:00Z',
      exit_time: '2026-06-01T11:00:00Z',
    })
    expect(res.status).toBe(404)
  })
})

describe('validation', () => {
  async function problem(method: string, path: string, body: unknown, account: Account | undefined = admin) {
    const res = await send(method, path, account, body)
    expect(res.status).toBe(400)
    const body_ = await json(res)
    expect(body_.code).toBe('VALIDATION_FAILED')
    return body_.errors as { field: string; reason: string }[]
  }

  it.each([
    ['amount', { amount: -1 }],
    ['amount', { amount: 1.5 }],
    ['amount', { amount: 10_000_001 }],
    ['currency', { currency: 'eur' }],
    ['rate_type', { rate_type: 'weekly' }],
    ['step_minutes', { step_minutes: 0 }],
    ['grace_period_minutes', { grace_period_minutes: 1441 }],
    ['daily_max', { daily_max: -5 }],
    ['vehicle_type', { vehicle_type: 'Standard Car' }],
    ['effective_from', { effective_from: 'yesterday' }],
    [
      'bands.0.start',
      {
        bands: [
          { kind: 'peak', name: 'x', days: ['mon'], start: '25:00', end: '01:00', multiplier_percent: 1 },
        ],
      },
    ],
    [
      'bands.0.days.0',
      {
        bands: [
          { kind: 'peak', name: 'x', days: ['monday'], start: '01:00', end: '02:00', multiplier_percent: 1 },
        ],
      },
    ],
    ['', { surprise: true }],
  ])('names the field %s', async (field, over) => {
    const errors = await problem('POST', '/api/v1/rates', rateBody(over))
    expect(errors.map((e) => e.field)).toContain(field)
    for (const error of errors) expect(error.reason).toEqual(expect.any(String))
  })

  it('refuses a band with both a multiplier and a price', async () => {
    await problem(
      'POST',
      '/api/v1/rates',
      rateBody({
        bands: [
          {
            kind: 'peak',
            name: 'x',
            days: ['mon'],
            start: '01:00',
            end: '02:00',
            multiplier_percent: 1,
            step_amount: 5,
          },
        ],
      }),
    )
  })

  it("refuses another currency than the lot's", async () => {
    const errors = await problem('POST', '/api/v1/rates', rateBody({ currency: 'USD' }))
    expect(errors).toEqual([
      { in: 'body', field: 'currency', pointer: '/currency', reason: "must be the lot's currency, EUR" },
    ])
  })

  it('refuses a zone of another lot', async () => {
    const errors = await problem('POST', '/api/v1/rates', rateBody({ zone_id: otherLot.zoneId }))
    expect(errors.map((e) => e.field)).toEqual(['zone_id'])
  })

  it('refuses an effective window that ends before it starts', async () => {
    const errors = await problem(
      'POST',
      '/api/v1/rates',
      rateBody({ effective_from: '2026-01-01T00:00:00Z', effective_to: '2025-12-31T00:00:00Z' }),
    )
    expect(errors.map((e) => e.field)).toEqual(['effective_to'])
  })

  it('refuses a quote that ends before it starts or lasts more than 31 days', async () => {
    const base = { lot_id: lot.lotId, entry_time: '2026-06-01T10:00:00Z' }
    for (const exit_time of ['2026-06-01T10:00:00Z', '2026-06-01T09:00:00Z', '2026-07-02T10:00:01Z']) {
      const errors = await problem('POST', '/api/v1/rates/quote', { ...base, exit_time }, undefined)
      expect(errors.map((e) => e.field)).toEqual(['exit_time'])
    }
    const errors = await problem(
      'POST',
      '/api/v1/rates/quote',
      { lot_id: lot.lotId, exit_time: 'x' },
      undefined,
    )
    expect(errors.map((e) => e.field).sort()).toEqual(['entry_time', 'exit_time'])
  })
})

describe('quotes and the tariff in force', () => {
  it("prices seed 004's example: 127 minutes at 5.00 an hour", async () => {
    const mine = await freshLot()
    const rate = await createRate({ lot_id: mine.lotId, lost_ticket_fee: 2500 })
    const fee = await quote({
      lot_id: mine.lotId,
      entry_time: '2026-06-01T10:00:00Z',
      exit_time: '2026-06-01T12:07:00Z',
    })
    expect(fee).toEqual({
      currency: 'EUR',
      duration_minutes: 127,
      base_fee: 1500,
      discounts: 0,
      tax: 0,
      total: 1500,
      breakdown: [{ kind: 'parking', description: 'Parking (3 hour(s) @ 5.00 EUR/hr)', amount: 1500 }],
      tariff_id: rate.id,
      tariff_name: 'Standard Hourly',
    })
    const lost = await quote({
      lot_id: mine.lotId,
      entry_time: '2026-06-01T10:00:00Z',
      exit_time: '2026-06-01T12:07:00Z',
      lost_ticket: true,
    })
    expect(lost.total).toBe(4000)
  })

  it('is free with one no_tariff line where no plan is in force', async () => {
    const mine = await freshLot()
    const fee = await quote({
      lot_id: mine.lotId,
      entry_time: '2026-06-01T10:00:00Z',
      exit_time: '2026-06-01T15:00:00Z',
    })
    expect(fee).toMatchObject({ total: 0, tariff_id: null, breakdown: [{ kind: 'no_tariff', amount: 0 }] })
  })

  it('picks by priority: vehicle type + zone, vehicle type, zone, generic', async () => {
    const mine = await freshLot()
    const at = { entry_time: '2026-06-01T10:00:00Z', exit_time: '2026-06-01T11:00:00Z' }
    const generic = await createRate({ lot_id: mine.lotId, name: 'Generic', amount: 100 })
    // The zone plan is made after the van plan: were the two levels equal, it would win the tie.
    const van = await createRate({ lot_id: mine.lotId, name: 'Van', amount: 300, vehicle_type: 'van' })
    const zone = await createRate({ lot_id: mine.lotId, name: 'Zone', amount: 200, zone_id: mine.zoneId })
    const vanZone = await createRate({
      lot_id: mine.lotId,
      name: 'Van in zone',
      amount: 400,
      vehicle_type: 'van',
      zone_id: mine.zoneId,
    })
    const pick = async (over: Record<string, unknown>) =>
      (await quote({ lot_id: mine.lotId, ...at, ...over })).tariff_id
    expect(await pick({ vehicle_type: 'van', zone_id: mine.zoneId })).toBe(vanZone.id)
    expect(await pick({ vehicle_type: 'van' })).toBe(van.id)
    expect(await pick({ zone_id: mine.zoneId })).toBe(zone.id)
    expect(await pick({})).toBe(generic.id)
    expect(await pick({ vehicle_type: 'motorcycle' })).toBe(generic.id)
    // Deactivated, the best plan gives way to the next level.
    await send('DELETE', `/api/v1/rates/${vanZone.id}`, admin)
    expect(await pick({ vehicle_type: 'van', zone_id: mine.zoneId })).toBe(van.id)
  })

  it('takes the plan in force at entry: a later effective_from is not picked before it starts', async () => {
    const mine = await freshLot()
    const winter = await createRate({
      lot_id: mine.lotId,
      name: 'Winter',
      effective_from: '2026-01-01T00:00:00Z',
    })
    const summer = await createRate({
      lot_id: mine.lotId,
      name: 'Summer',
      amount: 700,
      effective_from: '2026-06-01T00:00:00Z',
      effective_to: '2026-09-01T00:00:00Z',
    })
    const idAt = async (entry: string) =>
      (
        await quote({
          lot_id: mine.lotId,
          entry_time: entry,
          exit_time: new Date(Date.parse(entry) + 3_600_000).toISOString(),
        })
      ).tariff_id
    expect(await idAt('2026-05-31T23:59:59Z')).toBe(winter.id)
    expect(await idAt('2026-06-01T00:00:00Z')).toBe(summer.id)
    // effective_to is exclusive.
    expect(await idAt('2026-09-01T00:00:00Z')).toBe(winter.id)
    expect(await idAt('2025-12-31T23:00:00Z')).toBeNull()

    // A stay that entered in May is priced by winter through the summer: the entry decides.
    const fee = await quote({
      lot_id: mine.lotId,
      entry_time: '2026-05-31T23:00:00Z',
      exit_time: '2026-06-01T01:00:00Z',
    })
    expect(fee).toMatchObject({ tariff_id: winter.id, total: 1000 })

    // The service at "now": a plan starting tomorrow is not in force yet.
    const tomorrow = new Date(Date.now() + 86_400_000).toISOString()
    await createRate({ lot_id: mine.lotId, name: 'Next', effective_from: tomorrow })
    const now = await platform.services.pricing.tariffFor({
      lotId: mine.lotId,
      zoneId: null,
      vehicleType: 'standard',
      at: new Date(),
    })
    expect(now?.id).toBe(winter.id)
    // A snapshot is plain JSON.
    expect(JSON.parse(JSON.stringify(now))).toEqual(now)
  })
})

describe('fees in the worker pool', () => {
  async function requests(count: number): Promise<FeeRequest[]> {
    const mine = await freshLot()
    await createRate({
      lot_id: mine.lotId,
      daily_max: 2500,
      lost_ticket_fee: 1000,
      bands: [
        {
          kind: 'peak',
          name: 'Peak',
          days: ['mon', 'tue'],
          start: '08:00',
          end: '10:00',
          multiplier_percent: 175,
        },
      ],
    })
    const tariff = await platform.services.pricing.tariffFor({
      lotId: mine.lotId,
      zoneId: null,
      vehicleType: 'standard',
      at: new Date('2026-03-01T00:00:00Z'),
    })
    expect(tariff).not.toBeNull()
    return Array.from({ length: count }, (_, i) => {
      const entryAt = new Date(Date.parse('2026-03-20T05:17:00Z') + i * 37 * 60_000)
      return {
        tariff,
        currency: 'EUR',
        timeZone: 'Europe/Berlin',
        entryAt,
        exitAt: new Date(entryAt.getTime() + ((i * 97) % (3 * 24 * 60)) * 60_000),
        lostTicket: i % 7 === 0,
        adjustments:
          i % 5 === 0
            ? [{ kind: 'percentage', value: 10, source: 'discount', ref: 'TEN', label: 'TEN (10%)' }]
            : [],
      } satisfies FeeRequest
    })
  }

  it('quoteMany answers in order what the pure function answers inline', async () => {
    const batch = await requests(700)
    const pooled = await platform.services.pricing.quoteMany(batch)
    expect(pooled).toEqual(batch.map((request) => quoteFee(toFeeTask(request))))
    expect(new Set(pooled.map((q) => q.total)).size).toBeGreaterThan(10)
  })

  it('concurrent single quotes are batched and each gets its own answer', async () => {
    const batch = await requests(300)
    const pooled = await Promise.all(batch.map((request) => platform.services.pricing.quote(request)))
    expect(pooled).toEqual(batch.map((request) => quoteFee(toFeeTask(request))))
  })

  it('a request that cannot be priced fails alone', async () => {
    const [good, other] = await requests(2)
    if (!good || !other) throw new Error('no requests')
    const bad = { ...other, timeZone: 'Not/AZone' }
    const results = await Promise.allSettled(
      [good, bad, other].map((r) => platform.services.pricing.quote(r)),
    )
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled'])
  })
})
