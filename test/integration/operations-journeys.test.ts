import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import Stripe from 'stripe'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import type { components } from '../../src/client/index.ts'
import type { GatewayIntent } from '../../src/modules/payments/stripe.gateway.ts'
import { connectDatabase, type Database } from '../../src/shared/mongo.ts'
import { type Account, createAccount, signInAdmin, testAdmin } from '../harness/accounts.ts'
import { clientFor, expectData, expectProblem } from '../harness/client.ts'
import { createLot, type TestLot, uniquePlate } from '../harness/facility.ts'
import { startTestPlatform, type TestPlatform } from '../harness/platform.ts'

// The money path end to end, through the HTTP API only, on the real capabilities as
// src/platform.ts wires them: sessions, pricing (fees in the worker pool), discounts and payments
// on FerretDB, Redis and stripe-mock. The database is read directly only to count the facts that
// "exactly once" is about (settlements, refunds), and to move a session's entry back in time.
// The calls go through the typed client (src/client), so that tsc checks them against the routes;
// Stripe's webhooks, which Stripe sends and no client of ours, are signed raw bodies.
//
// stripe-mock keeps no state: it answers every confirmation with the same status. Where a test
// needs what Stripe would answer for a card that works, platform.stripe (the gateway the payments
// service calls) is wrapped to tell that status for the intents the test names.

const WEBHOOK_SECRET = 'whsec_operations_journeys_secret'
/** The main lot's tariff: 5.00 USD per started hour, no grace, 25.00 USD for a lost ticket. */
const HOURLY = 500
const LOST_TICKET_FEE = 2500

let platform: TestPlatform
let db: Database
let admin: Account
let operator: Account
let lot: TestLot
const stripeSays = new Map<string, GatewayIntent['status']>()

beforeAll(async () => {
  const services = inject('services')
  platform = await startTestPlatform({
    ...testAdmin,
    STRIPE_API_URL: services.stripe,
    STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
    JOBS_ENABLED: 'false',
  })
  const real = { ...platform.stripe }
  const told = (intent: GatewayIntent): GatewayIntent => ({
    ...intent,
    status: stripeSays.get(intent.id) ?? intent.status,
  })
  platform.stripe.confirmIntent = async (...args) => told(await real.confirmIntent(...args))
  platform.stripe.retrieveIntent = async (id) => told(await real.retrieveIntent(id))

  db = await connectDatabase(platform.urls.mongodb)
  admin = await signInAdmin(platform)
  operator = await createAccount(platform, admin, 'operator')
  lot = await createLot(platform, admin, {
    spaces: { STANDARD: 40 },
    currency: 'USD',
    timeZone: 'America/New_York',
  })
  await expectData(
    api(admin).POST('/api/v1/rates', {
      body: {
        name: 'Hourly with lost ticket',
        lot_id: lot.lotId,
        rate_type: 'hourly',
        amount: HOURLY,
        grace_period_minutes: 0,
        lost_ticket_fee: LOST_TICKET_FEE,
        effective_from: '2024-01-01T00:00:00Z',
      },
    }),
    201,
  )
}, 120_000)

afterAll(async () => {
  await db?.close()
  await platform?.stop()
})

/** The typed client as `who` (nobody: a kiosk or gate) on the main platform or another. */
const api = (who?: Account, on: TestPlatform = platform) => clientFor(on, who)

/** A customer with a registered car: their sessions are theirs (user_id), so they may pay in the app. */
async function customerWithCar() {
  const customer = await createAccount(platform, admin, 'customer')
  const plate = uniquePlate()
  await expectData(
    api(customer).POST('/api/v1/vehicles', { body: { license_plate: plate, vehicle_type_id: 'standard' } }),
    201,
  )
  return { customer, plate }
}

async function enter(plate = uniquePlate(), on: TestPlatform = platform, lotId = lot.lotId, by = operator) {
  const entry = await expectData(
    api(by, on).POST('/api/v1/sessions/entry', { body: { license_plate: plate, lot_id: lotId } }),
    201,
  )
  return { id: entry.session.id, ticket: entry.ticket_number, plate, entry }
}

const fee = async (sessionId: string, who: Account = operator) =>
  await expectData(
    api(who).GET('/api/v1/sessions/{id}/calculate-fee', { params: { path: { id: sessionId } } }),
  )

const validateExit = async (ticket: string, on: TestPlatform = platform) =>
  await expectData(
    api(undefined, on).POST('/api/v1/payments/validate-exit', { body: { ticket_number: ticket } }),
  )

