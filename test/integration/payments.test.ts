import { randomUUID } from 'node:crypto'
import Stripe from 'stripe'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { createPaymentsRepository } from '../../src/modules/payments/payments.repository.ts'
import { createPaymentsService, type PaymentsService } from '../../src/modules/payments/payments.service.ts'
import { redisReceiptNumbers } from '../../src/modules/payments/receipts.ts'
import {
  createStripeGateway,
  type GatewayIntent,
  type PaymentGateway,
} from '../../src/modules/payments/stripe.gateway.ts'
import type {
  AmountDue,
  DiscountsPort,
  SessionFacts,
  SessionsPort,
} from '../../src/modules/sessions/operations.contract.ts'
import { AppError } from '../../src/shared/errors.ts'
import { createIdempotencyStore } from '../../src/shared/idempotency.ts'
import { createLogger } from '../../src/shared/logger.ts'
import { connectDatabase, type Database } from '../../src/shared/mongo.ts'
import { connectRedis, type RedisClient } from '../../src/shared/redis.ts'
import { type Account, bearer, createAccount, jsonBody, signInAdmin, testAdmin } from '../harness/accounts.ts'
import { type Json, json } from '../harness/http.ts'
import { startTestPlatform, type TestPlatform } from '../harness/platform.ts'

// The payments rules against real services: FerretDB (the arbiter is an insert), Redis (receipt
// numbers) and stripe-mock (every Stripe call is made and checked by it). stripe-mock keeps no
// state, so the outcome of a confirmation or a lookup is told by the test where it matters.
// Sessions are an in-test SessionsPort: a fee of FEE owed until the ledger says it is paid.

const WEBHOOK_SECRET = 'whsec_payments_test_secret'
const FEE = 1500

let platform: TestPlatform
let db: Database
let redis: RedisClient
let admin: Account
let operator: Account
let customer: Account
let other: Account

const sessionsById = new Map<string, SessionFacts>()
let payments: PaymentsService
let gateway: PaymentGateway & {
  script: Map<string, GatewayIntent['status'] | 'declined'>
  /** Runs while Stripe is being asked to confirm this intent (the 1-3 s of a real call). */
  during: Map<string, () => Promise<void>>
}

function newSession(userId: string | null = null, fee = FEE): SessionFacts & { fee: number } {
  const id = randomUUID()
  const facts = {
    id,
    ticket_number: `TKT-${id.slice(0, 8).toUpperCase()}`,
    lot_id: randomUUID(),
    zone_id: null,
    space_id: null,
    plate: 'AB123C',
    vehicle_id: null,
    vehicle_type: 'standard',
    user_id: userId,
    status: 'active' as const,
    entry_at: new Date(Date.now() - 2 * 3_600_000),
    exit_at: null,
    currency: 'USD',
    reservation_id: null,
    fee,
  }
  sessionsById.set(id, facts)
  return facts
}

const sessions: SessionsPort = {
  async facts(id) {
    const facts = sessionsById.get(id)
    if (!facts) throw new AppError('NOT_FOUND', `No session ${id}`)
    return facts
  },
  async factsByTicket(ticket) {
    const facts = [...sessionsById.values()].find((s) => s.ticket_number === ticket)
    if (!facts) throw new AppError('NOT_FOUND', `No ticket ${ticket}`)
    return facts
  },
  async amountDue(id): Promise<AmountDue> {
    const facts = (await sessions.facts(id)) as SessionFacts & { fee: number }
    const ledger = await payments.ledger.paidFor(id)
    const discount = discountsBySession.get(id) ?? 0
    const fee = Math.max(0, facts.fee - discount)
    const due = Math.max(0, fee - ledger.paid)
    return {
      session: facts,
      quote: {
        currency: 'USD',
        duration_minutes: 120,
        base_fee: facts.fee,
        discounts: discount,
        tax: 0,
        total: fee,
        breakdown: [{ kind: 'parking', description: '2 h at 7.50', amount: facts.fee }],
        tariff_id: null,
        tariff_name: null,
      },
      paid: ledger.paid,
      due,
      currency: 'USD',
      exit_deadline:
        ledger.last_paid_at && due === 0 ? new Date(ledger.last_paid_at.getTime() + 15 * 60_000) : null,
      settlements: ledger.settlements,
    }
  },
}

const discountsBySession = new Map<string, number>()
const discounts: DiscountsPort = {
  async redeem({ code, sessionId }) {
    if (code.toUpperCase() !== 'HALF') throw new AppError('NOT_FOUND', `No discount ${code}`)
    discountsBySession.set(sessionId, FEE / 2)
    return { kind: 'fixed', value: FEE / 2, source: 'discount', ref: 'HALF', label: 'Half off' }
  },
  async adjustmentsOf() {
    return []
  },
}

const staff = (account: Account) => ({ userId: account.id, role: account.role })

