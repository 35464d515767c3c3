import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createDiscountsRepository } from '../../src/modules/discounts/discounts.repository.ts'
import {
  createDiscountsService,
  type DiscountsService,
} from '../../src/modules/discounts/discounts.service.ts'
import type { SessionFacts, SessionsPort } from '../../src/modules/sessions/operations.contract.ts'
import { AppError } from '../../src/shared/errors.ts'
import { connectDatabase, type Database } from '../../src/shared/mongo.ts'
import { connectRedis, type RedisClient } from '../../src/shared/redis.ts'
import { type Account, bearer, createAccount, jsonBody, signInAdmin, testAdmin } from '../harness/accounts.ts'
import { createLot, enterVehicle, uniquePlate } from '../harness/facility.ts'
import { json } from '../harness/http.ts'
import { startTestPlatform, type TestPlatform } from '../harness/platform.ts'

let platform: TestPlatform
let db: Database
let redis: RedisClient
let rawRedis: RedisClient
let admin: Account
let operator: Account
let customer: Account
/** A discounts service on the platform's database and Redis, with sessions made up by the test. */
let service: DiscountsService
const prefix = `t_disc_${randomBytes(4).toString('hex')}:`
const sessions = new Map<string, SessionFacts>()

const sessionsPort: SessionsPort = {
  async facts(id) {
    const facts = sessions.get(id)
    if (!facts) throw new AppError('NOT_FOUND', `No session ${id}`)
    return facts
  },
  factsByTicket: async () => {
    throw new Error('not used')
  },
  amountDue: async () => {
    throw new Error('not used')
  },
}