const exitByTicket = (ticket: string, on: TestPlatform = platform, by = operator) =>
  api(by, on).POST('/api/v1/sessions/exit', { body: { ticket_number: ticket, exit_gate: 'Exit A' } })

/** When a payment that took the money was settled. */
function settledAt(payment: { settled_at: string | null }): number {
  expect(payment.settled_at).toEqual(expect.any(String))
  return Date.parse(payment.settled_at ?? '')
}

const payments = (sessionId: string, limit: number) =>
  api(operator).GET('/api/v1/payments', { params: { query: { session_id: sessionId, limit } } })

const count = (collection: string, filter: Record<string, unknown>, on: Database = db) =>
  on.collection(collection).countDocuments(filter)

function signedEvent(type: string, intentId: string, status: string) {
  const payload = JSON.stringify({
    id: `evt_${randomBytes(12).toString('hex')}`,
    object: 'event',
    type,
    data: { object: { id: intentId, object: 'payment_intent', status, metadata: {} } },
  })
  const timestamp = Math.floor(Date.now() / 1000)
  return {
    payload,
    header: Stripe.webhooks.generateTestHeaderString({ payload, secret: WEBHOOK_SECRET, timestamp }),
  }
}

const uniqueCode = (stem: string) => `${stem}${randomBytes(4).toString('hex')}`.toUpperCase()

/** A discount's body without its name (each kind of discount has its own shape). */
type DiscountBody = components['schemas']['DiscountCreate'] extends infer Kind
  ? Kind extends unknown
    ? Omit<Kind, 'name'>
    : never
  : never

async function createDiscount(body: DiscountBody) {
  return await expectData(
    api(admin).POST('/api/v1/discounts', {
      body: { name: `Test ${body.code}`, valid_from: '2024-01-01T00:00:00Z', ...body },
    }),
    201,
  )
}

describe('the Stripe app path on a real session', () => {
  it('intent, confirmation with a card, paid at the gate, exit; the late webhook changes nothing', async () => {
    const { customer, plate } = await customerWithCar()
    const session = await enter(plate)
    expect(session.entry.session.user_id).toBe(customer.id)

    // The customer pays what the fee says, in the app.
    const owed = await fee(session.id, customer)
    expect(owed).toMatchObject({ total: HOURLY, amount_due: HOURLY, amount_paid: 0, currency: 'USD' })
    const intent = await expectData(
      api(customer).POST('/api/v1/payments/create-intent', { body: { session_id: session.id } }),
      201,
    )
    expect(intent).toMatchObject({
      amount: HOURLY,
      currency: 'USD',
      status: 'pending',
      payment_intent_id: expect.stringMatching(/^pi_/),
    })
    // Another customer cannot pay (or see) it.
    const stranger = await createAccount(platform, admin, 'customer')
    await expectProblem(
      api(stranger).POST('/api/v1/payments/create-intent', { body: { session_id: session.id } }),
      404,
    )

    stripeSays.set(intent.payment_intent_id, 'succeeded')
    const confirmed = await expectData(
      api(customer).POST('/api/v1/payments/confirm', {
        body: { payment_intent_id: intent.payment_intent_id, payment_method: 'pm_card_visa' },
      }),
    )
    expect(confirmed).toMatchObject({
      id: intent.payment_id,
      status: 'succeeded',
      amount: HOURLY,
      payment_method: 'mobile',
      receipt_number: expect.stringMatching(/^RCP-/),
    })

    expect(await validateExit(session.ticket)).toMatchObject({
      is_paid: true,
      can_exit: true,
      amount_due: 0,
    })
    const exited = await expectData(exitByTicket(session.ticket))
    expect(exited).toMatchObject({ session: { status: 'closed', fee_total: HOURLY }, amount_paid: HOURLY })

    // Stripe's webhook for the same intent comes after the car has left: received, no effect.
    const late = signedEvent('payment_intent.succeeded', intent.payment_intent_id, 'succeeded')
    for (let delivery = 0; delivery < 2; delivery++) {
      const res = await platform.request('/api/v1/webhooks/stripe', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'Stripe-Signature': late.header },
        body: late.payload,
      })
      expect(res.status).toBe(200)
    }
    expect(await count('settlements', { session_id: session.id })).toBe(1)
    expect(await count('refunds', { session_id: session.id })).toBe(0)
    const payment = await expectData(
      api(customer).GET('/api/v1/payments/{id}', { params: { path: { id: intent.payment_id } } }),
    )
    expect(payment).toMatchObject({
      status: 'succeeded',
      duplicate: false,
      refunded_amount: 0,
      receipt_number: confirmed.receipt_number,
    })
    const list = await expectData(payments(session.id, 10))
    expect(list.data).toHaveLength(1)
    expect(await fee(session.id, customer)).toMatchObject({ amount_paid: HOURLY, amount_due: 0 })
  })
})