beforeAll(async () => {
  const services = inject('services')
  platform = await startTestPlatform(
    {
      ...testAdmin,
      STRIPE_API_URL: services.stripe,
      STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
      JOBS_ENABLED: 'false',
    },
    {},
  )
  db = await connectDatabase(platform.urls.mongodb)
  redis = await connectRedis(platform.urls.redis, () => {}, `t_pay_${randomUUID().slice(0, 8)}:`)
  const real = createStripeGateway({
    secretKey: 'sk_test_payments',
    apiUrl: services.stripe,
    webhookSecret: WEBHOOK_SECRET,
    webhookToleranceSeconds: 300,
    timeoutMs: 5_000,
  })
  // stripe-mock answers every confirm and lookup with a fixed status: the script says what
  // Stripe would have said for an intent, after stripe-mock took the call.
  // 'declined' is a card Stripe refuses: a 402 from confirm, requires_payment_method on a lookup.
  const script = new Map<string, GatewayIntent['status'] | 'declined'>()
  const during = new Map<string, () => Promise<void>>()
  const told = (intent: GatewayIntent): GatewayIntent => {
    const said = script.get(intent.id) ?? intent.status
    return { ...intent, status: said === 'declined' ? 'requires_payment_method' : said }
  }
  gateway = {
    ...real,
    script,
    during,
    confirmIntent: async (id, ...rest) => {
      const intent = await real.confirmIntent(id, ...rest)
      await during.get(id)?.()
      if (script.get(id) === 'declined') {
        throw new AppError('PAYMENT_REQUIRED', 'The card was declined: test', {
          extensions: { decline_code: 'card_declined' },
        })
      }
      return told(intent)
    },
    retrieveIntent: async (id) => told(await real.retrieveIntent(id)),
  }
  payments = createPaymentsService({
    repo: createPaymentsRepository(db),
    gateway,
    sessions,
    discounts,
    receipts: redisReceiptNumbers(redis),
    idempotency: createIdempotencyStore(db),
    logger: createLogger('silent'),
    settings: { reconcileAfterMs: 60_000 },
  })
  admin = await signInAdmin(platform)
  operator = await createAccount(platform, admin, 'operator')
  customer = await createAccount(platform, admin, 'customer')
  other = await createAccount(platform, admin, 'customer')
}, 60_000)

afterAll(async () => {
  await redis?.quit()
  await db?.close()
  await platform?.stop()
})

const failure = async (work: Promise<unknown>): Promise<AppError> => {
  const error = await work.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(error).toBeInstanceOf(AppError)
  return error as AppError
}

const count = (collection: string, filter: Record<string, unknown>) =>
  db.collection(collection).countDocuments(filter)

describe('cash and card payments', () => {
  it('records a cash payment with change and a card payment, each settling its session once', async () => {
    const cashSession = newSession()
    const cash = await payments.pay(
      staff(operator),
      { session_id: cashSession.id, payment_method: 'cash', tendered: 2000 },
      undefined,
    )
    expect(cash).toMatchObject({
      session_id: cashSession.id,
      payment_method: 'cash',
      amount: FEE,
      currency: 'USD',
      tendered: 2000,
      change: 500,
      status: 'succeeded',
      receipt_number: expect.stringMatching(/^RCP-\d{8}-\d{6}$/),
    })
    expect(await payments.ledger.paidFor(cashSession.id)).toMatchObject({ paid: FEE, settlements: 1 })

    const cardSession = newSession()
    const card = await payments.pay(
      staff(admin),
      { session_id: cardSession.id, payment_method: 'card', amount: FEE },
      undefined,
    )
    expect(card).toMatchObject({ payment_method: 'card', change: null, status: 'succeeded' })
    expect(card.receipt_number).not.toBe(cash.receipt_number)
  })

  it('answers the amount rules: under, over, tendered too little, nothing due, paying twice', async () => {
    const s = newSession()
    const under = await failure(
      payments.pay(staff(operator), { session_id: s.id, payment_method: 'card', amount: FEE - 1 }, undefined),
    )
    expect(under).toMatchObject({
      code: 'UNPROCESSABLE',
      extensions: { amount_due: FEE, reason: 'underpayment' },
    })
    const over = await failure(
      payments.pay(staff(operator), { session_id: s.id, payment_method: 'card', amount: FEE + 1 }, undefined),
    )
    expect(over).toMatchObject({
      code: 'UNPROCESSABLE',
      extensions: { amount_due: FEE, reason: 'overpayment' },
    })
    const little = await failure(
      payments.pay(
        staff(operator),
        { session_id: s.id, payment_method: 'cash', tendered: FEE - 1 },
        undefined,
      ),
    )
    expect(little).toMatchObject({ code: 'UNPROCESSABLE', extensions: { reason: 'tendered_too_little' } })
    const cardTendered = await failure(
      payments.pay(staff(operator), { session_id: s.id, payment_method: 'card', tendered: FEE }, undefined),
    )
    expect(cardTendered.code).toBe('UNPROCESSABLE')
    expect(await count('settlements', { session_id: s.id })).toBe(0)

    await payments.pay(staff(operator), { session_id: s.id, payment_method: 'card' }, undefined)
    const twice = await failure(
      payments.pay(staff(operator), { session_id: s.id, payment_method: 'cash' }, undefined),
    )
    expect(twice).toMatchObject({ code: 'CONFLICT', extensions: { amount_due: 0, reason: 'already_paid' } })

    const free = newSession(null, 0)
    const nothing = await failure(
      payments.pay(staff(operator), { session_id: free.id, payment_method: 'cash' }, undefined),
    )
    expect(nothing).toMatchObject({ code: 'CONFLICT', extensions: { amount_due: 0, reason: 'nothing_due' } })
    expect(await count('payments', { session_id: { $in: [s.id, free.id] } })).toBe(1)
  })

  it('redeems a discount code first and takes the recomputed due', async () => {
    const s = newSession()
    const paid = await payments.pay(
      staff(operator),
      { session_id: s.id, payment_method: 'cash', discount_code: 'half' },
      undefined,
    )
    expect(paid).toMatchObject({ amount: FEE / 2, discount_code: 'HALF' })
  })

  it('answers a retry with the same Idempotency-Key with the same payment, another body with 422', async () => {
    const s = newSession()
    const key = `pay-${randomUUID()}`
    const body = { session_id: s.id, payment_method: 'cash' as const, tendered: 2000 }
    const first = await payments.pay(staff(operator), body, key)
    const again = await payments.pay(staff(operator), body, key)
    expect(again).toEqual(first)
    const changed = await failure(payments.pay(staff(operator), { ...body, tendered: 5000 }, key))
    expect(changed.code).toBe('UNPROCESSABLE')
    expect(await count('payments', { session_id: s.id })).toBe(1)
  })

  it('settles a session once under 50 concurrent payments: one settlement fact, one payment', async () => {
    const s = newSession()
    const results = await Promise.allSettled(
      Array.from({ length: 50 }, (_, i) =>
        payments.pay(
          staff(operator),
          { session_id: s.id, payment_method: i % 2 ? 'cash' : 'card' },
          undefined,
        ),
      ),
    )
    const won = results.filter((r) => r.status === 'fulfilled')
    const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected')
    expect(won).toHaveLength(1)
    expect(lost.every((r) => r.reason instanceof AppError && r.reason.code === 'CONFLICT')).toBe(true)
    expect(await count('settlements', { session_id: s.id })).toBe(1)
    expect(await count('payments', { session_id: s.id })).toBe(1)
    expect(await payments.ledger.paidFor(s.id)).toMatchObject({ paid: FEE, settlements: 1 })
  })

  it('keeps customers to mobile payments of their own sessions', async () => {
    const s = newSession(customer.id)
    const cash = await failure(
      payments.pay(staff(customer), { session_id: s.id, payment_method: 'cash' }, undefined),
    )
    expect(cash.code).toBe('FORBIDDEN')
    const foreign = await failure(
      payments.pay(staff(other), { session_id: s.id, payment_method: 'mobile' }, undefined),
    )
    expect(foreign.code).toBe('NOT_FOUND')
  })
})