beforeAll(async () => {
  platform = await startTestPlatform(testAdmin)
  db = await connectDatabase(platform.urls.mongodb)
  redis = await connectRedis(platform.urls.redis, () => {}, prefix)
  rawRedis = await connectRedis(platform.urls.redis, () => {})
  service = createDiscountsService({ repo: createDiscountsRepository(db), redis, sessions: sessionsPort })
  admin = await signInAdmin(platform)
  ;[operator, customer] = await Promise.all([
    createAccount(platform, admin, 'operator'),
    createAccount(platform, admin, 'customer'),
  ])
})
afterAll(async () => {
  await redis?.quit()
  await rawRedis?.quit()
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

const uniqueCode = (stem = 'T') => `${stem}${randomBytes(5).toString('hex')}`.toUpperCase()

const percentBody = (code = uniqueCode(), extra: Record<string, unknown> = {}) => ({
  code,
  name: 'Summer Sale 20% Off',
  discount_type: 'percentage',
  value: 20,
  valid_from: '2024-06-01T00:00:00Z',
  ...extra,
})

async function createDiscount(body: Record<string, unknown>) {
  const res = await send('POST', '/api/v1/discounts', admin, body)
  if (res.status !== 201) throw new Error(`creating a discount failed: ${res.status} ${await res.text()}`)
  return await json(res)
}

function newSession(fields: Partial<SessionFacts> = {}): SessionFacts {
  const id = `s-${randomBytes(6).toString('hex')}`
  const facts: SessionFacts = {
    id,
    ticket_number: `TKT-${id}`,
    lot_id: 'lot-a',
    zone_id: null,
    space_id: null,
    plate: 'AB123',
    vehicle_id: null,
    vehicle_type: 'standard',
    user_id: null,
    status: 'active',
    entry_at: new Date(),
    exit_at: null,
    currency: 'USD',
    reservation_id: null,
    ...fields,
  }
  sessions.set(id, facts)
  return facts
}

const redeemFor = (code: string, facts: SessionFacts) =>
  service.redeem({ code, sessionId: facts.id, lotId: facts.lot_id, userId: facts.user_id })

/** The refusal's reason, or 'ok'. */
const outcome = (attempt: Promise<unknown>) =>
  attempt.then(
    () => 'ok',
    (error: AppError) => (error.extensions?.reason as string | undefined) ?? error.code,
  )

const factsOf = (code: string) => db.collection('discount_redemptions').countDocuments({ code })

describe('discount codes', () => {
  it('creates, reads in any case, replaces, lists and deactivates a code', async () => {
    const code = uniqueCode('summer')
    const created = await send('POST', '/api/v1/discounts', admin, {
      ...percentBody(code.toLowerCase()),
      valid_to: '2099-08-31T23:59:59Z',
      max_uses: 1000,
    })
    expect(created.status).toBe(201)
    const discount = await json(created)
    expect(discount).toEqual({
      id: code,
      code,
      name: 'Summer Sale 20% Off',
      discount_type: 'percentage',
      value: 20,
      currency: null,
      valid_from: '2024-06-01T00:00:00.000Z',
      valid_to: '2099-08-31T23:59:59.000Z',
      max_uses: 1000,
      max_uses_per_user: null,
      lot_id: null,
      is_active: true,
      times_used: 0,
      created_at: expect.any(String),
      updated_at: expect.any(String),
    })
    expect(await json(await send('GET', `/api/v1/discounts/${code.toLowerCase()}`, operator))).toEqual(
      discount,
    )

    const replaced = await send('PUT', `/api/v1/discounts/${code}`, admin, {
      name: 'Five off',
      discount_type: 'fixed_amount',
      value: 500,
      currency: 'EUR',
    })
    expect(replaced.status).toBe(200)
    expect(await json(replaced)).toMatchObject({
      id: code,
      discount_type: 'fixed_amount',
      value: 500,
      currency: 'EUR',
      valid_to: null,
      max_uses: null,
      is_active: true,
    })

    expect((await send('DELETE', `/api/v1/discounts/${code}`, admin)).status).toBe(204)
    expect(await json(await send('GET', `/api/v1/discounts/${code}`, admin))).toMatchObject({
      is_active: false,
    })
    const inactive = await json(await send('GET', '/api/v1/discounts?active=false&limit=100', operator))
    expect(inactive.data.map((d: { id: string }) => d.id)).toContain(code)
    expect(inactive.data.every((d: { is_active: boolean }) => !d.is_active)).toBe(true)
  })

  it('refuses a code that exists in any spelling with 409', async () => {
    const code = uniqueCode()
    await createDiscount(percentBody(code))
    const again = await send('POST', '/api/v1/discounts', admin, percentBody(code.toLowerCase()))
    expect(again.status).toBe(409)
    expect((await json(again)).code).toBe('CONFLICT')
  })

  it('pages by code and filters active codes', async () => {
    for (let i = 0; i < 3; i++) await createDiscount(percentBody(uniqueCode('PAGE')))
    const first = await json(await send('GET', '/api/v1/discounts?limit=2&active=true', operator))
    expect(first.data).toHaveLength(2)
    expect(first.data.every((d: { is_active: boolean }) => d.is_active)).toBe(true)
    const second = await json(
      await send('GET', `/api/v1/discounts?limit=2&active=true&cursor=${first.next_cursor}`, operator),
    )
    expect(second.data[0].id > first.data[1].id).toBe(true)
  })

  it.each([
    ['an unknown field', { extra: 1 }, 'extra'],
    ['a percentage over 100', { value: 150 }, 'value'],
    ['an uppercase type', { discount_type: 'PERCENTAGE' }, 'discount_type'],
    ['a code with a space', { code: 'SUMMER 20' }, 'code'],
    ['a window that ends before it starts', { valid_to: '2024-05-01T00:00:00Z' }, 'valid_to'],
    ['half an hour as a percentage', { value: 0.5 }, 'value'],
  ])('answers 400 naming the field for %s', async (_, change, field) => {
    const res = await send('POST', '/api/v1/discounts', admin, { ...percentBody(), ...change })
    expect(res.status).toBe(400)
    const problem = await json(res)
    expect(problem.code).toBe('VALIDATION_FAILED')
    // An unknown field is named in the reason of the body's problem.
    expect(
      problem.errors.map((e: { field: string; reason: string }) => `${e.field} ${e.reason}`).join('; '),
    ).toContain(field)
  })

  it('needs a currency for a fixed amount, and takes free hours in halves', async () => {
    const noCurrency = await send('POST', '/api/v1/discounts', admin, {
      ...percentBody(),
      discount_type: 'fixed_amount',
      value: 500,
    })
    expect(noCurrency.status).toBe(400)
    expect((await json(noCurrency)).errors.map((e: { field: string }) => e.field)).toContain('currency')
    const quarter = await send('POST', '/api/v1/discounts', admin, {
      ...percentBody(),
      discount_type: 'free_hours',
      value: 1.25,
    })
    expect(quarter.status).toBe(400)
    const half = await send('POST', '/api/v1/discounts', admin, {
      ...percentBody(),
      discount_type: 'free_hours',
      value: 1.5,
    })
    expect(half.status).toBe(201)
  })

  it('refuses a code bound to a lot that does not exist with 404', async () => {
    const res = await send(
      'POST',
      '/api/v1/discounts',
      admin,
      percentBody(uniqueCode(), { lot_id: 'no-such-lot' }),
    )
    expect(res.status).toBe(404)
  })

  it.each([
    ['GET', '/api/v1/discounts/NOSUCHCODE'],
    ['PUT', '/api/v1/discounts/NOSUCHCODE'],
    ['DELETE', '/api/v1/discounts/NOSUCHCODE'],
  ])('answers 404 on %s of an unknown code', async (method, path) => {
    const body = method === 'PUT' ? { name: 'x', discount_type: 'percentage', value: 5 } : undefined
    const res = await send(method, path, admin, body)
    expect(res.status).toBe(404)
    expect((await json(res)).code).toBe('NOT_FOUND')
  })

  it.each([
    ['POST', '/api/v1/sessions/no-such-session/discount', { code: 'ANY1' }],
    ['POST', '/api/v1/sessions/no-such-session/validations', { merchant: 'Cinema', kind: 'full' }],
    ['GET', '/api/v1/sessions/no-such-session/validations', undefined],
  ])('answers 404 on %s %s for an unknown session', async (method, path, body) => {
    const res = await send(method, path, operator, body)
    expect(res.status).toBe(404)
  })
})

describe('who may call what', () => {
  const someCode = 'ROLECHECK1'
  beforeAll(async () => {
    await createDiscount(percentBody(someCode))
  })
  const update = { name: 'x', discount_type: 'percentage', value: 5 }
  const cases: [string, string, unknown, Record<string, number>][] = [
    ['GET', '/api/v1/discounts', undefined, { anonymous: 401, customer: 403, operator: 200, admin: 200 }],
    [
      'GET',
      `/api/v1/discounts/${someCode}`,
      undefined,
      { anonymous: 401, customer: 403, operator: 200, admin: 200 },
    ],
    ['POST', '/api/v1/discounts', 'create', { anonymous: 401, customer: 403, operator: 403, admin: 201 }],
    [
      'PUT',
      `/api/v1/discounts/${someCode}`,
      update,
      { anonymous: 401, customer: 403, operator: 403, admin: 200 },
    ],
    [
      'DELETE',
      `/api/v1/discounts/${someCode}`,
      undefined,
      { anonymous: 401, customer: 403, operator: 403, admin: 204 },
    ],
    [
      'POST',
      '/api/v1/discounts/validate',
      { code: someCode },
      { anonymous: 200, customer: 200, operator: 200, admin: 200 },
    ],
    [
      'POST',
      '/api/v1/sessions/x/discount',
      { code: someCode },
      { anonymous: 401, customer: 404, operator: 404, admin: 404 },
    ],
    [
      'POST',
      '/api/v1/sessions/x/validations',
      { merchant: 'A', kind: 'full' },
      { anonymous: 401, customer: 403, operator: 404, admin: 404 },
    ],
    [
      'GET',
      '/api/v1/sessions/x/validations',
      undefined,
      { anonymous: 401, customer: 404, operator: 404, admin: 404 },
    ],
  ]
  it.each(
    cases.flatMap(([method, path, body, byRole]) =>
      Object.entries(byRole).map(([role, status]) => [method, path, role, status, body] as const),
    ),
  )('%s %s as %s answers %i', async (method, path, role, status, body) => {
    const account = { anonymous: undefined, customer, operator, admin }[role]
    const payload = body === 'create' ? percentBody() : body
    const res = await send(method, path, account, payload)
    expect(res.status).toBe(status)
  })
})

describe('checking a code', () => {
  const check = async (body: Record<string, unknown>) => {
    const res = await send('POST', '/api/v1/discounts/validate', undefined, body)
    expect(res.status).toBe(200)
    return await json(res)
  }

  it('matches a code in any case and says how many uses remain', async () => {
    const code = uniqueCode('CASE')
    await createDiscount(percentBody(code, { max_uses: 3 }))
    const result = await check({ code: code.toLowerCase() })
    expect(result).toMatchObject({ valid: true, reason: null, uses_remaining: 3, discount: { id: code } })
    await platform.services.discounts.redeem({
      code: code.toLowerCase(),
      sessionId: 'h1',
      lotId: 'l',
      userId: null,
    })
    expect(await check({ code })).toMatchObject({
      valid: true,
      uses_remaining: 2,
      discount: { times_used: 1 },
    })
  })

  it('gives the reason a code cannot be used', async () => {
    expect(await check({ code: uniqueCode('NONE') })).toEqual({
      valid: false,
      reason: 'unknown',
      discount: null,
      uses_remaining: null,
    })
    const expired = uniqueCode('OLD')
    await createDiscount(percentBody(expired, { valid_to: '2024-08-31T23:59:59Z' }))
    expect(await check({ code: expired })).toMatchObject({ valid: false, reason: 'expired' })

    const future = uniqueCode('NEW')
    await createDiscount(percentBody(future, { valid_from: '2099-01-01T00:00:00Z' }))
    expect(await check({ code: future })).toMatchObject({ valid: false, reason: 'not_yet_valid' })

    const inactive = uniqueCode('OFF')
    await createDiscount(percentBody(inactive, { is_active: false }))
    expect(await check({ code: inactive })).toMatchObject({ valid: false, reason: 'inactive' })

    const once = uniqueCode('ONCE')
    await createDiscount(percentBody(once, { max_uses: 1 }))
    await platform.services.discounts.redeem({ code: once, sessionId: 'h2', lotId: 'l', userId: null })
    expect(await check({ code: once })).toMatchObject({
      valid: false,
      reason: 'limit_reached',
      uses_remaining: 0,
    })
  })

  it('refuses a malformed body with 400', async () => {
    const res = await send('POST', '/api/v1/discounts/validate', undefined, { code: 'X', extra: true })
    expect(res.status).toBe(400)
  })
})

describe('redemption', () => {
  async function seedCode(extra: Record<string, unknown> = {}, type = percentBody) {
    const code = uniqueCode('R')
    await createDiscount(type(code, extra))
    return code
  }

  it('redeems a max_uses=1 code for exactly one of 50 concurrent sessions', async () => {
    const code = await seedCode({ max_uses: 1 })
    const all = Array.from({ length: 50 }, () => newSession())
    const outcomes = await Promise.all(all.map((facts) => outcome(redeemFor(code.toLowerCase(), facts))))
    expect(outcomes.filter((o) => o === 'ok')).toHaveLength(1)
    expect(outcomes.filter((o) => o === 'limit_reached')).toHaveLength(49)
    // The counter and the facts agree, and the counter sits under the client's key prefix.
    expect(await redis.get(`disc:{${code}}:uses`)).toBe('1')
    expect(await rawRedis.get(`${prefix}disc:{${code}}:uses`)).toBe('1')
    expect(await factsOf(code)).toBe(1)
  })

  it('enforces max_uses_per_user across sessions, and not for other customers', async () => {
    const code = await seedCode({ max_uses_per_user: 2, max_uses: 10 })
    const outcomes = await Promise.all(
      Array.from({ length: 6 }, () => outcome(redeemFor(code, newSession({ user_id: 'user-a' })))),
    )
    expect(outcomes.filter((o) => o === 'ok')).toHaveLength(2)
    expect(outcomes.filter((o) => o === 'already_used_by_you')).toHaveLength(4)
    expect(await outcome(redeemFor(code, newSession({ user_id: 'user-b' })))).toBe('ok')
    // Sessions without an account count overall only.
    expect(await outcome(redeemFor(code, newSession()))).toBe('ok')
    expect(await redis.get(`disc:{${code}}:uses`)).toBe('4')
    expect(await factsOf(code)).toBe(4)
  })

  it('counts one use for a code redeemed twice, or ten times at once, for one session', async () => {
    const code = await seedCode({ max_uses: 5 })
    const facts = newSession()
    const first = await redeemFor(code, facts)
    expect(first).toEqual({
      kind: 'percentage',
      value: 20,
      source: 'discount',
      ref: code,
      label: `Discount ${code} (20%)`,
    })
    expect(await redeemFor(code.toLowerCase(), facts)).toEqual(first)

    const other = newSession()
    const all = await Promise.all(Array.from({ length: 10 }, () => redeemFor(code, other)))
    for (const adjustment of all) expect(adjustment).toEqual(first)
    expect(await redis.get(`disc:{${code}}:uses`)).toBe('2')
    expect(await factsOf(code)).toBe(2)
  })

  it('rebuilds the counters from the facts after Redis lost them', async () => {
    const code = await seedCode({ max_uses: 4, max_uses_per_user: 2 })
    for (let i = 0; i < 3; i++) await redeemFor(code, newSession({ user_id: i < 2 ? 'user-c' : null }))
    await redis.del(`disc:{${code}}:uses`, `disc:{${code}}:users`)
    expect(await redis.exists(`disc:{${code}}:uses`)).toBe(0)

    expect(await outcome(redeemFor(code, newSession({ user_id: 'user-c' })))).toBe('already_used_by_you')
    const outcomes = await Promise.all(
      Array.from({ length: 5 }, () => outcome(redeemFor(code, newSession()))),
    )
    expect(outcomes.filter((o) => o === 'ok')).toHaveLength(1)
    expect(await redis.get(`disc:{${code}}:uses`)).toBe('4')
    expect(await redis.hget(`disc:{${code}}:users`, 'user-c')).toBe('2')
    expect(await factsOf(code)).toBe(4)
  })

  it('refuses with the reason: unknown, inactive, expired, wrong lot, wrong currency', async () => {
    const facts = newSession({ lot_id: 'lot-a' })
    expect(await outcome(redeemFor(uniqueCode('NONE'), facts))).toBe('NOT_FOUND')
    expect(await outcome(redeemFor(await seedCode({ is_active: false }), facts))).toBe('inactive')
    expect(await outcome(redeemFor(await seedCode({ valid_to: '2024-07-01T00:00:00Z' }), facts))).toBe(
      'expired',
    )
    const elsewhere = uniqueCode('LOT')
    const repo = createDiscountsRepository(db)
    const now = new Date()
    await repo.insertDiscount({
      _id: elsewhere,
      name: 'Elsewhere',
      discount_type: 'percentage',
      value: 10,
      currency: null,
      valid_from: new Date(0),
      valid_to: null,
      max_uses: null,
      max_uses_per_user: null,
      lot_id: 'lot-b',
      is_active: true,
      created_at: now,
      updated_at: now,
    })
    expect(await outcome(redeemFor(elsewhere, facts))).toBe('wrong_lot')
    expect(await outcome(redeemFor(elsewhere, newSession({ lot_id: 'lot-b' })))).toBe('ok')
    expect(await service.check({ code: elsewhere, session_id: facts.id })).toMatchObject({
      reason: 'wrong_lot',
    })

    const euros = uniqueCode('EUR')
    await createDiscount({
      ...percentBody(euros),
      discount_type: 'fixed_amount',
      value: 250,
      currency: 'EUR',
    })
    expect(await outcome(redeemFor(euros, facts))).toBe('wrong_currency')
    expect(await redeemFor(euros, newSession({ currency: 'EUR' }))).toMatchObject({
      kind: 'fixed',
      value: 250,
      label: `Discount ${euros} (€2.50 off)`,
    })
    expect(await factsOf(euros)).toBe(1)
  })

  it('turns free hours into free minutes', async () => {
    const code = uniqueCode('FREE')
    await createDiscount({ ...percentBody(code), discount_type: 'free_hours', value: 1.5 })
    expect(await redeemFor(code, newSession())).toMatchObject({
      kind: 'free_minutes',
      value: 90,
      label: `Discount ${code} (1 h 30 min free)`,
    })
  })

  it("redeems for a customer's own active session only", async () => {
    const code = await seedCode()
    const mine = newSession({ user_id: 'user-d' })
    const customerViewer = { userId: 'user-d', role: 'customer' as const }
    expect(await service.redeemForSession(customerViewer, mine.id, code)).toMatchObject({ ref: code })
    const theirs = newSession({ user_id: 'user-e' })
    expect(await outcome(service.redeemForSession(customerViewer, theirs.id, code))).toBe('NOT_FOUND')
    const closed = newSession({ status: 'closed' })
    expect(await outcome(service.redeemForSession({ userId: 'op', role: 'operator' }, closed.id, code))).toBe(
      'CONFLICT',
    )
    expect(await service.check({ code, session_id: mine.id })).toMatchObject({ valid: true })
  })
})

describe('partner validations', () => {
  const staff = { userId: 'operator-1', role: 'operator' as const }

  it('records one validation per merchant per session', async () => {
    const facts = newSession({ user_id: 'user-f' })
    const first = await service.validate(staff, facts.id, {
      merchant: 'Cinema',
      kind: 'free_minutes',
      value: 120,
    })
    expect(first.created).toBe(true)
    expect(first.validation).toMatchObject({
      id: `${facts.id}:cinema`,
      merchant: 'Cinema',
      kind: 'free_minutes',
      value: 120,
      label: 'Validated by Cinema (2 h free)',
    })
    const again = await service.validate(staff, facts.id, {
      merchant: '  cinema ',
      kind: 'free_minutes',
      value: 120,
    })
    expect(again).toEqual({ validation: first.validation, created: false })
    expect(
      await outcome(
        service.validate(staff, facts.id, { merchant: 'CINEMA', kind: 'free_minutes', value: 60 }),
      ),
    ).toBe('CONFLICT')

    const concurrent = await Promise.all(
      Array.from({ length: 10 }, () =>
        service.validate(staff, facts.id, { merchant: 'The Shop', kind: 'full' }),
      ),
    )
    expect(concurrent.filter((r) => r.created)).toHaveLength(1)
    expect(await db.collection('partner_validations').countDocuments({ session_id: facts.id })).toBe(2)

    const list = await service.validationsOf({ userId: 'user-f', role: 'customer' }, facts.id, { limit: 1 })
    expect(list.data).toHaveLength(1)
    expect(list.next_cursor).toEqual(expect.any(String))
    expect(
      await outcome(service.validationsOf({ userId: 'user-g', role: 'customer' }, facts.id, { limit: 10 })),
    ).toBe('NOT_FOUND')
  })

  it('refuses a closed session', async () => {
    const closed = newSession({ status: 'closed' })
    expect(await outcome(service.validate(staff, closed.id, { merchant: 'Shop', kind: 'full' }))).toBe(
      'CONFLICT',
    )
  })

  it("lists a session's codes and validations as adjustments", async () => {
    const facts = newSession({ currency: 'EUR' })
    const code = uniqueCode('ADJ')
    await createDiscount(percentBody(code))
    await redeemFor(code, facts)
    await service.validate(staff, facts.id, { merchant: 'Bakery', kind: 'fixed', value: 300 })
    await service.validate(staff, facts.id, { merchant: 'Cinema', kind: 'full' })
    expect(await service.adjustmentsOf(facts.id)).toEqual([
      { kind: 'percentage', value: 20, source: 'discount', ref: code, label: `Discount ${code} (20%)` },
      {
        kind: 'fixed',
        value: 300,
        source: 'validation',
        ref: `${facts.id}:bakery`,
        label: 'Validated by Bakery (€3.00 off)',
      },
      {
        kind: 'full',
        value: 0,
        source: 'validation',
        ref: `${facts.id}:cinema`,
        label: 'Validated by Cinema (parking covered)',
      },
    ])
    expect(await service.adjustmentsOf(newSession().id)).toEqual([])
  })

  it('answers 400 on a validation body without its value', async () => {
    const res = await send('POST', '/api/v1/sessions/any/validations', operator, {
      merchant: 'Cinema',
      kind: 'fixed',
    })
    expect(res.status).toBe(400)
  })
})

describe('over HTTP, on real sessions', () => {
  it('redeems a code and records validations for an active session, and shows them to its customer', async () => {
    const lot = await createLot(platform, admin, { currency: 'EUR' })
    const plate = uniquePlate()
    const vehicle = await send('POST', '/api/v1/vehicles', customer, {
      license_plate: plate,
      vehicle_type_id: 'standard',
    })
    expect(vehicle.status).toBe(201)
    const { session } = await enterVehicle(platform, operator, { license_plate: plate, lot_id: lot.lotId })
    expect(session.user_id).toBe(customer.id)
    const code = uniqueCode('HTTP')
    await createDiscount(percentBody(code, { lot_id: lot.lotId, max_uses: 2 }))

    const check = await json(
      await send('POST', '/api/v1/discounts/validate', undefined, {
        code: code.toLowerCase(),
        session_id: session.id,
      }),
    )
    expect(check).toMatchObject({ valid: true, uses_remaining: 2 })
    const redeemed = await send('POST', `/api/v1/sessions/${session.id}/discount`, customer, {
      code: code.toLowerCase(),
    })
    expect(redeemed.status).toBe(200)
    expect(await json(redeemed)).toEqual({
      kind: 'percentage',
      value: 20,
      source: 'discount',
      ref: code,
      label: `Discount ${code} (20%)`,
    })
    const other = await createAccount(platform, admin, 'customer')
    expect((await send('POST', `/api/v1/sessions/${session.id}/discount`, other, { code })).status).toBe(404)
    expect((await send('POST', `/api/v1/sessions/${session.id}/discount`, operator, { code })).status).toBe(
      200,
    )
    expect((await json(await send('GET', `/api/v1/discounts/${code}`, admin))).times_used).toBe(1)

    const body = { merchant: 'Cinema', kind: 'free_minutes', value: 120, reference: 'ticket 7' }
    const created = await send('POST', `/api/v1/sessions/${session.id}/validations`, operator, body)
    expect(created.status).toBe(201)
    const validation = await json(created)
    expect(validation).toMatchObject({ merchant: 'Cinema', label: 'Validated by Cinema (2 h free)' })
    const repeat = await send('POST', `/api/v1/sessions/${session.id}/validations`, admin, body)
    expect(repeat.status).toBe(200)
    expect(await json(repeat)).toEqual(validation)
    const changed = await send('POST', `/api/v1/sessions/${session.id}/validations`, operator, {
      ...body,
      value: 60,
    })
    expect(changed.status).toBe(409)

    const list = await send('GET', `/api/v1/sessions/${session.id}/validations`, customer)
    expect(list.status).toBe(200)
    expect(await json(list)).toEqual({ data: [validation], next_cursor: null })
    expect((await send('GET', `/api/v1/sessions/${session.id}/validations`, other)).status).toBe(404)
    expect(await platform.services.discounts.adjustmentsOf(session.id)).toHaveLength(2)
  })
})