describe('app payments that do not take the money', () => {
  it('a processing payment keeps the gate closed, and its late failure leaves the session owing', async () => {
    const { customer, plate } = await customerWithCar()
    const session = await enter(plate)
    const intent = await expectData(
      api(customer).POST('/api/v1/payments/create-intent', { body: { session_id: session.id } }),
      201,
    )
    stripeSays.set(intent.payment_intent_id, 'processing')
    const processing = await expectData(
      api(customer).POST('/api/v1/payments/confirm', {
        body: { payment_intent_id: intent.payment_intent_id },
      }),
    )
    expect(processing).toMatchObject({ status: 'processing' })
    expect(await validateExit(session.ticket)).toMatchObject({ is_paid: false, amount_due: HOURLY })
    await expectProblem(exitByTicket(session.ticket), 402)

    const failed = signedEvent(
      'payment_intent.payment_failed',
      intent.payment_intent_id,
      'requires_payment_method',
    )
    const res = await platform.request('/api/v1/webhooks/stripe', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Stripe-Signature': failed.header },
      body: failed.payload,
    })
    expect(res.status).toBe(200)
    expect(await count('settlements', { session_id: session.id })).toBe(0)
    await expectProblem(exitByTicket(session.ticket), 402)
    await expectData(
      api(operator).POST('/api/v1/payments', { body: { session_id: session.id, payment_method: 'cash' } }),
      201,
    )
    expect(await expectData(exitByTicket(session.ticket))).toMatchObject({ amount_paid: HOURLY })
  })

  it('an intent made before a full validation is not charged: confirm answers 409 with the new due', async () => {
    const { customer, plate } = await customerWithCar()
    const session = await enter(plate)
    const intent = await expectData(
      api(customer).POST('/api/v1/payments/create-intent', { body: { session_id: session.id } }),
      201,
    )
    await expectData(
      api(operator).POST('/api/v1/sessions/{id}/validations', {
        params: { path: { id: session.id } },
        body: { merchant: 'Cinema', kind: 'full', reference: 'ticket 4712' },
      }),
      201,
    )
    stripeSays.set(intent.payment_intent_id, 'succeeded')
    const refused = await expectProblem(
      api(customer).POST('/api/v1/payments/confirm', {
        body: { payment_intent_id: intent.payment_intent_id },
      }),
      409,
    )
    expect(refused).toMatchObject({ reason: 'amount_changed', amount_due: 0 })
    expect(await count('settlements', { session_id: session.id })).toBe(0)
    const exited = await expectData(exitByTicket(session.ticket))
    expect(exited).toMatchObject({ session: { fee_total: 0 }, amount_paid: 0 })
  })
})

describe('concurrent cash payments of one real session', () => {
  it('takes exactly one of 50, settles once, and lets the car out', async () => {
    const session = await enter()
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        api(operator)
          .POST('/api/v1/payments', {
            // Fifty kiosks, fifty keys: none of them is a retry of another.
            params: { header: { 'idempotency-key': `cash-${session.id}-${i}` } },
            body: { session_id: session.id, payment_method: 'cash', amount: HOURLY, tendered: 1000 },
          })
          .then(({ response, error }) => ({ status: response.status, problem: error })),
      ),
    )
    const statuses = results.map((r) => r.status)
    expect(statuses.filter((s) => s === 201)).toHaveLength(1)
    expect(statuses.filter((s) => s !== 201 && s !== 409)).toEqual([])
    for (const loser of results.filter((r) => r.status === 409)) {
      expect(loser.problem).toMatchObject({ code: 'CONFLICT', reason: 'already_paid', amount_due: 0 })
    }
    expect(await count('settlements', { session_id: session.id })).toBe(1)

    const exited = await expectData(exitByTicket(session.ticket))
    expect(exited).toMatchObject({ session: { status: 'closed' }, amount_paid: HOURLY })
    const list = await expectData(payments(session.id, 100))
    expect(list.data).toHaveLength(1)
    expect(list.data[0]).toMatchObject({
      status: 'succeeded',
      amount: HOURLY,
      tendered: 1000,
      change: HOURLY,
      payment_method: 'cash',
    })
  })
})