describe('Stripe intents and confirmation', () => {
  it('creates one intent per settlement and amount, confirms it, and settles once', async () => {
    const s = newSession(customer.id)
    const intent = await payments.createIntent(staff(customer), { session_id: s.id })
    expect(intent).toMatchObject({
      payment_intent_id: expect.stringMatching(/^pi_/),
      client_secret: expect.any(String),
      amount: FEE,
      currency: 'USD',
      status: 'pending',
    })
    // Asked again: the same intent (the same record key as Stripe's idempotency key).
    expect((await payments.createIntent(staff(customer), { session_id: s.id })).payment_id).toBe(
      intent.payment_id,
    )
    // Not settled before the money is taken.
    expect(await payments.ledger.paidFor(s.id)).toMatchObject({ paid: 0, settlements: 0 })

    gateway.script.set(intent.payment_intent_id, 'succeeded')
    const confirmed = await payments.confirm(staff(customer), {
      payment_intent_id: intent.payment_intent_id,
      payment_method: 'pm_card_visa',
    })
    expect(confirmed).toMatchObject({ status: 'succeeded', receipt_number: expect.any(String) })
    // A second confirmation is the same payment, not a second effect.
    expect(
      (await payments.confirm(staff(customer), { payment_intent_id: intent.payment_intent_id }))
        .receipt_number,
    ).toBe(confirmed.receipt_number)
    expect(await count('settlements', { session_id: s.id })).toBe(1)
    expect(await payments.ledger.paidFor(s.id)).toMatchObject({ paid: FEE, settlements: 1 })
  })

  it('gives the settlement back when the confirmation does not take the money', async () => {
    const s = newSession(customer.id)
    const intent = await payments.createIntent(staff(customer), { session_id: s.id })
    // stripe-mock's own answer: requires_payment_method.
    const pending = await payments.confirm(staff(customer), { payment_intent_id: intent.payment_intent_id })
    expect(pending.status).toBe('pending')
    expect(await count('settlements', { session_id: s.id })).toBe(0)
    // The session can be paid another way.
    await payments.pay(staff(operator), { session_id: s.id, payment_method: 'cash' }, undefined)
    expect(await count('settlements', { session_id: s.id })).toBe(1)
  })

  it('answers 503 and records nothing as paid when Stripe is unreachable', async () => {
    const down = createPaymentsService({
      repo: createPaymentsRepository(db),
      gateway: createStripeGateway({
        secretKey: 'sk_test_down',
        apiUrl: 'http://127.0.0.1:1',
        webhookSecret: WEBHOOK_SECRET,
        webhookToleranceSeconds: 300,
        timeoutMs: 1_000,
      }),
      sessions,
      discounts,
      receipts: redisReceiptNumbers(redis),
      idempotency: createIdempotencyStore(db),
      logger: createLogger('silent'),
      settings: { reconcileAfterMs: 0 },
    })
    const s = newSession(customer.id)
    const error = await failure(down.createIntent(staff(customer), { session_id: s.id }))
    expect(error.code).toBe('DEPENDENCY_UNAVAILABLE')
    expect(await count('payments', { session_id: s.id })).toBe(0)
    expect(await count('settlements', { session_id: s.id })).toBe(0)
  })
})

