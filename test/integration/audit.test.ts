import { randomBytes, randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { isAuditRead } from '../../src/modules/audit/audit.recorder.ts'
import { type Account, createAccount, signInAdmin, testAdmin } from '../harness/accounts.ts'
import { createHourlyRate, uniquePlate } from '../harness/facility.ts'
import { expectJson, type Json, requester } from '../harness/http.ts'
import { startTestPlatform, type TestPlatform } from '../harness/platform.ts'

// The audit log (issue 9): a scripted admin session and an operator's action, each recorded once
// with who, what, the target, the state before and after; secrets never stored; customers not
// recorded; admins only; newest first in pages.

let platform: TestPlatform
let admin: Account
let operator: Account
let customer: Account
const send = requester(() => platform)

/** Every record of the log matching the query, newest first, read in pages of 100. */
async function allRecords(query = ''): Promise<Json[]> {
  const records: Json[] = []
  let cursor: string | null = null
  do {
    const page: Json = await expectJson(
      send('GET', `/api/v1/audit-log?limit=100${query}${cursor ? `&cursor=${cursor}` : ''}`, admin),
    )
    records.push(...page.data)
    cursor = page.next_cursor
  } while (cursor)
  return records
}

/** The one record of `action` on `targetId` (fails when there are none or several). */
async function recordOf(action: string, targetId: string): Promise<Json> {
  const records = await allRecords(`&action=${action}&target_id=${encodeURIComponent(targetId)}`)
  expect(records, `${action} on ${targetId}`).toHaveLength(1)
  return records[0]
}

beforeAll(async () => {
  platform = await startTestPlatform({ ...testAdmin, ACCOUNT_APPROVAL_REQUIRED: 'false' })
  admin = await signInAdmin(platform)
  operator = await createAccount(platform, admin, 'operator')
  customer = await createAccount(platform, admin, 'customer')
})

afterAll(async () => {
  await platform?.stop()
})

describe('the audit log of a scripted admin session', () => {
  const ids = { user: '', lot: '', level: '', zone: '', space: '', rate: '', spareLevel: '' }
  const requestIds: Record<string, string> = {}
  const password = `pw-${randomBytes(8).toString('hex')}`
  const lotName = `Audit lot ${randomBytes(3).toString('hex')}`
  const lotBody = {
    name: lotName,
    address: '1 Audit Street',
    latitude: 52.5,
    longitude: 13.4,
    time_zone: 'Europe/Berlin',
    currency: 'EUR',
  }

  beforeAll(async () => {
    // Admin: an account with a password, a lot, a level, a zone and a space, a rename of the lot,
    // a role change, a tariff, a level deleted; the operator: an overlay on the space.
    const user = await send('POST', '/api/v1/users', admin, {
      email: `audited-${randomBytes(4).toString('hex')}@example.com`,
      password,
      full_name: 'Audited Person',
      role: 'customer',
    })
    requestIds.createUser = user.headers.get('x-request-id') ?? ''
    ids.user = (await expectJson(user, 201)).id
    ids.lot = (await expectJson(send('POST', '/api/v1/lots', admin, lotBody), 201)).id
    ids.level = (
      await expectJson(send('POST', '/api/v1/levels', admin, { lot_id: ids.lot, name: 'L1', floor: 1 }), 201)
    ).id
    ids.zone = (
      await expectJson(send('POST', '/api/v1/zones', admin, { level_id: ids.level, name: 'Z' }), 201)
    ).id
    ids.space = (
      await expectJson(
        send('POST', '/api/v1/spaces', admin, { zone_id: ids.zone, number: 'A-1', type: 'STANDARD' }),
        201,
      )
    ).id
    await expectJson(
      send('PUT', `/api/v1/lots/${ids.lot}`, admin, { ...lotBody, name: `${lotName} renamed` }),
    )
    await expectJson(send('PATCH', `/api/v1/users/${ids.user}`, admin, { role: 'operator' }))
    ids.rate = (await createHourlyRate(platform, admin, ids.lot, 300)).id
    ids.spareLevel = (
      await expectJson(send('POST', '/api/v1/levels', admin, { lot_id: ids.lot, name: 'L2', floor: 2 }), 201)
    ).id
    expect((await send('DELETE', `/api/v1/levels/${ids.spareLevel}`, admin)).status).toBe(204)
    await expectJson(
      send('PUT', `/api/v1/spaces/${ids.space}/overlay`, operator, {
        overlay: 'maintenance',
        reason: 'Paint',
      }),
    )
    // Refused attempts of staff: an operator on an admin operation, an admin's invalid body.
    await expectJson(send('POST', '/api/v1/lots', operator, lotBody), 403)
    await expectJson(send('PUT', `/api/v1/lots/${ids.lot}`, admin, { name: '' }), 400)
    // A customer's own actions.
    await expectJson(
      send('POST', '/api/v1/vehicles', customer, {
        license_plate: uniquePlate(),
        vehicle_type_id: 'standard',
      }),
      201,
    )
  })

  it('records each admin action once, with actor, action, target and outcome', async () => {
    const expected: [string, string, string, string][] = [
      ['createUser', 'users', ids.user, 'POST'],
      ['createLot', 'lots', ids.lot, 'POST'],
      ['createLevel', 'levels', ids.level, 'POST'],
      ['createZone', 'zones', ids.zone, 'POST'],
      ['createSpace', 'spaces', ids.space, 'POST'],
      ['updateUser', 'users', ids.user, 'PATCH'],
      ['createRate', 'rates', ids.rate, 'POST'],
      ['deleteLevel', 'levels', ids.spareLevel, 'DELETE'],
    ]
    for (const [action, type, id, method] of expected) {
      const record = await recordOf(action, id)
      expect(record, action).toMatchObject({
        actor: { user_id: admin.id, role: 'admin', email: testAdmin.ADMIN_EMAIL },
        action,
        method,
        target: { type, id },
        outcome: 'succeeded',
        error_code: null,
        ip: 'in-process',
      })
      expect(Date.parse(record.at)).toBeLessThanOrEqual(Date.now())
    }
    const renames = await allRecords(`&action=replaceLot&target_id=${ids.lot}`)
    expect(renames.map((r: Json) => r.status).sort()).toEqual([200, 400])
    const request = await recordOf('createUser', ids.user)
    expect(request.request_id).toBe(requestIds.createUser)
    expect(request.path).toBe('/api/v1/users')
    expect(request.route).toBe('/api/v1/users')
  })

  it('keeps the state before and after a change', async () => {
    const [rename] = (await allRecords(`&action=replaceLot&target_id=${ids.lot}`)).filter(
      (r: Json) => r.status === 200,
    )
    expect(rename).toMatchObject({
      route: '/api/v1/lots/{id}',
      path: `/api/v1/lots/${ids.lot}`,
      request_body: { ...lotBody, name: `${lotName} renamed` },
      before: { id: ids.lot, name: lotName },
      after: { id: ids.lot, name: `${lotName} renamed` },
      truncated: [],
    })

    const roleChange = await recordOf('updateUser', ids.user)
    expect(roleChange.before).toMatchObject({ id: ids.user, role: 'customer' })
    expect(roleChange.after).toMatchObject({ id: ids.user, role: 'operator' })

    const deletion = await recordOf('deleteLevel', ids.spareLevel)
    expect(deletion).toMatchObject({ status: 204, before: { id: ids.spareLevel, name: 'L2' }, after: null })

    const creation = await recordOf('createLot', ids.lot)
    expect(creation).toMatchObject({ status: 201, before: null, after: { id: ids.lot, name: lotName } })

    const rate = await recordOf('createRate', ids.rate)
    expect(rate.after).toMatchObject({ id: ids.rate, lot_id: ids.lot, amount: 300 })
  })

  it("records the operator's action with the space before and after", async () => {
    const overlay = await recordOf('setSpaceOverlay', ids.space)
    expect(overlay).toMatchObject({
      actor: { user_id: operator.id, role: 'operator', email: operator.email },
      method: 'PUT',
      target: { type: 'spaces', id: ids.space },
      request_body: { overlay: 'maintenance', reason: 'Paint' },
      before: { id: ids.space, overlay: null },
      after: { id: ids.space, overlay: 'maintenance' },
    })
  })

  it('records refused attempts of staff, with the problem code and no after', async () => {
    const denied = (await allRecords(`&actor_id=${operator.id}&action=createLot`))[0]
    expect(denied).toMatchObject({
      actor: { user_id: operator.id, role: 'operator' },
      status: 403,
      outcome: 'refused',
      error_code: 'FORBIDDEN',
      after: null,
      target: { type: 'lots', id: null },
      request_body: lotBody,
    })
    const invalid = (await allRecords(`&action=replaceLot&target_id=${ids.lot}`)).find(
      (r: Json) => r.status === 400,
    )
    expect(invalid).toMatchObject({
      outcome: 'refused',
      error_code: 'VALIDATION_FAILED',
      request_body: { name: '' },
      after: null,
    })
  })

  it('never stores a password or a token', async () => {
    const record = await recordOf('createUser', ids.user)
    expect(record.request_body).toMatchObject({ password: '[redacted]', role: 'customer' })
    const stored = await platform.services.audit.get(record.id)
    expect(JSON.stringify(stored)).not.toContain(password)
    // Nor anywhere in the whole log, nor the bearer tokens of the session.
    const everything = JSON.stringify(await allRecords())
    expect(everything).not.toContain(password)
    expect(everything).not.toContain(admin.token)
    expect(everything).not.toContain(operator.token)
  })

  it("does not record customers' actions, nor reads", async () => {
    expect(await allRecords(`&actor_id=${customer.id}`)).toEqual([])
    const everything = await allRecords()
    expect(everything.every((r: Json) => r.actor.role === 'admin' || r.actor.role === 'operator')).toBe(true)
    expect(everything.every((r: Json) => ['POST', 'PUT', 'PATCH', 'DELETE'].includes(r.method))).toBe(true)
  })

  it('answers one record by id, and 404 for an unknown one', async () => {
    const record = await recordOf('createSpace', ids.space)
    expect(await expectJson(send('GET', `/api/v1/audit-log/${record.id}`, admin))).toEqual(record)
    await expectJson(send('GET', '/api/v1/audit-log/0193a5c2-7f1e-7b3c-9a41-2f0c8e1d4b6a', admin), 404)
  })

  it('pages newest first without gaps or repeats, and filters by time', async () => {
    const all = await allRecords()
    expect(all.length).toBeGreaterThan(10)
    const paged: Json[] = []
    let cursor: string | null = null
    do {
      const page: Json = await expectJson(
        send('GET', `/api/v1/audit-log?limit=3${cursor ? `&cursor=${cursor}` : ''}`, admin),
      )
      expect(page.data.length).toBeLessThanOrEqual(3)
      paged.push(...page.data)
      cursor = page.next_cursor
    } while (cursor)
    expect(paged.map((r) => r.id)).toEqual(all.map((r) => r.id))
    const times = all.map((r) => Date.parse(r.at))
    expect(times).toEqual([...times].sort((a, b) => b - a))
    expect(new Set(all.map((r) => r.id)).size).toBe(all.length)

    // since/until around the rename of the lot: it is in, the lot's creation is out.
    const rename = (await allRecords(`&action=replaceLot&target_id=${ids.lot}`)).find(
      (r: Json) => r.status === 200,
    )
    const window = `&since=${rename.at}&until=${new Date(Date.parse(rename.at) + 1).toISOString()}`
    const inWindow = await allRecords(window)
    expect(inWindow.map((r) => r.id)).toContain(rename.id)
    expect(inWindow.every((r: Json) => r.at === rename.at)).toBe(true)
    const after = await allRecords(`&since=${rename.at}`)
    expect(after.map((r) => r.id)).not.toContain((await recordOf('createLot', ids.lot)).id)
    expect(after.map((r) => r.id)).toContain((await recordOf('deleteLevel', ids.spareLevel)).id)
    await expectJson(send('GET', `/api/v1/audit-log?since=${rename.at}&until=${rename.at}`, admin), 422)
  })

  it('is for admins only', async () => {
    await expectJson(send('GET', '/api/v1/audit-log', operator), 403)
    await expectJson(send('GET', '/api/v1/audit-log', customer), 403)
    await expectJson(send('GET', '/api/v1/audit-log'), 401)
    const any = (await allRecords())[0]
    await expectJson(send('GET', `/api/v1/audit-log/${any.id}`, operator), 403)
  })

  it('records each of many concurrent actions once (written together on the database)', async () => {
    const zones = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        expectJson(send('POST', '/api/v1/zones', admin, { level_id: ids.level, name: `C${i}` }), 201),
      ),
    )
    for (const zone of zones) {
      expect(await recordOf('createZone', zone.id)).toMatchObject({ after: { id: zone.id, name: zone.name } })
    }
  })

  it('answers as usual when the record cannot be written, and counts the failure', async () => {
    const { audit, metrics } = platform.services
    const failures = async () =>
      (await metrics.registry.getSingleMetric('audit_log_write_failures_total')?.get())?.values[0]?.value ?? 0
    const record = audit.record
    const before = await failures()
    audit.record = async () => {
      throw new Error('the audit store is down')
    }
    try {
      const zone = await expectJson(
        send('POST', '/api/v1/zones', admin, { level_id: ids.level, name: 'Z2' }),
        201,
      )
      expect(zone).toMatchObject({ level_id: ids.level, name: 'Z2' })
    } finally {
      audit.record = record
    }
    expect(await failures()).toBe(before + 1)
  })

  it('is purged by data.purge after its retention', async () => {
    const before = (await allRecords()).length
    const now = await platform.services.mailJobs.purge(new Date())
    expect(now.audit_log).toBe(0)
    expect((await allRecords()).length).toBeGreaterThanOrEqual(before)
    const later = await platform.services.mailJobs.purge(new Date(Date.now() + 366 * 86_400_000))
    expect(later.audit_log).toBeGreaterThanOrEqual(before)
    expect(await allRecords()).toEqual([])
  })
})