describe('discounts on a real session', () => {
  it('shows a 20% code as a negative discount line and lowers what is due', async () => {
    const { customer, plate } = await customerWithCar()
    const session = await enter(plate)
    const code = uniqueCode('twenty')
    await createDiscount({ code, discount_type: 'percentage', value: 20 })

    const redeemed = await expectData(
      api(customer).POST('/api/v1/sessions/{id}/discount', {
        params: { path: { id: session.id } },
        body: { code: code.toLowerCase() },
      }),
    )
    expect(redeemed).toMatchObject({ kind: 'percentage', value: 20, source: 'discount', ref: code })
    const after = await fee(session.id, customer)
    expect(after).toMatchObject({
      base_fee: HOURLY,
      discounts: HOURLY / 5,
      total: HOURLY - HOURLY / 5,
      amount_due: HOURLY - HOURLY / 5,
    })
    expect(after.breakdown).toEqual([
      expect.objectContaining({ kind: 'parking', amount: HOURLY }),
      expect.objectContaining({ kind: 'discount', amount: -HOURLY / 5 }),
    ])
    // The gate asks for the reduced amount, and takes it.
    expect(await expectProblem(exitByTicket(session.ticket), 402)).toMatchObject({
      code: 'PAYMENT_REQUIRED',
      amount_due: HOURLY - HOURLY / 5,
    })
    const payment = await expectData(
      api(operator).POST('/api/v1/payments', { body: { session_id: session.id, payment_method: 'card' } }),
      201,
    )
    expect(payment.amount).toBe(HOURLY - HOURLY / 5)
    await expectData(exitByTicket(session.ticket))
  })

  it('lets a car out without paying when free hours cover the stay', async () => {
    const session = await enter()
    const code = uniqueCode('free')
    await createDiscount({ code, discount_type: 'free_hours', value: 1 })
    await expectProblem(exitByTicket(session.ticket), 402)
    await expectData(
      api(operator).POST('/api/v1/sessions/{id}/discount', {
        params: { path: { id: session.id } },
        body: { code },
      }),
    )
    const covered = await fee(session.id)
    expect(covered).toMatchObject({ base_fee: HOURLY, total: 0, amount_due: 0, amount_paid: 0 })
    expect(covered.breakdown).toContainEqual(expect.objectContaining({ kind: 'discount', amount: -HOURLY }))
    expect(await validateExit(session.ticket)).toMatchObject({ is_paid: true, can_exit: true, amount_due: 0 })
    const exited = await expectData(exitByTicket(session.ticket))
    expect(exited).toMatchObject({ session: { status: 'closed', fee_total: 0 }, amount_paid: 0 })
    expect(await count('payments', { session_id: session.id })).toBe(0)
  })

  it("lets a car out without paying when a merchant's full validation covers the fee", async () => {
    const session = await enter()
    const validation = await expectData(
      api(operator).POST('/api/v1/sessions/{id}/validations', {
        params: { path: { id: session.id } },
        body: { merchant: 'Cinema', kind: 'full', reference: 'ticket 4711' },
      }),
      201,
    )
    expect(validation).toMatchObject({ session_id: session.id, kind: 'full' })
    const covered = await fee(session.id)
    expect(covered).toMatchObject({ base_fee: HOURLY, total: 0, amount_due: 0 })
    expect(covered.breakdown).toContainEqual(expect.objectContaining({ kind: 'validation', amount: -HOURLY }))
    const exited = await expectData(exitByTicket(session.ticket))
    expect(exited).toMatchObject({ session: { status: 'closed', fee_total: 0 }, amount_paid: 0 })
  })

  it('redeems a code with max_uses=1 for exactly one of 20 concurrent real sessions', async () => {
    const code = uniqueCode('once')
    await createDiscount({ code, discount_type: 'fixed_amount', value: 100, currency: 'USD', max_uses: 1 })
    const sessions = []
    for (let i = 0; i < 20; i++) sessions.push(await enter())
    const results = await Promise.all(
      sessions.map((s) =>
        api(operator)
          .POST('/api/v1/sessions/{id}/discount', { params: { path: { id: s.id } }, body: { code } })
          .then(({ response, error }) => ({ session: s, status: response.status, problem: error })),
      ),
    )
    const winners = results.filter((r) => r.status === 200)
    expect(winners).toHaveLength(1)
    const losers = results.filter((r) => r.status !== 200)
    expect(losers.map((r) => [r.status, r.problem?.reason])).toEqual(
      Array.from({ length: 19 }, () => [422, 'limit_reached']),
    )
    expect(await count('discount_redemptions', { code })).toBe(1)
    expect(
      await expectData(api(admin).GET('/api/v1/discounts/{id}', { params: { path: { id: code } } })),
    ).toMatchObject({ times_used: 1 })
    // Only the winner's fee is reduced.
    const fees = await Promise.all(sessions.map((s) => fee(s.id)))
    const reduced = fees.filter((f) => f.discounts > 0)
    expect(reduced.map((f) => [f.session_id, f.total])).toEqual([[winners[0]?.session.id, HOURLY - 100]])
    // Let the cars out, so the lot has room for the rest of the file.
    await Promise.all(
      sessions.map(async (s) => {
        await api(operator).POST('/api/v1/payments', { body: { session_id: s.id, payment_method: 'card' } })
        await expectData(exitByTicket(s.ticket))
      }),
    )
  })
})