function signed(event: Json, secret = WEBHOOK_SECRET, timestamp = Math.floor(Date.now() / 1000)) {
  const payload = JSON.stringify(event)
  return { payload, header: Stripe.webhooks.generateTestHeaderString({ payload, secret, timestamp }) }
}

function intentEvent(type: string, intentId: string, status: string) {
  return {
    id: `evt_${randomUUID().replaceAll('-', '')}`,
    object: 'event',
    type,
    data: { object: { id: intentId, object: 'payment_intent', status, metadata: {} } },
  }
}

function shuffled<T>(items: T[]): T[] {
  const copy = [...items]
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[copy[i], copy[j]] = [copy[j] as T, copy[i] as T]
  }
  return copy
}

describe('the Stripe webhook', () => {
  it('settles once from one event delivered 5 times, shuffled with its predecessors and a late failure', async () => {
    for (let round = 0; round < 3; round++) {
      const s = newSession(customer.id)
      const intent = await payments.createIntent(staff(customer), { session_id: s.id })
      const pi = intent.payment_intent_id
      const succeeded = signed(intentEvent('payment_intent.succeeded', pi, 'succeeded'))
      const deliveries = shuffled([
        signed(intentEvent('payment_intent.processing', pi, 'processing')),
        signed(intentEvent('payment_intent.payment_failed', pi, 'requires_payment_method')),
        ...Array.from({ length: 5 }, () => succeeded),
      ])
      await Promise.all(deliveries.map((d) => payments.handleEvent(d.payload, d.header)))
      expect(await count('settlements', { session_id: s.id })).toBe(1)
      expect(await count('refunds', { session_id: s.id })).toBe(0)
      expect(await payments.get(staff(admin), intent.payment_id)).toMatchObject({
        status: 'succeeded',
        receipt_number: expect.any(String),
      })
      expect(await payments.ledger.paidFor(s.id)).toMatchObject({ paid: FEE, settlements: 1 })
    }
  })

  it('refunds a second successful intent for a session already settled, and marks it', async () => {
    const s = newSession(customer.id)
    const intent = await payments.createIntent(staff(customer), { session_id: s.id })
    await payments.pay(staff(operator), { session_id: s.id, payment_method: 'cash' }, undefined)
    const late = signed(intentEvent('payment_intent.succeeded', intent.payment_intent_id, 'succeeded'))
    await Promise.all([1, 2, 3].map(() => payments.handleEvent(late.payload, late.header)))
    expect(await count('settlements', { session_id: s.id })).toBe(1)
    expect(await count('refunds', { payment_id: intent.payment_id })).toBe(1)
    expect(await payments.get(staff(admin), intent.payment_id)).toMatchObject({
      duplicate: true,
      status: 'refunded',
      refunded_amount: FEE,
    })
    expect(await payments.ledger.paidFor(s.id)).toMatchObject({ paid: FEE, settlements: 1 })
  })

  it('refuses bad, missing and stale signatures with a 400 and no effect', async () => {
    const s = newSession(customer.id)
    const intent = await payments.createIntent(staff(customer), { session_id: s.id })
    const event = intentEvent('payment_intent.succeeded', intent.payment_intent_id, 'succeeded')
    const bad = signed(event, 'whsec_someone_else')
    const stale = signed(event, WEBHOOK_SECRET, Math.floor(Date.now() / 1000) - 3_600)
    const good = signed(event)
    const post = (payload: string, header?: string) =>
      platform.request('/api/v1/webhooks/stripe', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', ...(header ? { 'Stripe-Signature': header } : {}) },
        body: payload,
      })
    for (const res of [
      await post(bad.payload, bad.header),
      await post(stale.payload, stale.header),
      await post(good.payload),
      // A body changed after signing.
      await post(good.payload.replace('succeeded', 'processing'), good.header),
    ]) {
      expect(res.status).toBe(400)
      expect(await json(res)).toMatchObject({ code: 'VALIDATION_FAILED' })
    }
    expect(await count('stripe_events', { _id: event.id })).toBe(0)
    expect(await count('settlements', { session_id: s.id })).toBe(0)
    // The same event, signed right, is taken (the platform knows no such intent: no effect there).
    const ok = await post(good.payload, good.header)
    expect(ok.status).toBe(200)
    expect(await json(ok)).toEqual({ received: true, duplicate: false })
  })
})