describe("the recorder's read of the state before an action", () => {
  /**
   * Every request the app is given while `act` runs, the test's own and the recorder's (which
   * reads through the app's own request), the latter marked `audit read`.
   */
  async function requestsDuring(act: () => Promise<void>): Promise<string[]> {
    const { app } = platform
    const request = app.request
    const seen: string[] = []
    app.request = ((input, init, ...rest) => {
      const req = input instanceof Request ? input : new Request(new URL(String(input), 'http://x'), init)
      seen.push(`${req.method} ${new URL(req.url).pathname}${isAuditRead(req) ? ' (audit read)' : ''}`)
      return request(input, init, ...rest)
    }) as typeof request
    try {
      await act()
    } finally {
      app.request = request
    }
    return seen
  }

  /** HTTP requests counted for GET /api/v1/lots/:id, whatever their status. */
  async function lotReadsCounted(): Promise<number> {
    const metric = await platform.services.metrics.registry.getSingleMetric('http_requests_total')?.get()
    return (metric?.values ?? [])
      .filter((v) => v.labels.method === 'GET' && v.labels.route === '/api/v1/lots/:id')
      .reduce((sum, v) => sum + v.value, 0)
  }

  const lotBody = {
    name: `Before lot ${randomBytes(3).toString('hex')}`,
    address: '2 Audit Street',
    latitude: 52.5,
    longitude: 13.4,
    time_zone: 'Europe/Berlin',
    currency: 'EUR',
  }

  it('is made, but not counted in the request metrics as a request of its own', async () => {
    const lot = await expectJson(send('POST', '/api/v1/lots', admin, lotBody), 201)
    const counted = await lotReadsCounted()
    const requests = await requestsDuring(async () => {
      await expectJson(send('PUT', `/api/v1/lots/${lot.id}`, admin, { ...lotBody, name: 'After' }))
    })
    expect(requests).toEqual([`PUT /api/v1/lots/${lot.id}`, `GET /api/v1/lots/${lot.id} (audit read)`])
    expect(await recordOf('replaceLot', lot.id)).toMatchObject({
      before: { id: lot.id, name: lotBody.name },
      after: { id: lot.id, name: 'After' },
    })
    expect(await lotReadsCounted()).toBe(counted)
    // A read of the caller's own is counted as ever.
    await expectJson(send('GET', `/api/v1/lots/${lot.id}`, admin))
    expect(await lotReadsCounted()).toBe(counted + 1)
  })

  it('is not made for a forged token that claims the admin role', async () => {
    const lot = await expectJson(send('POST', '/api/v1/lots', admin, lotBody), 201)
    const encode = (part: object) => Buffer.from(JSON.stringify(part)).toString('base64url')
    const now = Math.floor(Date.now() / 1000)
    const claims = { sub: admin.id, jti: randomUUID(), fam: randomUUID(), sep: 'x', role: 'admin' }
    const forged = [
      `${encode({ alg: 'none', typ: 'JWT' })}.${encode({ ...claims, iat: now, exp: now + 600 })}.`,
      // Signed, but not by the platform.
      `${encode({ alg: 'HS256', typ: 'JWT' })}.${encode({ ...claims, iat: now, exp: now + 600 })}.${randomBytes(32).toString('base64url')}`,
    ]
    for (const token of forged) {
      const requests = await requestsDuring(async () => {
        await expectJson(send('PUT', `/api/v1/lots/${lot.id}`, token, { ...lotBody, name: 'Forged' }), 401)
      })
      expect(requests, token).toEqual([`PUT /api/v1/lots/${lot.id}`])
    }
    expect(await allRecords(`&action=replaceLot&target_id=${lot.id}`)).toEqual([])
    expect(await expectJson(send('GET', `/api/v1/lots/${lot.id}`, admin))).toMatchObject({
      name: lotBody.name,
    })
  })
})
