import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ParkingClient } from '../../src/client/index.ts'
import { type Account, createAccount, signInAdmin, testAdmin } from '../harness/accounts.ts'
import { clientFor, expectData, expectProblem } from '../harness/client.ts'
import { createLot, type TestLot, uniquePlate } from '../harness/facility.ts'
import { startTestPlatform, type TestPlatform } from '../harness/platform.ts'

// Seed 004's journey 1 through the HTTP API, as a driver, an operator and a kiosk see it:
// register -> vehicle -> entry -> fee -> validate-exit (unpaid) -> pay -> validate-exit (paid)
// -> exit -> re-entry allowed. Every call goes through the typed client (src/client), so that
// tsc checks this journey against the routes as /openapi.json documents them.

let platform: TestPlatform
let admin: Account
let operator: ParkingClient
let kiosk: ParkingClient
let lot: TestLot

beforeAll(async () => {
  platform = await startTestPlatform({ ...testAdmin, ACCOUNT_APPROVAL_REQUIRED: 'false' })
  admin = await signInAdmin(platform)
  operator = clientFor(platform, await createAccount(platform, admin, 'operator'))
  kiosk = clientFor(platform)
  lot = await createLot(platform, admin, {
    spaces: { STANDARD: 2 },
    currency: 'USD',
    timeZone: 'America/New_York',
  })
  await expectData(
    clientFor(platform, admin).POST('/api/v1/rates', {
      body: {
        name: 'Standard Hourly',
        lot_id: lot.lotId,
        rate_type: 'hourly',
        amount: 500,
        grace_period_minutes: 0,
        effective_from: '2024-01-01T00:00:00Z',
      },
    }),
    201,
  )
})
afterAll(async () => {
  await platform?.stop()
})

describe('the walk-in journey', () => {
  it('goes from registration to a paid exit, and lets the car in again', async () => {
    // 1. A driver registers and adds the car.
    const registered = await expectData(
      kiosk.POST('/api/v1/auth/register', {
        body: {
          email: `driver-${randomBytes(4).toString('hex')}@example.com`,
          password: 'a perfectly long passphrase',
          full_name: 'John Doe',
        },
      }),
      201,
    )
    const driver = clientFor(platform, registered.access_token)
    const plate = uniquePlate()
    await expectData(
      driver.POST('/api/v1/vehicles', {
        body: { license_plate: plate, vehicle_type_id: 'standard', make: 'Toyota' },
      }),
      201,
    )

    // 2. The operator lets the car in.
    const entry = await expectData(
      operator.POST('/api/v1/sessions/entry', {
        body: { license_plate: plate, lot_id: lot.lotId, entry_gate: 'Main Entrance' },
      }),
      201,
    )
    const sessionId = entry.session.id
    expect(entry.session).toMatchObject({ tariff_name: 'Standard Hourly', currency: 'USD' })

    // 3. The driver checks the fee: one started hour.
    const fee = await expectData(
      driver.GET('/api/v1/sessions/{id}/calculate-fee', { params: { path: { id: sessionId } } }),
    )
    expect(fee).toMatchObject({
      session_id: sessionId,
      total: 500,
      amount_due: 500,
      amount_paid: 0,
      currency: 'USD',
    })
    expect(fee.breakdown).toEqual([expect.objectContaining({ kind: 'parking', amount: 500 })])

    // 4. The gate refuses to open while it is unpaid.
    const unpaid = await expectData(
      kiosk.POST('/api/v1/payments/validate-exit', { body: { ticket_number: entry.ticket_number } }),
    )
    expect(unpaid).toMatchObject({ is_paid: false, can_exit: false, amount_due: 500 })
    const refused = await expectProblem(
      operator.POST('/api/v1/sessions/exit', { body: { ticket_number: entry.ticket_number } }),
      402,
    )
    expect(refused).toMatchObject({ code: 'PAYMENT_REQUIRED', amount_due: 500, currency: 'USD' })

    // 5. Paid in cash at the kiosk.
    const payment = await expectData(
      operator.POST('/api/v1/payments', {
        params: { header: { 'idempotency-key': `walk-in-${sessionId}` } },
        body: { session_id: sessionId, payment_method: 'cash', amount: 500, tendered: 1000 },
      }),
      201,
    )
    expect(payment).toMatchObject({ amount: 500, status: 'succeeded' })

    // 6. Now the gate opens, within the exit window.
    const ok = await expectData(
      kiosk.POST('/api/v1/payments/validate-exit', { body: { ticket_number: entry.ticket_number } }),
    )
    expect(ok).toMatchObject({ is_paid: true, can_exit: true, amount_due: 0 })
    expect(ok.time_remaining_minutes).toBeGreaterThan(0)
    expect(ok.time_remaining_minutes).toBeLessThanOrEqual(15)

    const exit = await expectData(
      operator.POST('/api/v1/sessions/exit', {
        body: { ticket_number: entry.ticket_number, exit_gate: 'Exit A' },
      }),
    )
    expect(exit).toMatchObject({ session: { status: 'closed', fee_total: 500 }, amount_paid: 500 })

    // 7. The receipt, and the same car in again.
    const receipt = await expectData(
      driver.GET('/api/v1/payments/{id}/receipt', { params: { path: { id: payment.id } } }),
    )
    expect(receipt.receipt_number).toMatch(/^RCP-\d{8}-\d{6}$/)
    await expectData(
      operator.POST('/api/v1/sessions/entry', { body: { license_plate: plate, lot_id: lot.lotId } }),
      201,
    )
  })
})