describe('refunds and receipts', () => {
  it('refunds in part, then the rest, never more than what remains', async () => {
    const s = newSession()
    const paid = await payments.pay(staff(operator), { session_id: s.id, payment_method: 'card' }, undefined)
    const part = await payments.refund(staff(operator), paid.id, { amount: 500, reason: 'barrier fault' })
    expect(part).toMatchObject({
      amount: 500,
      payment: { status: 'partially_refunded', refunded_amount: 500 },
    })
    const over = await failure(
      payments.refund(staff(operator), paid.id, { amount: 1001, reason: 'too much' }),
    )
    expect(over).toMatchObject({ code: 'UNPROCESSABLE', extensions: { refundable: 1000 } })
    const rest = await payments.refund(staff(admin), paid.id, { reason: 'the rest' })
    expect(rest).toMatchObject({ amount: 1000, payment: { status: 'refunded', refunded_amount: FEE } })
    expect((await failure(payments.refund(staff(admin), paid.id, { reason: 'again' }))).code).toBe(
      'UNPROCESSABLE',
    )
    expect(await payments.ledger.paidFor(s.id)).toMatchObject({ paid: 0, settlements: 1 })
  })

  it('never refunds more than was paid under concurrent refunds', async () => {
    const s = newSession()
    const paid = await payments.pay(staff(operator), { session_id: s.id, payment_method: 'card' }, undefined)
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, () =>
        payments.refund(staff(operator), paid.id, { amount: 400, reason: 'x' }),
      ),
    )
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(3)
    expect((await payments.get(staff(admin), paid.id)).refunded_amount).toBe(1200)
  })

  it('refunds a Stripe payment at Stripe', async () => {
    const s = newSession(customer.id)
    const intent = await payments.createIntent(staff(customer), { session_id: s.id })
    gateway.script.set(intent.payment_intent_id, 'succeeded')
    await payments.confirm(staff(customer), { payment_intent_id: intent.payment_intent_id })
    const refund = await payments.refund(staff(operator), intent.payment_id, { amount: 300, reason: 'late' })
    expect(refund.provider_refund_id).toMatch(/^re_/)
  })

  it('numbers receipts uniquely and shows the stay, the lines, the payment and the change', async () => {
    const numbers = new Set<string>()
    for (let i = 0; i < 5; i++) {
      const s = newSession()
      const paid = await payments.pay(
        staff(operator),
        { session_id: s.id, payment_method: 'cash', tendered: 2000 },
        undefined,
      )
      const receipt = await payments.receipt(staff(operator), paid.id)
      expect(receipt).toMatchObject({
        receipt_number: paid.receipt_number,
        ticket_number: s.ticket_number,
        lot_id: s.lot_id,
        duration_minutes: 120,
        lines: [{ kind: 'parking', amount: FEE }],
        paid: FEE,
        payment_method: 'cash',
        change: 500,
      })
      numbers.add(receipt.receipt_number)
    }
    expect(numbers.size).toBe(5)
  })
})

describe('a refund whose answer from Stripe was lost', () => {
  // Stripe took the refund, but the answer never came back (a timeout): a 503 to the caller.
  const lossy = () =>
    createPaymentsService({
      repo: createPaymentsRepository(db),
      gateway: {
        ...gateway,
        refund: async (input) => {
          await gateway.refund(input)
          throw new AppError('DEPENDENCY_UNAVAILABLE', 'The payment provider is unavailable; retry shortly')
        },
      },
      sessions,
      discounts,
      receipts: redisReceiptNumbers(redis),
      idempotency: createIdempotencyStore(db),
      logger: createLogger('silent'),
      settings: { reconcileAfterMs: 0 },
    })
  const paidByApp = async () => {
    const s = newSession(customer.id)
    const intent = await payments.createIntent(staff(customer), { session_id: s.id })
    gateway.script.set(intent.payment_intent_id, 'succeeded')
    await payments.confirm(staff(customer), { payment_intent_id: intent.payment_intent_id })
    return intent.payment_id
  }

  it('is kept, in doubt; the same request again is answered by it, not refunded twice', async () => {
    const id = await paidByApp()
    const lost = await failure(lossy().refund(staff(operator), id, { amount: 300, reason: 'late' }))
    expect(lost.code).toBe('DEPENDENCY_UNAVAILABLE')
    expect(await count('refunds', { payment_id: id, provider_refund_id: null })).toBe(1)
    expect(await payments.get(staff(admin), id)).toMatchObject({ refunded_amount: 300 })

    const again = await payments.refund(staff(operator), id, { amount: 300, reason: 'late' })
    expect(again).toMatchObject({ amount: 300, provider_refund_id: expect.stringMatching(/^re_/) })
    expect(await count('refunds', { payment_id: id })).toBe(1)
    expect(await payments.get(staff(admin), id)).toMatchObject({ refunded_amount: 300 })
  })

  it('is asked about again by the reconciliation, with its own key', async () => {
    const id = await paidByApp()
    await failure(lossy().refund(staff(operator), id, { reason: 'all of it' }))
    expect(await count('refunds', { payment_id: id, provider_refund_id: null })).toBe(1)
    expect((await payments.reconcile(0)).refunds).toBeGreaterThanOrEqual(1)
    expect(await count('refunds', { payment_id: id, provider_refund_id: /^re_/ })).toBe(1)
    expect(await payments.get(staff(admin), id)).toMatchObject({ status: 'refunded', refunded_amount: FEE })
  })
})

