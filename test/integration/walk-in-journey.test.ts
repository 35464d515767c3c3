import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Account, bearer, createAccount, jsonBody, signInAdmin, testAdmin } from '../harness/accounts.ts'
import { createLot, type TestLot, uniquePlate } from '../harness/facility.ts'
import { json } from '../harness/http.ts'
import { startTestPlatform, type TestPlatform } from '../harness/platform.ts'

// Seed 004's journey 1 through the HTTP API, as a driver, an operator and a kiosk see it:
// register -> vehicle -> entry -> fee -> validate-exit (unpaid) -> pay -> validate-exit (paid)
// -> exit -> re-entry allowed.

let platform: TestPlatform
let admin: Account
let operator: Account
let lot: TestLot

beforeAll(async () => {
  platform = await startTestPlatform({ ...testAdmin, ACCOUNT_APPROVAL_REQUIRED: 'false' })
  admin = await signInAdmin(platform)
  operator = await createAccount(platform, admin, 'operator')
  lot = await createLot(platform, admin, {
    spaces: { STANDARD: 2 },
    currency: 'USD',
    timeZone: 'America/New_York',
  })
  const rate = await send('POST', '/api/v1/rates', admin.token, {
    name: 'Standard Hourly',
    lot_id: lot.lotId,
    rate_type: 'hourly',
    amount: 500,
    grace_period_minutes: 0,
    effective_from: '2024-01-01T00:00:00Z',
  })
  expect(rate.status).toBe(201)
})
afterAll(async () => {
  await platform?.stop()
})

const send = (method: string, path: string, token: string | undefined, body?: unknown, headers = {}) =>
  platform.request(path, {
    method,
    ...(body === undefined
      ? { headers: { ...(token ? bearer(token) : {}), ...headers } }
      : jsonBody(body, { ...(token ? bearer(token) : {}), ...headers })),
  })

describe('the walk-in journey', () => {
  it('goes from registration to a paid exit, and lets the car in again', async () => {
    // 1. A driver registers and adds the car.
    const registered = await send('POST', '/api/v1/auth/register', undefined, {
      email: `driver-${randomBytes(4).toString('hex')}@example.com`,
      password: 'a perfectly long passphrase',
      full_name: 'John Doe',
    })
    expect(registered.status).toBe(201)
    const driver = (await json(registered)).access_token as string
    const plate = uniquePlate()
    const vehicle = await send('POST', '/api/v1/vehicles', driver, {
      license_plate: plate,
      vehicle_type_id: 'standard',
      make: 'Toyota',
    })
    expect(vehicle.status).toBe(201)

    // 2. The operator lets the car in.
    const entryRes = await send('POST', '/api/v1/sessions/entry', operator.token, {
      license_plate: plate,
      lot_id: lot.lotId,
      entry_gate: 'Main Entrance',
    })
    expect(entryRes.status).toBe(201)
    const entry = await json(entryRes)
    const sessionId = entry.session.id as string
    expect(entry.session).toMatchObject({ tariff_name: 'Standard Hourly', currency: 'USD' })

    // 3. The driver checks the fee: one started hour.
    const feeRes = await send('GET', `/api/v1/sessions/${sessionId}/calculate-fee`, driver)
    expect(feeRes.status).toBe(200)
    const fee = await json(feeRes)
    expect(fee).toMatchObject({
      session_id: sessionId,
      total: 500,
      amount_due: 500,
      amount_paid: 0,
      currency: 'USD',
    })
    expect(fee.breakdown).toEqual([expect.objectContaining({ kind: 'parking', amount: 500 })])

    // 4. The gate refuses to open while it is unpaid.
    const unpaid = await json(
      await send('POST', '/api/v1/payments/validate-exit', undefined, { ticket_number: entry.ticket_number }),
    )
    expect(unpaid).toMatchObject({ is_paid: false, can_exit: false, amount_due: 500 })
    const refused = await send('POST', '/api/v1/sessions/exit', operator.token, {
      ticket_number: entry.ticket_number,
    })
    expect(refused.status).toBe(402)
    expect(await json(refused)).toMatchObject({ code: 'PAYMENT_REQUIRED', amount_due: 500, currency: 'USD' })

    // 5. Paid in cash at the kiosk.
    const paid = await send(
      'POST',
      '/api/v1/payments',
      operator.token,
      { session_id: sessionId, payment_method: 'cash', amount: 500, tendered: 1000 },
      { 'Idempotency-Key': `walk-in-${sessionId}` },
    )
    expect(paid.status).toBe(201)
    const payment = await json(paid)
    expect(payment).toMatchObject({ amount: 500, status: 'succeeded' })

    // 6. Now the gate opens, within the exit window.
    const ok = await json(
      await send('POST', '/api/v1/payments/validate-exit', undefined, { ticket_number: entry.ticket_number }),
    )
    expect(ok).toMatchObject({ is_paid: true, can_exit: true, amount_due: 0 })
    expect(ok.time_remaining_minutes).toBeGreaterThan(0)
    expect(ok.time_remaining_minutes).toBeLessThanOrEqual(15)

    const exitRes = await send('POST', '/api/v1/sessions/exit', operator.token, {
      ticket_number: entry.ticket_number,
      exit_gate: 'Exit A',
    })
    expect(exitRes.status).toBe(200)
    expect(await json(exitRes)).toMatchObject({
      session: { status: 'closed', fee_total: 500 },
      amount_paid: 500,
    })

    // 7. The receipt, and the same car in again.
    const receipt = await send('GET', `/api/v1/payments/${payment.id}/receipt`, driver)
    expect(receipt.status).toBe(200)
    expect((await json(receipt)).receipt_number).toMatch(/^RCP-\d{8}-\d{6}$/)
    const again = await send('POST', '/api/v1/sessions/entry', operator.token, {
      license_plate: plate,
      lot_id: lot.lotId,
    })
    expect(again.status).toBe(201)
  })
})