describe('the lost ticket', () => {
  it('asks for the lost-ticket fee at the exit by plate, takes it, and itemises it', async () => {
    const session = await enter()
    const byPlate = () =>
      api(operator).POST('/api/v1/sessions/exit', {
        body: { license_plate: session.plate, lost_ticket: true },
      })
    const refused = await expectProblem(byPlate(), 402)
    expect(refused).toMatchObject({
      code: 'PAYMENT_REQUIRED',
      amount_due: HOURLY + LOST_TICKET_FEE,
      currency: 'USD',
      session_id: session.id,
    })
    const payment = await expectData(
      api(operator).POST('/api/v1/payments', {
        body: { session_id: session.id, payment_method: 'cash', amount: HOURLY + LOST_TICKET_FEE },
      }),
      201,
    )
    expect(payment.amount).toBe(HOURLY + LOST_TICKET_FEE)
    const exited = await expectData(byPlate())
    expect(exited).toMatchObject({
      session: { status: 'closed', lost_ticket: true, fee_total: HOURLY + LOST_TICKET_FEE },
      amount_paid: HOURLY + LOST_TICKET_FEE,
    })
    const line = { kind: 'lost_ticket', amount: LOST_TICKET_FEE }
    expect(exited.fee.breakdown).toContainEqual(expect.objectContaining(line))
    expect((await fee(session.id)).breakdown).toContainEqual(expect.objectContaining(line))
    const receipt = await expectData(
      api(operator).GET('/api/v1/payments/{id}/receipt', { params: { path: { id: payment.id } } }),
    )
    expect(receipt.lines).toContainEqual(expect.objectContaining(line))
  })
})