describe('validate-exit and reconciliation', () => {
  it('tells a gate whether a ticket may leave, and for how long', async () => {
    const s = newSession()
    expect(await payments.validateExit(s.ticket_number)).toMatchObject({
      is_paid: false,
      can_exit: false,
      amount_due: FEE,
      time_remaining_minutes: null,
    })
    await payments.pay(staff(operator), { session_id: s.id, payment_method: 'cash' }, undefined)
    expect(await payments.validateExit(s.ticket_number)).toMatchObject({
      is_paid: true,
      can_exit: true,
      amount_due: 0,
      time_remaining_minutes: 15,
    })
  })

  it('settles a payment whose webhook never came, and a second run changes nothing', async () => {
    const s = newSession(customer.id)
    const intent = await payments.createIntent(staff(customer), { session_id: s.id })
    gateway.script.set(intent.payment_intent_id, 'succeeded')
    // Not old enough yet.
    await payments.reconcile(60_000)
    expect(await count('settlements', { session_id: s.id })).toBe(0)
    const first = await payments.reconcile(0)
    expect(first.settled).toBeGreaterThanOrEqual(1)
    expect(await payments.get(staff(admin), intent.payment_id)).toMatchObject({ status: 'succeeded' })
    await payments.reconcile(0)
    expect(await count('settlements', { session_id: s.id })).toBe(1)
  })

  it('reaches a lost webhook behind more than a page of abandoned intents, and cancels those', async () => {
    const longAgo = new Date(Date.now() - 2 * 3_600_000)
    const s = newSession(customer.id)
    const stale: string[] = []
    for (let chunk = 0; chunk < 11; chunk++) {
      await Promise.all(
        Array.from({ length: 10 }, async () => {
          const abandoned = await payments.createIntent(staff(customer), {
            session_id: newSession(customer.id).id,
          })
          await db
            .collection('payments')
            .updateOne({ _id: abandoned.payment_id as never }, { $set: { created_at: longAgo } })
          stale.push(abandoned.payment_id)
        }),
      )
    }
    // Created after those: a later `_id`. Its webhook was lost; Stripe says it succeeded.
    const lost = await payments.createIntent(staff(customer), { session_id: s.id })
    gateway.script.set(lost.payment_intent_id, 'succeeded')
    const run = await payments.reconcile(0)
    expect(await payments.get(staff(admin), lost.payment_id)).toMatchObject({ status: 'succeeded' })
    expect(await payments.ledger.paidFor(s.id)).toMatchObject({ paid: FEE })
    expect(run.abandoned).toBeGreaterThanOrEqual(110)
    expect(await count('payments', { _id: { $in: stale }, status: 'canceled' })).toBe(110)
    // Canceled, they leave the work list.
    expect((await payments.reconcile(0)).abandoned).toBe(0)
  }, 120_000)

  it('runs the reconciliation as a job through the scheduler', async () => {
    expect(await platform.scheduler.runNow('payments.reconcile')).toMatchObject({
      checked: expect.any(Number),
    })
  })
})

describe('money counts once it moved', () => {
  const post = (event: Json) => {
    const { payload, header } = signed(event)
    return payments.handleEvent(payload, header)
  }

  it('a processing payment that then fails gives its settlement back: the session owes and can be paid', async () => {
    const s = newSession(customer.id)
    const intent = await payments.createIntent(staff(customer), { session_id: s.id })
    gateway.script.set(intent.payment_intent_id, 'processing')
    const processing = await payments.confirm(staff(customer), {
      payment_intent_id: intent.payment_intent_id,
    })
    expect(processing.status).toBe('processing')
    // The claim is held (a second payer waits) but nothing is paid yet: the gate stays closed.
    expect(await payments.ledger.paidFor(s.id)).toMatchObject({ paid: 0, settlements: 0 })
    expect(await payments.validateExit(s.ticket_number)).toMatchObject({ is_paid: false, amount_due: FEE })
    const blocked = await failure(
      payments.pay(staff(operator), { session_id: s.id, payment_method: 'cash' }, undefined),
    )
    expect(blocked.code).toBe('CONFLICT')

    await post(
      intentEvent('payment_intent.payment_failed', intent.payment_intent_id, 'requires_payment_method'),
    )
    expect(await payments.get(staff(admin), intent.payment_id)).toMatchObject({ status: 'failed' })
    expect(await count('settlements', { session_id: s.id })).toBe(0)
    expect(await payments.validateExit(s.ticket_number)).toMatchObject({ is_paid: false, amount_due: FEE })
    const cash = await payments.pay(staff(operator), { session_id: s.id, payment_method: 'cash' }, undefined)
    expect(cash.status).toBe('succeeded')
    expect(await payments.ledger.paidFor(s.id)).toMatchObject({ paid: FEE, settlements: 1 })
  })

  it('a confirmation in flight does not open the gate, and a decline leaves the session owing', async () => {
    const s = newSession(customer.id)
    const intent = await payments.createIntent(staff(customer), { session_id: s.id })
    gateway.script.set(intent.payment_intent_id, 'declined')
    let seen: unknown
    gateway.during.set(intent.payment_intent_id, async () => {
      seen = await payments.validateExit(s.ticket_number)
    })
    const declined = await failure(
      payments.confirm(staff(customer), { payment_intent_id: intent.payment_intent_id }),
    )
    expect(declined.code).toBe('PAYMENT_REQUIRED')
    expect(seen).toMatchObject({ is_paid: false, can_exit: false, amount_due: FEE })
    expect(await payments.ledger.paidFor(s.id)).toMatchObject({ paid: 0 })
  })

  it('a reconciled cancellation gives the claim back too', async () => {
    const s = newSession(customer.id)
    const intent = await payments.createIntent(staff(customer), { session_id: s.id })
    gateway.script.set(intent.payment_intent_id, 'processing')
    await payments.confirm(staff(customer), { payment_intent_id: intent.payment_intent_id })
    expect(await count('settlements', { session_id: s.id })).toBe(1)
    gateway.script.set(intent.payment_intent_id, 'canceled')
    await payments.reconcile(0)
    expect(await payments.get(staff(admin), intent.payment_id)).toMatchObject({ status: 'canceled' })
    expect(await count('settlements', { session_id: s.id })).toBe(0)
  })
})

describe('an intent is charged for what is due', () => {
  it('refuses to confirm an intent whose due changed since, cancels it, and a new intent takes the new due', async () => {
    const s = newSession(customer.id)
    const intent = await payments.createIntent(staff(customer), { session_id: s.id })
    discountsBySession.set(s.id, FEE) // a full merchant validation since
    gateway.script.set(intent.payment_intent_id, 'succeeded')
    const refused = await failure(
      payments.confirm(staff(customer), { payment_intent_id: intent.payment_intent_id }),
    )
    expect(refused).toMatchObject({
      code: 'CONFLICT',
      extensions: { reason: 'amount_changed', amount_due: 0 },
    })
    expect(await payments.get(staff(admin), intent.payment_id)).toMatchObject({ status: 'canceled' })
    expect(await count('settlements', { session_id: s.id })).toBe(0)

    discountsBySession.set(s.id, FEE / 2)
    const half = await payments.createIntent(staff(customer), { session_id: s.id })
    expect(half).toMatchObject({ amount: FEE / 2, status: 'pending' })
    gateway.script.set(half.payment_intent_id, 'succeeded')
    expect(
      await payments.confirm(staff(customer), { payment_intent_id: half.payment_intent_id }),
    ).toMatchObject({ status: 'succeeded', amount: FEE / 2 })
    expect(await payments.ledger.paidFor(s.id)).toMatchObject({ paid: FEE / 2 })
  })

  it('refunds what a webhook-settled intent took above the due at the time of the claim, once', async () => {
    const s = newSession(customer.id)
    const intent = await payments.createIntent(staff(customer), { session_id: s.id })
    discountsBySession.set(s.id, FEE / 2)
    const succeeded = signed(intentEvent('payment_intent.succeeded', intent.payment_intent_id, 'succeeded'))
    await Promise.all([1, 2, 3].map(() => payments.handleEvent(succeeded.payload, succeeded.header)))
    expect(await payments.get(staff(admin), intent.payment_id)).toMatchObject({
      status: 'partially_refunded',
      amount: FEE,
      refunded_amount: FEE / 2,
    })
    expect(await count('refunds', { payment_id: intent.payment_id, provider_refund_id: /^re_/ })).toBe(1)
    expect(await payments.ledger.paidFor(s.id)).toMatchObject({ paid: FEE / 2, settlements: 1 })
    expect(await payments.validateExit(s.ticket_number)).toMatchObject({ is_paid: true, amount_due: 0 })
  })
})

describe('a declined card', () => {
  it('does not block the app: a new intent can be made after a failure, and it settles', async () => {
    const s = newSession(customer.id)
    const first = await payments.createIntent(staff(customer), { session_id: s.id })
    gateway.script.set(first.payment_intent_id, 'declined')
    const declined = await failure(
      payments.confirm(staff(customer), { payment_intent_id: first.payment_intent_id }),
    )
    expect(declined.code).toBe('PAYMENT_REQUIRED')
    expect(await payments.get(staff(customer), first.payment_id)).toMatchObject({ status: 'failed' })

    const second = await payments.createIntent(staff(customer), { session_id: s.id })
    expect(second).toMatchObject({ status: 'pending', amount: FEE })
    expect(second.payment_id).not.toBe(first.payment_id)
    expect(second.payment_intent_id).not.toBe(first.payment_intent_id)
    // Asked again before it is confirmed: the same second intent.
    expect((await payments.createIntent(staff(customer), { session_id: s.id })).payment_id).toBe(
      second.payment_id,
    )
    gateway.script.set(second.payment_intent_id, 'succeeded')
    expect(
      await payments.confirm(staff(customer), { payment_intent_id: second.payment_intent_id }),
    ).toMatchObject({ status: 'succeeded' })
    expect(await payments.ledger.paidFor(s.id)).toMatchObject({ paid: FEE, settlements: 1 })
  })
})

describe('Idempotency-Key retries', () => {
  it('completes a cash payment whose process died after taking the settlement, from its own fact', async () => {
    const s = newSession()
    const key = `crash-${randomUUID()}`
    const body = { session_id: s.id, payment_method: 'cash' as const, tendered: 2000 }
    const repo = createPaymentsRepository(db)
    const crashing = createPaymentsService({
      repo: {
        ...repo,
        insertPayment: async () => {
          throw new Error('the process died here')
        },
      },
      gateway,
      sessions,
      discounts,
      receipts: redisReceiptNumbers(redis),
      idempotency: createIdempotencyStore(db),
      logger: createLogger('silent'),
      settings: { reconcileAfterMs: 60_000 },
    })
    await expect(crashing.pay(staff(operator), body, key)).rejects.toThrow('the process died here')
    expect(await count('settlements', { session_id: s.id })).toBe(1)

    const retried = await payments.pay(staff(operator), body, key)
    expect(retried).toMatchObject({ status: 'succeeded', amount: FEE, change: 500 })
    const fact = await db.collection('settlements').findOne({ session_id: s.id })
    expect(fact).toMatchObject({ payment_id: retried.id, receipt_number: retried.receipt_number })
    expect(await count('payments', { session_id: s.id })).toBe(1)
    expect(await payments.ledger.paidFor(s.id)).toMatchObject({ paid: FEE, settlements: 1 })
    expect(await payments.pay(staff(operator), body, key)).toEqual(retried)
  })

  it('answers concurrent requests with one key with the one payment, and keeps the key', async () => {
    const s = newSession()
    const key = `twins-${randomUUID()}`
    const body = { session_id: s.id, payment_method: 'card' as const }
    const results = await Promise.allSettled(
      Array.from({ length: 6 }, () => payments.pay(staff(operator), body, key)),
    )
    const ids = new Set(results.map((r) => (r.status === 'fulfilled' ? r.value.id : String(r.reason))))
    expect(ids.size).toBe(1)
    expect(await count('payments', { session_id: s.id })).toBe(1)
    const record = await db
      .collection('idempotency_keys')
      .findOne({ _id: `payment:${operator.id}:${key}` as never })
    expect(record).toMatchObject({ resource_id: [...ids][0], done: true })
  })
})