describe('the exit window', () => {
  const STEP = 100
  let windowless: TestPlatform
  let windowlessDb: Database
  let staff: Account
  let shortLot: TestLot

  beforeAll(async () => {
    windowless = await startTestPlatform({
      ...testAdmin,
      PAYMENT_EXIT_WINDOW_MINUTES: '0',
      JOBS_ENABLED: 'false',
    })
    windowlessDb = await connectDatabase(windowless.urls.mongodb)
    const root = await signInAdmin(windowless)
    staff = await createAccount(windowless, root, 'operator')
    shortLot = await createLot(windowless, root, { spaces: { STANDARD: 2 }, currency: 'USD' })
    await expectData(
      api(root, windowless).POST('/api/v1/rates', {
        body: {
          name: 'By the minute',
          lot_id: shortLot.lotId,
          rate_type: 'hourly',
          amount: STEP,
          step_minutes: 1,
          effective_from: '2024-01-01T00:00:00Z',
        },
      }),
      201,
    )
  }, 120_000)
  afterAll(async () => {
    await windowlessDb?.close()
    await windowless?.stop()
  })

  it('gives a paid session no time to leave with a 0-minute window: the fee grows and the gate asks again', async () => {
    const session = await enter(uniquePlate(), windowless, shortLot.lotId, staff)
    // Moved back in time: the car came in 55 s ago, so its second minute starts in about 5 s.
    const enteredAt = Date.now() - 55_000
    await windowlessDb
      .collection('sessions')
      .updateOne({ _id: session.id as never }, { $set: { entry_at: new Date(enteredAt) } })
    const paid = await expectData(
      api(staff, windowless).POST('/api/v1/payments', {
        body: { session_id: session.id, payment_method: 'cash' },
      }),
      201,
    )
    const paidAt = settledAt(paid)
    // One started minute, unless this machine took 5 s to take the payment.
    const stepsPaid = paid.amount / STEP
    expect(stepsPaid).toBe(Math.ceil((paidAt - enteredAt) / 60_000))

    // Through the service at chosen instants: with no window, the fee is priced up to "now", and
    // the deadline is the payment itself.
    const port = windowless.services.sessions.port
    const justAfter = await port.amountDue(session.id, new Date(paidAt + 1))
    expect(justAfter.exit_deadline?.getTime()).toBe(paidAt)
    const nextStep = enteredAt + stepsPaid * 60_000
    expect((await port.amountDue(session.id, new Date(nextStep - 1))).due).toBe(0)
    expect((await port.amountDue(session.id, new Date(nextStep + 1))).due).toBe(STEP)
    expect((await port.amountDue(session.id, new Date(nextStep + 10 * 60_000 + 1))).due).toBe(11 * STEP)

    // Through the gate, once the next minute has started.
    await sleep(Math.max(0, nextStep + 300 - Date.now()))
    expect(await validateExit(session.ticket, windowless)).toMatchObject({
      is_paid: false,
      can_exit: false,
      amount_due: STEP,
      time_remaining_minutes: 0,
    })
    const refused = await expectProblem(exitByTicket(session.ticket, windowless, staff), 402)
    expect(refused).toMatchObject({ code: 'PAYMENT_REQUIRED', amount_due: STEP, currency: 'USD' })
    // The difference is a second settlement of the session; then the gate opens.
    const more = await expectData(
      api(staff, windowless).POST('/api/v1/payments', {
        body: { session_id: session.id, payment_method: 'card' },
      }),
      201,
    )
    expect(more.amount).toBe(STEP)
    expect(await count('settlements', { session_id: session.id }, windowlessDb)).toBe(2)
    const exited = await expectData(exitByTicket(session.ticket, windowless, staff))
    expect(exited).toMatchObject({ amount_paid: (stepsPaid + 1) * STEP, session: { status: 'closed' } })
    // Up to a minute of waiting when a loaded machine took more than 5 s to take the payment.
  }, 100_000)

  it('keeps the paid fee for the 15 minutes of the default window, and only then lets it grow', async () => {
    const session = await enter()
    const paid = await expectData(
      api(operator).POST('/api/v1/payments', { body: { session_id: session.id, payment_method: 'cash' } }),
      201,
    )
    const paidAt = settledAt(paid)
    const port = platform.services.sessions.port
    const inWindow = await port.amountDue(session.id, new Date(paidAt + 14 * 60_000))
    expect(inWindow).toMatchObject({ due: 0, paid: HOURLY })
    expect(inWindow.exit_deadline?.getTime()).toBe(paidAt + 15 * 60_000)
    // An hour and a bit after the entry, past the window: a second hour is due.
    const entryAt = Date.parse(session.entry.session.entry_time)
    expect((await port.amountDue(session.id, new Date(entryAt + 61 * 60_000))).due).toBe(HOURLY)
    expect(await validateExit(session.ticket)).toMatchObject({ is_paid: true, time_remaining_minutes: 15 })
    await expectData(exitByTicket(session.ticket))
  })
})

describe('the agenda scheduler on FerretDB', () => {
  it('starts with the platform, schedules payments.reconcile, and stops cleanly', async () => {
    const started = Date.now()
    const scheduled = await startTestPlatform({ ...testAdmin, JOBS_ENABLED: 'true' })
    const jobsDb = await connectDatabase(scheduled.urls.mongodb)
    try {
      const jobs = await jobsDb.collection('jobs').find({ name: 'payments.reconcile' }).toArray()
      expect(jobs).toHaveLength(1)
      const nextRunAt = jobs[0]?.nextRunAt as Date
      expect(nextRunAt).toBeInstanceOf(Date)
      // Every minute, the first run a minute from the start (skipImmediate).
      expect(nextRunAt.getTime()).toBeGreaterThan(started)
      expect(nextRunAt.getTime()).toBeLessThanOrEqual(Date.now() + 61_000)
      expect(jobs[0]).toMatchObject({ type: 'single', repeatInterval: '1 minute' })
      expect(await scheduled.scheduler.runNow('payments.reconcile')).toMatchObject({ errors: 0 })
    } finally {
      await jobsDb.close()
      const stopping = Date.now()
      await scheduled.stop()
      expect(Date.now() - stopping).toBeLessThan(10_000)
    }
  }, 60_000)
})