describe('the HTTP door', () => {
  const call = (
    method: string,
    path: string,
    who?: Account,
    body?: unknown,
    headers: Record<string, string> = {},
  ) =>
    platform.request(path, {
      method,
      ...(body === undefined
        ? { headers: { ...(who ? bearer(who.token) : {}), ...headers } }
        : jsonBody(body, { ...(who ? bearer(who.token) : {}), ...headers })),
    })
  const missing = randomUUID()

  it.each([
    ['POST', '/api/v1/payments', { session_id: missing, payment_method: 'cash' }],
    ['GET', '/api/v1/payments', undefined],
    ['GET', `/api/v1/payments/${missing}`, undefined],
    ['GET', `/api/v1/payments/${missing}/receipt`, undefined],
    ['POST', `/api/v1/payments/${missing}/refunds`, { reason: 'x' }],
    ['POST', '/api/v1/payments/create-intent', { session_id: missing }],
    ['POST', '/api/v1/payments/confirm', { payment_intent_id: 'pi_missing' }],
  ])('%s %s needs a signed-in caller', async (method, path, body) => {
    expect((await call(method, path, undefined, body)).status).toBe(401)
  })

  it('keeps refunds to operators and admins', async () => {
    expect(
      (await call('POST', `/api/v1/payments/${missing}/refunds`, customer, { reason: 'x' })).status,
    ).toBe(403)
    expect(
      (await call('POST', `/api/v1/payments/${missing}/refunds`, operator, { reason: 'x' })).status,
    ).toBe(404)
  })

  it.each([
    ['GET', `/api/v1/payments/${missing}`, undefined],
    ['GET', `/api/v1/payments/${missing}/receipt`, undefined],
    ['POST', `/api/v1/payments/${missing}/refunds`, { reason: 'x' }],
    ['POST', '/api/v1/payments/confirm', { payment_intent_id: 'pi_missing' }],
  ])('%s %s answers 404 for what does not exist', async (method, path, body) => {
    const res = await call(method, path, admin, body)
    expect(res.status).toBe(404)
    expect(await json(res)).toMatchObject({ code: 'NOT_FOUND' })
  })

  it('rejects unknown fields and lists with a capped limit', async () => {
    const res = await call('POST', '/api/v1/payments', operator, {
      session_id: missing,
      payment_method: 'cash',
      surprise: 1,
    })
    expect(res.status).toBe(400)
    // Only cash has a tendered amount: the document says so, and so does the answer.
    const tendered = await call('POST', '/api/v1/payments', operator, {
      session_id: missing,
      payment_method: 'card',
      tendered: 1000,
    })
    expect(tendered.status).toBe(400)
    expect(JSON.stringify(await json(tendered))).toContain('tendered')
    expect((await call('GET', '/api/v1/payments?limit=101', admin)).status).toBe(400)
    const none = await call('GET', '/api/v1/payments?limit=2', other)
    expect(await json(none)).toEqual({ data: [], next_cursor: null })
    // Customers see their own payments only, paged.
    const page = await json(await call('GET', '/api/v1/payments?limit=2', customer))
    expect(page.data).toHaveLength(2)
    expect(page.data.every((p: Json) => p.user_id === customer.id)).toBe(true)
    const next = await json(
      await call('GET', `/api/v1/payments?limit=100&cursor=${page.next_cursor}`, customer),
    )
    expect(next.data.map((p: Json) => p.id)).not.toContain(page.data[0].id)
    const all = await json(await call('GET', '/api/v1/payments?limit=100', operator))
    expect(all.data.some((p: Json) => p.user_id !== customer.id)).toBe(true)
    // A customer reads their payment and its receipt; another customer gets a 404.
    const mine = page.data.find((p: Json) => p.receipt_number !== null) ?? page.data[0]
    expect((await call('GET', `/api/v1/payments/${mine.id}`, customer)).status).toBe(200)
    expect((await call('GET', `/api/v1/payments/${mine.id}`, other)).status).toBe(404)
    expect((await call('GET', `/api/v1/payments/${mine.id}/receipt`, other)).status).toBe(404)
  })

  it('answers validate-exit for anyone, 404 for an unknown ticket', async () => {
    const res = await call('POST', '/api/v1/payments/validate-exit', undefined, {
      ticket_number: 'TKT-NOPE0000',
    })
    expect(res.status).toBe(404)
  })
})
