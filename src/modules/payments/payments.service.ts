import { AppError } from '../../shared/errors.ts'
import { type IdempotencyStore, keyedCreate } from '../../shared/idempotency.ts'
import { decodeCursor, pageOf } from '../../shared/ids.ts'
import type { Logger } from '../../shared/logger.ts'
import type { Role } from '../accounts/accounts.model.ts'
import type {
  AmountDue,
  DiscountsPort,
  LedgerPort,
  SessionFacts,
  SessionsPort,
} from '../sessions/operations.contract.ts'
import type {
  PaymentMethod,
  PaymentRecord,
  PaymentStatus,
  RefundRecord,
  SettlementRecord,
  StateFact,
} from './payments.model.ts'
import type { PaymentsRepository } from './payments.repository.ts'
import type { GatewayEvent, GatewayIntent, PaymentGateway } from './stripe.gateway.ts'

export type Caller = { userId: string; role: Role }

export type PaymentInput = {
  session_id: string
  payment_method: PaymentMethod
  amount?: number | undefined
  discount_code?: string | undefined
  tendered?: number | undefined
}

export type PaymentView = {
  id: string
  session_id: string
  ticket_number: string
  lot_id: string
  user_id: string | null
  payment_method: PaymentMethod
  provider: 'stripe' | null
  payment_intent_id: string | null
  amount: number
  currency: string
  tendered: number | null
  change: number | null
  refunded_amount: number
  discount_code: string | null
  status: PaymentStatus
  receipt_number: string | null
  duplicate: boolean
  settled_at: string | null
  created_at: string
  updated_at: string
}

export type RefundView = {
  id: string
  payment_id: string
  amount: number
  currency: string
  reason: string
  provider_refund_id: string | null
  created_at: string
  payment: PaymentView
}

export type ReceiptNumbers = { next(at: Date): Promise<string> }

export type PaymentsService = ReturnType<typeof createPaymentsService>

const staff = (caller: Caller) => caller.role === 'operator' || caller.role === 'admin'
const notFound = (id: string) => new AppError('NOT_FOUND', `No payment ${id}`)
const iso = (date: Date | null) => (date ? date.toISOString() : null)

/** Refunds of one payment that race each other retry their insert this many times. */
const REFUND_ATTEMPTS = 20
/** A success that keeps losing its claim to concurrent give-backs tries this many times. */
const CLAIM_ATTEMPTS = 5
/** App payments of one settlement and amount after this many failed ones are refused. */
const INTENT_ATTEMPTS = 20
/** The reconciliation reads its work list in pages of this many, at most this many pages a run. */
const RECONCILE_PAGE = 100
const RECONCILE_PAGES = 100
/** An intent never confirmed for this long is canceled by the reconciliation. */
const ABANDON_AFTER_MS = 30 * 60_000
const unpaid = (status: string) =>
  status === 'requires_payment_method' || status === 'requires_confirmation' || status === 'requires_action'

function statusFrom(states: Set<StateFact>, refunded: number, amount: number): PaymentStatus {
  if (states.has('succeeded')) {
    if (refunded >= amount && amount > 0) return 'refunded'
    return refunded > 0 ? 'partially_refunded' : 'succeeded'
  }
  if (states.has('failed')) return 'failed'
  if (states.has('canceled')) return 'canceled'
  if (states.has('processing')) return 'processing'
  return 'pending'
}

function view(payment: PaymentRecord, refunded: number): PaymentView {
  return {
    id: payment._id,
    session_id: payment.session_id,
    ticket_number: payment.ticket_number,
    lot_id: payment.lot_id,
    user_id: payment.user_id,
    payment_method: payment.method,
    provider: payment.provider,
    payment_intent_id: payment.payment_intent_id,
    amount: payment.amount,
    currency: payment.currency,
    tendered: payment.tendered,
    change: payment.change,
    refunded_amount: refunded,
    discount_code: payment.discount_code,
    status: payment.status,
    receipt_number: payment.receipt_number,
    duplicate: payment.duplicate,
    settled_at: iso(payment.settled_at),
    created_at: payment.created_at.toISOString(),
    updated_at: payment.updated_at.toISOString(),
  }
}

function dueProblem(code: 'CONFLICT' | 'UNPROCESSABLE', detail: string, due: AmountDue, reason: string) {
  return new AppError(code, detail, {
    extensions: { reason, amount_due: due.due, currency: due.currency },
  })
}

/**
 * Money that moved: a payment settled (its amount in) or a refund taken (its amount out). Told once
 * or more (a repeated delivery tells again): listeners count by `id`, idempotently.
 */
export type MoneyMoved = {
  kind: 'settled' | 'refunded'
  /** The payment's id, or the refund's. */
  id: string
  payment_id: string
  /** The parking session the payment settles; null for money that no session owes. */
  session_id: string | null
  lot_id: string
  method: PaymentMethod
  currency: string
  amount: number
  at: Date
}

/** Applies a Stripe event to an intent another capability made; idempotent. */
export type ForeignIntentHandler = (intentId: string, eventType: string) => Promise<void>

export function createPaymentsService(deps: {
  repo: PaymentsRepository
  gateway: PaymentGateway
  sessions: SessionsPort
  discounts: DiscountsPort
  receipts: ReceiptNumbers
  idempotency: IdempotencyStore
  logger: Logger
  settings: { reconcileAfterMs: number; abandonAfterMs?: number | undefined }
}) {
  const { repo, gateway, sessions, discounts, receipts, idempotency, logger } = deps
  const foreignIntents = new Map<string, ForeignIntentHandler>()
  const moneyListeners: ((event: MoneyMoved) => Promise<void>)[] = []

  /** Tells the money listeners (the dashboard's day counters); a listener's failure is only logged. */
  async function tell(kind: MoneyMoved['kind'], payment: PaymentRecord, fact?: RefundRecord) {
    const event: MoneyMoved = {
      kind,
      id: fact?._id ?? payment._id,
      payment_id: payment._id,
      session_id: payment.session_id,
      lot_id: payment.lot_id,
      method: payment.method,
      currency: payment.currency,
      amount: fact?.amount ?? payment.amount,
      at: fact?.created_at ?? payment.settled_at ?? new Date(),
    }
    for (const listener of moneyListeners) {
      await listener(event).catch((error) =>
        logger.warn({ err: error, id: event.id }, 'a money listener failed'),
      )
    }
  }

  async function refundedOf(paymentId: string): Promise<number> {
    const refunds = await repo.refundsOf(paymentId)
    return refunds.reduce((sum, { fact }) => sum + fact.amount, 0)
  }

  /** The payment as its facts say, with the cached status brought up to date. */
  async function fresh(payment: PaymentRecord): Promise<PaymentView> {
    const [states, refunded] = await Promise.all([repo.statesOf(payment._id), refundedOf(payment._id)])
    const status = statusFrom(states, refunded, payment.amount)
    if (status !== payment.status) {
      await repo.updatePayment(payment._id, { status })
      payment = { ...payment, status }
    }
    return view(payment, refunded)
  }

  async function requirePayment(id: string): Promise<PaymentRecord> {
    const payment = await repo.findPayment(id)
    if (!payment) throw notFound(id)
    return payment
  }

  /** Customers reach their own payments only; another's is "not found". */
  async function visiblePayment(caller: Caller, id: string): Promise<PaymentRecord> {
    const payment = await requirePayment(id)
    if (!staff(caller) && payment.user_id !== caller.userId && payment.payer_id !== caller.userId) {
      throw notFound(id)
    }
    return payment
  }

  /** A session a customer may pay for is one of their own vehicle's; another's is "not found". */
  async function payableSession(caller: Caller, sessionId: string): Promise<SessionFacts> {
    const facts = await sessions.facts(sessionId)
    if (!staff(caller) && facts.user_id !== caller.userId) {
      throw new AppError('NOT_FOUND', `No session ${sessionId}`)
    }
    return facts
  }

  async function dueOrConflict(sessionId: string): Promise<AmountDue> {
    const due = await sessions.amountDue(sessionId)
    if (due.due <= 0) {
      const paid = due.paid > 0
      throw dueProblem(
        'CONFLICT',
        paid ? 'The session is already paid' : 'Nothing is due for this session',
        due,
        paid ? 'already_paid' : 'nothing_due',
      )
    }
    return due
  }

  /** Moves a payment to a state by inserting its fact; the status follows from all facts. */
  async function advance(payment: PaymentRecord, state: StateFact, source: string): Promise<PaymentView> {
    await repo.insertState({
      _id: `${payment._id}:${state}`,
      payment_id: payment._id,
      state,
      source,
      created_at: new Date(),
    })
    if (state === 'succeeded') await tell('settled', payment)
    return await fresh((await repo.findPayment(payment._id)) ?? payment)
  }

  /**
   * Claims the payment's settlement: true when the fact is this payment's (won now or earlier),
   * false when another payment settled the session first.
   */
  async function claimSettlement(payment: PaymentRecord): Promise<SettlementRecord | undefined> {
    const id = `${payment.session_id}:${payment.settlement_index}`
    const fact: SettlementRecord = {
      _id: id,
      session_id: payment.session_id,
      payment_id: payment._id,
      amount: payment.amount,
      currency: payment.currency,
      receipt_number: await receipts.next(new Date()),
      created_at: new Date(),
    }
    if (await repo.insertSettlement(fact)) return fact
    const holder = await repo.findSettlement(id)
    if (holder?.payment_id === payment._id) return holder
    if (holder && (await abandoned(holder.payment_id))) {
      // Its payment failed or was canceled but the give-back did not finish: finish it.
      await repo.deleteSettlement(id, holder.payment_id)
    }
    if (!holder || (await abandoned(holder.payment_id))) {
      // Deleted between our insert and our read (a compensation): the insert decides again.
      if (await repo.insertSettlement(fact)) return fact
      const again = await repo.findSettlement(id)
      if (again?.payment_id === payment._id) return again
    }
    return undefined
  }

  /** A payment that took no money and never will: failed or canceled, not succeeded. */
  async function abandoned(paymentId: string): Promise<boolean> {
    const states = await repo.statesOf(paymentId)
    return !states.has('succeeded') && (states.has('failed') || states.has('canceled'))
  }

  /** A payment lost its claim: the session is paid, or another payment holds the claim now. */
  async function claimLost(sessionId: string): Promise<AppError> {
    const due = await sessions.amountDue(sessionId)
    return due.due <= 0
      ? dueProblem('CONFLICT', 'The session is already paid', due, 'already_paid')
      : dueProblem(
          'CONFLICT',
          'Another payment of this session is in progress; retry shortly',
          due,
          'payment_in_progress',
        )
  }

  async function recordSettled(payment: PaymentRecord, fact: SettlementRecord, source: string) {
    if (payment.receipt_number !== fact.receipt_number) {
      await repo.updatePayment(payment._id, {
        receipt_number: fact.receipt_number,
        settled_at: fact.created_at,
      })
    }
    return await advance(
      { ...payment, receipt_number: fact.receipt_number, settled_at: fact.created_at },
      'succeeded',
      source,
    )
  }

  /**
   * Money was taken at Stripe for this payment (webhook, confirm, reconciliation): it settles the
   * session once. When another payment settled it first, this one is refunded in full, once
   * (its refund `${id}:0` and Stripe's idempotency key are both deterministic), and marked so.
   */
  async function settleTaken(payment: PaymentRecord, source: string): Promise<PaymentView> {
    for (let attempt = 0; attempt < CLAIM_ATTEMPTS; attempt++) {
      const fact = await claimSettlement(payment)
      if (!fact) return await refundDuplicate(payment, source)
      if (!(await repo.hasState(payment._id, 'succeeded'))) await refundExcess(payment)
      const settled = await recordSettled(payment, fact, source)
      // A failure handled at the same time may have given the claim back before our state fact
      // was in (giveBack deletes, then looks for `succeeded`; we insert it, then look for the
      // claim): one of the two sees the other, and here it is us who claim again.
      if ((await repo.findSettlement(fact._id))?.payment_id === payment._id) return settled
    }
    throw new AppError('CONFLICT', 'The settlement of this payment is contended; retry')
  }

  /**
   * No money moved for this payment (declined, failed, canceled, or still to be confirmed): its
   * claim on the settlement goes, so that the session owes again and another payment may settle
   * it. `state` is the fact to record first, if any. A success that raced in keeps the payment.
   */
  async function giveBack(payment: PaymentRecord, state: StateFact | null, source: string) {
    const after = state ? await advance(payment, state, source) : await fresh(payment)
    if (after.status !== 'pending' && after.status !== 'failed' && after.status !== 'canceled') {
      return after
    }
    await repo.deleteSettlement(`${payment.session_id}:${payment.settlement_index}`, payment._id)
    if (await repo.hasState(payment._id, 'succeeded')) return await settleTaken(payment, source)
    return after
  }

  /**
   * An intent is for the due when it was made; a discount or a validation since may have lowered
   * the due. What was taken above the due at the time of the claim is refunded, once: the refund
   * is the payment's fact `:0`, written before the payment counts as succeeded. When Stripe does
   * not answer, the fact stays (the money may have moved) and the reconciliation asks again.
   */
  async function refundExcess(payment: PaymentRecord) {
    const due = await sessions.amountDue(payment.session_id).catch((error: unknown) => {
      if (error instanceof AppError && error.code === 'NOT_FOUND') return undefined
      throw error
    })
    if (!due) {
      logger.warn({ paymentId: payment._id }, 'a payment of a session sessions do not know settled')
      return
    }
    // A twin delivery that settled the payment meanwhile counted it in this due, and had made
    // the refund of the excess (if any) before its `succeeded` fact: nothing to do here. Facts
    // only grow, so without `succeeded` now the due above did not count this payment.
    if (await repo.hasState(payment._id, 'succeeded')) return
    const excess = payment.amount - Math.max(0, due.due)
    if (excess <= 0) return
    const refund: RefundRecord = {
      _id: `${payment._id}:0`,
      payment_id: payment._id,
      session_id: payment.session_id,
      amount: excess,
      currency: payment.currency,
      reason: `more than was due (${Math.max(0, due.due)} ${due.currency}) when the payment settled`,
      provider: payment.payment_intent_id ? 'stripe' : null,
      provider_refund_id: null,
      refunded_by: 'system',
      created_at: new Date(),
    }
    if (!(await repo.insertRefund(refund)) || !payment.payment_intent_id) return
    logger.warn({ paymentId: payment._id, excess }, 'a payment took more than was due; refunding the excess')
    try {
      const taken = await gateway.refund({
        paymentIntentId: payment.payment_intent_id,
        amount: excess,
        idempotencyKey: `refund:${payment._id}:0`,
      })
      await repo.setProviderRefund(refund._id, taken.id)
      await tell('refunded', payment, refund)
    } catch (error) {
      logger.warn({ err: error, paymentId: payment._id }, 'the refund of an excess is in doubt')
    }
  }

  /** Money taken for a settlement another payment won: refunded in full, once, and marked. */
  async function refundDuplicate(payment: PaymentRecord, source: string): Promise<PaymentView> {
    logger.warn(
      { paymentId: payment._id, sessionId: payment.session_id },
      'a second payment succeeded for a settled session; refunding it',
    )
    if (!payment.duplicate) await repo.updatePayment(payment._id, { duplicate: true })
    const refund: RefundRecord = {
      _id: `${payment._id}:0`,
      payment_id: payment._id,
      session_id: payment.session_id,
      amount: payment.amount,
      currency: payment.currency,
      reason: 'duplicate payment of a settled session',
      provider: payment.payment_intent_id ? 'stripe' : null,
      provider_refund_id: null,
      refunded_by: 'system',
      created_at: new Date(),
    }
    await repo.insertRefund(refund)
    if (payment.payment_intent_id) {
      const taken = await gateway.refund({
        paymentIntentId: payment.payment_intent_id,
        amount: payment.amount,
        idempotencyKey: `refund:${payment._id}:0`,
      })
      await repo.setProviderRefund(refund._id, taken.id)
      await tell('refunded', payment, refund)
    }
    return await advance({ ...payment, duplicate: true }, 'succeeded', source)
  }

  /** What Stripe says about an intent, applied as the webhook would. */
  async function applyIntent(
    payment: PaymentRecord,
    intent: { status?: string | undefined },
    source: string,
  ) {
    switch (intent.status) {
      case 'succeeded':
        return await settleTaken(payment, source)
      case 'processing':
        return await advance(payment, 'processing', source)
      case 'canceled':
        return await giveBack(payment, 'canceled', source)
      case 'requires_payment_method':
      case 'requires_confirmation':
      case 'requires_action': {
        // No money moved. After `processing`, this is Stripe's answer to a failed payment; before,
        // a confirmation that died mid-call left a claim nobody else would give back.
        const processed = await repo.hasState(payment._id, 'processing')
        return await giveBack(payment, processed ? 'failed' : null, source)
      }
      default:
        return await fresh(payment)
    }
  }

  async function paymentOfIntent(intentId: string, metadata?: Record<string, string>) {
    const index = await repo.findIntent(intentId)
    const paymentId = index?.payment_id ?? metadata?.payment_id
    return paymentId === undefined ? undefined : await repo.findPayment(paymentId)
  }

  function paymentRecord(
    id: string,
    caller: Caller,
    facts: SessionFacts,
    due: AmountDue,
    fields: Pick<PaymentRecord, 'method' | 'provider' | 'tendered' | 'change' | 'discount_code' | 'status'>,
  ): PaymentRecord {
    const now = new Date()
    return {
      _id: id,
      session_id: facts.id,
      ticket_number: facts.ticket_number,
      lot_id: facts.lot_id,
      plate: facts.plate,
      user_id: facts.user_id ?? (caller.role === 'customer' ? caller.userId : null),
      payer_id: caller.userId,
      payment_intent_id: null,
      client_secret: null,
      amount: due.due,
      currency: due.currency,
      settlement_index: due.settlements,
      entry_at: facts.entry_at,
      exit_at: facts.exit_at,
      duration_minutes: due.quote.duration_minutes,
      lines: due.quote.breakdown,
      receipt_number: null,
      settled_at: null,
      duplicate: false,
      created_at: now,
      updated_at: now,
      ...fields,
    }
  }

  /**
   * A PaymentIntent for what is due, once per settlement, amount and attempt: its idempotency key
   * at Stripe and the key of our own record are both `pi:${sessionId}:${settlements}:${due}`, then
   * `:1`, `:2` ... A failed or canceled intent (a declined card) moves on to the next attempt, so
   * that the app can pay with another card; a live one is answered again.
   */
  async function intentFor(caller: Caller, facts: SessionFacts, due: AmountDue, discountCode: string | null) {
    for (let attempt = 0; attempt < INTENT_ATTEMPTS; attempt++) {
      const payment = await intentAttempt(caller, facts, due, discountCode, attempt)
      const { status } = await fresh(payment)
      if (status !== 'failed' && status !== 'canceled') return payment
    }
    throw dueProblem(
      'CONFLICT',
      `${INTENT_ATTEMPTS} app payments of this session failed; pay at the kiosk or the exit`,
      due,
      'too_many_attempts',
    )
  }

  async function intentAttempt(
    caller: Caller,
    facts: SessionFacts,
    due: AmountDue,
    discountCode: string | null,
    attempt: number,
  ) {
    const key = `pi:${facts.id}:${due.settlements}:${due.due}${attempt === 0 ? '' : `:${attempt}`}`
    const request = { kind: 'intent', callerId: 'stripe', key }
    return await keyedCreate(
      idempotency,
      request,
      key,
      async (id) => {
        const existing = await repo.findPayment(id)
        if (existing?.payment_intent_id) return existing
        const intent = await gateway.createIntent({
          amount: due.due,
          currency: due.currency,
          idempotencyKey: key,
          metadata: { payment_id: id, session_id: facts.id, ticket_number: facts.ticket_number },
        })
        const payment: PaymentRecord = {
          ...paymentRecord(id, caller, facts, due, {
            method: 'mobile',
            provider: 'stripe',
            tendered: null,
            change: null,
            discount_code: discountCode,
            status: 'pending',
          }),
          payment_intent_id: intent.id,
          client_secret: intent.client_secret,
        }
        const won = await repo.insertPayment(payment)
        const stored = won ? payment : await requirePayment(id)
        if (stored.payment_intent_id) {
          await repo.insertIntent({ _id: stored.payment_intent_id, payment_id: id, created_at: new Date() })
        }
        return stored
      },
      async (id) => await repo.findPayment(id),
    )
  }

  async function recordedPayment(id: string, caller: Caller, input: PaymentInput): Promise<PaymentView> {
    const existing = await repo.findPayment(id)
    if (existing) return await fresh(existing)
    if (input.payment_method !== 'mobile' && !staff(caller)) {
      throw new AppError('FORBIDDEN', 'Cash and card-terminal payments are recorded by operators')
    }
    if (input.tendered !== undefined && input.payment_method !== 'cash') {
      throw new AppError('UNPROCESSABLE', 'Only a cash payment has a tendered amount', {
        extensions: { reason: 'tendered_not_cash' },
      })
    }
    const facts = await payableSession(caller, input.session_id)
    // A retry (same Idempotency-Key, same id) of a payment whose process died after it took the
    // settlement, or its twin still at work: that fact is its own and may count as paid already;
    // complete from it.
    const ownSettlement = async () =>
      input.payment_method === 'mobile'
        ? undefined
        : (await repo.settlementsOf(facts.id)).find(({ fact }) => fact.payment_id === id)
    const own = await ownSettlement()
    if (own) return await completeFrom(own.index, own.fact, id, caller, facts, input)
    let discountCode: string | null = null
    if (input.discount_code !== undefined) {
      await discounts.redeem({
        code: input.discount_code,
        sessionId: facts.id,
        lotId: facts.lot_id,
        userId: facts.user_id,
      })
      discountCode = input.discount_code.toUpperCase()
    }
    let due: AmountDue
    try {
      due = await dueOrConflict(facts.id)
    } catch (error) {
      const settledMeanwhile =
        error instanceof AppError && error.code === 'CONFLICT' && (await ownSettlement())
      if (settledMeanwhile) {
        return await completeFrom(settledMeanwhile.index, settledMeanwhile.fact, id, caller, facts, input)
      }
      throw error
    }
    const amount = input.amount ?? due.due
    if (amount !== due.due) {
      const over = amount > due.due
      throw dueProblem(
        'UNPROCESSABLE',
        `The amount ${over ? 'exceeds' : 'is less than'} what is due (${due.due} ${due.currency})`,
        due,
        over ? 'overpayment' : 'underpayment',
      )
    }
    const tendered = input.tendered ?? null
    if (tendered !== null && tendered < amount) {
      throw dueProblem(
        'UNPROCESSABLE',
        `The tendered cash does not cover ${amount}`,
        due,
        'tendered_too_little',
      )
    }
    if (input.payment_method === 'mobile') {
      return await fresh(await intentFor(caller, facts, due, discountCode))
    }

    const payment = paymentRecord(id, caller, facts, due, {
      method: input.payment_method,
      provider: null,
      tendered,
      change: tendered === null ? null : tendered - amount,
      discount_code: discountCode,
      status: 'succeeded',
    })
    const fact = await claimSettlement(payment)
    if (!fact) throw await claimLost(facts.id)
    return await recordCash(payment, fact, caller)
  }

  /**
   * Cash and card-terminal money is in the till once the settlement is won: the `succeeded` fact
   * goes in first (the session counts as paid), then the payment document.
   */
  async function recordCash(payment: PaymentRecord, fact: SettlementRecord, caller: Caller) {
    const settled = { ...payment, receipt_number: fact.receipt_number, settled_at: fact.created_at }
    await repo.insertState({
      _id: `${payment._id}:succeeded`,
      payment_id: payment._id,
      state: 'succeeded',
      source: `recorded by ${caller.userId}`,
      created_at: new Date(),
    })
    await repo.insertPayment(settled)
    await tell('settled', settled)
    return await fresh((await repo.findPayment(payment._id)) ?? settled)
  }

  async function completeFrom(
    index: number,
    fact: SettlementRecord,
    id: string,
    caller: Caller,
    facts: SessionFacts,
    input: PaymentInput,
  ) {
    const due = await sessions.amountDue(facts.id)
    const tendered = input.tendered ?? null
    const payment: PaymentRecord = {
      ...paymentRecord(id, caller, facts, due, {
        method: input.payment_method,
        provider: null,
        tendered,
        change: tendered === null ? null : tendered - fact.amount,
        discount_code: input.discount_code?.toUpperCase() ?? null,
        status: 'succeeded',
      }),
      amount: fact.amount,
      settlement_index: index,
    }
    return await recordCash(payment, fact, caller)
  }

  async function refundOnce(
    caller: Caller,
    payment: PaymentRecord,
    input: { amount?: number | undefined; reason: string },
  ): Promise<RefundRecord> {
    if (payment.payment_intent_id) {
      // A refund whose answer from Stripe was lost is settled first, with its own key. When it is
      // this caller's same request (a retry after a 503), it is the answer.
      for (const { fact } of await repo.refundsOf(payment._id)) {
        if (fact.provider !== 'stripe' || fact.provider_refund_id !== null) continue
        const done = await settleRefund(payment, fact)
        if (
          done &&
          done.refunded_by === caller.userId &&
          done.reason === input.reason &&
          (input.amount === undefined || input.amount === done.amount)
        ) {
          return done
        }
      }
    }
    for (let attempt = 0; attempt < REFUND_ATTEMPTS; attempt++) {
      const refunds = await repo.refundsOf(payment._id)
      const refunded = refunds.reduce((sum, { fact }) => sum + fact.amount, 0)
      const remaining = payment.amount - refunded
      const amount = input.amount ?? remaining
      if (remaining <= 0 || amount > remaining) {
        throw new AppError(
          'UNPROCESSABLE',
          remaining <= 0
            ? 'The payment is refunded in full already'
            : `At most ${remaining} ${payment.currency} remain to refund`,
          { extensions: { reason: 'over_refund', refundable: remaining, currency: payment.currency } },
        )
      }
      const index = (refunds.at(-1)?.index ?? -1) + 1
      const refund: RefundRecord = {
        _id: `${payment._id}:${index}`,
        payment_id: payment._id,
        session_id: payment.session_id,
        amount,
        currency: payment.currency,
        reason: input.reason,
        provider: payment.payment_intent_id ? 'stripe' : null,
        provider_refund_id: null,
        refunded_by: caller.userId,
        created_at: new Date(),
      }
      if (!(await repo.insertRefund(refund))) continue
      if (!payment.payment_intent_id) {
        await tell('refunded', payment, refund)
        return refund
      }
      try {
        const taken = await gateway.refund({
          paymentIntentId: payment.payment_intent_id,
          amount,
          idempotencyKey: `refund:${payment._id}:${index}`,
        })
        await repo.setProviderRefund(refund._id, taken.id)
        await tell('refunded', payment, refund)
        return { ...refund, provider_refund_id: taken.id }
      } catch (error) {
        // Stripe refused it: the refund fact goes, and the amount may be refunded again. Stripe
        // unreachable or timed out (503): it may have refunded, so the fact stays, in doubt, until
        // a retry of the refund or the reconciliation asks Stripe again with the same key.
        if (error instanceof AppError && error.code !== 'DEPENDENCY_UNAVAILABLE') {
          await repo.deleteRefund(refund._id)
        }
        throw error
      }
    }
    throw new AppError('CONFLICT', 'Other refunds of this payment are in progress; retry')
  }

  /**
   * Asks Stripe again for a refund whose answer was lost, with the refund's own idempotency key:
   * Stripe answers the refund it made, or makes it now, or refuses it (then the fact goes).
   */
  async function settleRefund(
    payment: PaymentRecord,
    refund: RefundRecord,
  ): Promise<RefundRecord | undefined> {
    if (!payment.payment_intent_id) return refund
    try {
      const taken = await gateway.refund({
        paymentIntentId: payment.payment_intent_id,
        amount: refund.amount,
        idempotencyKey: `refund:${refund._id}`,
      })
      await repo.setProviderRefund(refund._id, taken.id)
      await tell('refunded', payment, refund)
      return { ...refund, provider_refund_id: taken.id }
    } catch (error) {
      if (error instanceof AppError && error.code !== 'DEPENDENCY_UNAVAILABLE') {
        await repo.deleteRefund(refund._id)
        return undefined
      }
      throw error
    }
  }

  /**
   * Only money that moved counts: a settlement whose payment has its `succeeded` fact. A claim
   * still in flight (a confirmation at Stripe, a processing payment) counts for nothing, yet it
   * holds its number: `settlements` is the number after the last counted one, so the next payer
   * meets the claim and waits (409).
   */
  const ledger: LedgerPort = {
    async paidFor(sessionId) {
      const facts = await repo.settlementsOf(sessionId)
      let paid = 0
      let lastPaidAt: Date | null = null
      let settlements = 0
      for (const { index, fact } of facts) {
        if (!(await repo.hasState(fact.payment_id, 'succeeded'))) continue
        paid += fact.amount - (await refundedOf(fact.payment_id))
        if (!lastPaidAt || fact.created_at > lastPaidAt) lastPaidAt = fact.created_at
        settlements = Math.max(settlements, index + 1)
      }
      return { paid, settlements, last_paid_at: lastPaidAt }
    },
  }

  return {
    ledger,

    /**
     * POST /payments: cash and card recorded by staff; mobile starts a Stripe intent (its own
     * record is keyed by the settlement and amount, so a replay of a mobile payment asks again).
     */
    async pay(caller: Caller, input: PaymentInput, key: string | undefined): Promise<PaymentView> {
      return await keyedCreate(
        idempotency,
        { kind: 'payment', callerId: caller.userId, key },
        input,
        async (id) => await recordedPayment(id, caller, input),
        async (id) => {
          const found = await repo.findPayment(id)
          if (found) return await fresh(found)
          return input.payment_method === 'mobile' ? await recordedPayment(id, caller, input) : undefined
        },
      )
    },

    async createIntent(caller: Caller, input: { session_id: string }) {
      const facts = await payableSession(caller, input.session_id)
      const due = await dueOrConflict(facts.id)
      const payment = await intentFor(caller, facts, due, null)
      return {
        payment_id: payment._id,
        payment_intent_id: payment.payment_intent_id ?? '',
        client_secret: payment.client_secret,
        amount: payment.amount,
        currency: payment.currency,
        status: (await fresh(payment)).status,
      }
    },

    /**
     * Confirms an intent at Stripe. The settlement is claimed before the money is taken: the
     * claim's insert decides, and a confirmation that does not end in money deletes its claim.
     */
    async confirm(caller: Caller, input: { payment_intent_id: string; payment_method?: string | undefined }) {
      const payment = await paymentOfIntent(input.payment_intent_id)
      if (
        !payment ||
        (!staff(caller) && payment.user_id !== caller.userId && payment.payer_id !== caller.userId)
      ) {
        throw new AppError('NOT_FOUND', `No payment for the intent ${input.payment_intent_id}`)
      }
      const current = await fresh(payment)
      if (current.status !== 'pending' && current.status !== 'processing') {
        if (current.status === 'failed' || current.status === 'canceled') {
          throw new AppError('CONFLICT', `The payment is ${current.status}; create a new intent`, {
            extensions: { reason: current.status },
          })
        }
        return current
      }
      const claim = await claimSettlement(payment)
      if (!claim) {
        await advance(payment, 'canceled', 'confirm: the session was settled by another payment')
        throw await claimLost(payment.session_id)
      }
      // The intent is for the due when it was made: a discount, a validation or the time since
      // may have changed it. Charged now, it would take the old amount.
      const due = await sessions.amountDue(payment.session_id)
      if (due.due !== payment.amount) {
        const canceled = await gateway.cancelIntent(input.payment_intent_id).then(
          () => true,
          () => false,
        )
        await giveBack(payment, canceled ? 'canceled' : null, 'confirm: the amount due changed')
        throw dueProblem(
          'CONFLICT',
          `The amount due is now ${due.due} ${due.currency}, not ${payment.amount}; create a new intent`,
          due,
          'amount_changed',
        )
      }
      let intent: GatewayIntent
      try {
        intent = await gateway.confirmIntent(
          input.payment_intent_id,
          input.payment_method,
          `confirm:${input.payment_intent_id}`,
        )
      } catch (error) {
        const declined = error instanceof AppError && error.code === 'PAYMENT_REQUIRED'
        await giveBack(
          payment,
          declined ? 'failed' : null,
          declined ? 'confirm: declined' : 'confirm: no answer',
        )
        throw error
      }
      if (intent.status === 'succeeded') return await settleTaken(payment, 'confirm')
      if (intent.status === 'processing') return await advance(payment, 'processing', 'confirm')
      // No money moved (an action is required, or the method failed): the claim goes.
      return await giveBack(payment, intent.status === 'canceled' ? 'canceled' : null, 'confirm')
    },

    /**
     * A Stripe event, verified on the raw body. Every effect is an insert of a fact, so an event
     * delivered again, or events in any order, have the effect of the set of them; the event's
     * record only spares the work of a repeat.
     */
    /**
     * Stripe events about intents that are not session payments (metadata.purpose names whose they
     * are: 'reservation', 'membership') go to the capability that made them. The handler re-reads
     * the intent and applies its state idempotently: events come late, twice and out of order.
     */
    /** Adds a listener told of every settlement and refund (at least once each). */
    onSettled(listener: (event: MoneyMoved) => Promise<void>) {
      moneyListeners.push(listener)
    },

    onForeignIntent(purpose: string, handler: ForeignIntentHandler) {
      if (foreignIntents.has(purpose)) throw new Error(`intents of ${purpose} have a handler already`)
      foreignIntents.set(purpose, handler)
    },

    async handleEvent(rawBody: string, signature: string | undefined) {
      const event: GatewayEvent = gateway.verifyEvent(rawBody, signature)
      if (await repo.findEvent(event.id)) return { received: true, duplicate: true }
      const object = event.object
      const intentId = object.object === 'payment_intent' ? object.id : (object.payment_intent ?? null)
      const payment = intentId ? await paymentOfIntent(intentId, object.metadata) : undefined
      const purpose = object.metadata?.purpose
      const elsewhere = !payment && intentId && purpose ? foreignIntents.get(purpose) : undefined
      // An intent of another capability (a reservation, a membership): it applies the event; a
      // failure leaves the event unrecorded, so that Stripe delivers it again.
      if (elsewhere && intentId) await elsewhere(intentId, event.type)
      if (payment) {
        const source = `event ${event.id}`
        switch (event.type) {
          case 'payment_intent.succeeded':
            await settleTaken(payment, source)
            break
          case 'payment_intent.processing':
            await advance(payment, 'processing', source)
            break
          case 'payment_intent.payment_failed':
            // Ranked below succeeded: a late failure never undoes a payment that went through.
            await giveBack(payment, 'failed', source)
            break
          case 'payment_intent.canceled':
            await giveBack(payment, 'canceled', source)
            break
          case 'charge.refunded':
            await recordOutsideRefund(payment, object.amount_refunded ?? 0)
            break
          default:
            break
        }
      }
      await repo.insertEvent({ _id: event.id, type: event.type, created_at: new Date() })
      return { received: true, duplicate: false }
    },

    async get(caller: Caller, id: string): Promise<PaymentView> {
      return await fresh(await visiblePayment(caller, id))
    },

    async list(
      caller: Caller,
      query: { limit: number; cursor?: string | undefined; session_id?: string | undefined },
    ) {
      const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor)
      const rows = await repo.listPayments({
        userId: staff(caller) ? undefined : caller.userId,
        sessionId: query.session_id,
        after,
        limit: query.limit + 1,
      })
      const page = pageOf(rows, query.limit, (row) => row)
      return {
        data: await Promise.all(page.data.map(async (row) => view(row, await refundedOf(row._id)))),
        next_cursor: page.next_cursor,
      }
    },

    async refund(
      caller: Caller,
      id: string,
      input: { amount?: number | undefined; reason: string },
    ): Promise<RefundView> {
      const payment = await requirePayment(id)
      const current = await fresh(payment)
      if (!['succeeded', 'partially_refunded', 'refunded'].includes(current.status) || payment.duplicate) {
        throw new AppError(
          'CONFLICT',
          `A ${current.status}${payment.duplicate ? ' duplicate' : ''} payment cannot be refunded`,
          {
            extensions: { reason: 'not_refundable', payment_status: current.status },
          },
        )
      }
      const refund = await refundOnce(caller, payment, input)
      return {
        id: refund._id,
        payment_id: refund.payment_id,
        amount: refund.amount,
        currency: refund.currency,
        reason: refund.reason,
        provider_refund_id: refund.provider_refund_id,
        created_at: refund.created_at.toISOString(),
        payment: await fresh((await repo.findPayment(id)) ?? payment),
      }
    },

    async receipt(caller: Caller, id: string) {
      const payment = await visiblePayment(caller, id)
      const current = await fresh(payment)
      if (!payment.receipt_number || payment.duplicate) {
        throw new AppError('CONFLICT', `A ${current.status} payment has no receipt`, {
          extensions: { reason: 'not_settled', payment_status: current.status },
        })
      }
      return {
        receipt_number: payment.receipt_number,
        payment_id: payment._id,
        session_id: payment.session_id,
        lot_id: payment.lot_id,
        ticket_number: payment.ticket_number,
        plate: payment.plate,
        entry_at: payment.entry_at.toISOString(),
        exit_at: iso(payment.exit_at),
        duration_minutes: payment.duration_minutes,
        lines: payment.lines.map(({ kind, description, amount }) => ({ kind, description, amount })),
        paid: payment.amount,
        currency: payment.currency,
        payment_method: payment.method,
        tendered: payment.tendered,
        change: payment.change,
        refunded_amount: current.refunded_amount,
        status: current.status,
        issued_at: (payment.settled_at ?? payment.created_at).toISOString(),
      }
    },

    /** For gates and kiosks: what a ticket still owes, and whether the car may leave now. */
    async validateExit(ticketNumber: string, now = new Date()) {
      const facts = await sessions.factsByTicket(ticketNumber)
      const due = await sessions.amountDue(facts.id, now)
      const deadline = due.exit_deadline
      const remaining =
        deadline === null ? null : Math.max(0, Math.ceil((deadline.getTime() - now.getTime()) / 60_000))
      return {
        session_id: facts.id,
        ticket_number: facts.ticket_number,
        is_paid: due.due === 0,
        can_exit: due.due === 0 && facts.status === 'active',
        time_remaining_minutes: remaining,
        amount_due: due.due,
        currency: due.currency,
        exit_deadline: iso(deadline),
      }
    },

    /**
     * Stripe payments still pending or processing after `olderThanMs` are asked about at Stripe and
     * moved as a webhook would have moved them; all of them, page after page by `_id`, so that
     * old ones never hide a newer one. An intent still unpaid after `abandonAfterMs` (never
     * confirmed) is canceled at Stripe and here, so that it leaves the list. Running it twice has
     * the effect of once.
     */
    async reconcile(olderThanMs = deps.settings.reconcileAfterMs, now = new Date()) {
      const before = new Date(now.getTime() - olderThanMs)
      const abandonBefore = new Date(now.getTime() - (deps.settings.abandonAfterMs ?? ABANDON_AFTER_MS))
      const outcome = { checked: 0, settled: 0, failed: 0, abandoned: 0, refunds: 0, errors: 0 }
      let cursor: string | undefined
      for (let page = 0; page < RECONCILE_PAGES; page++) {
        const waiting = await repo.listWaiting(before, ['pending', 'processing'], RECONCILE_PAGE, cursor)
        for (const payment of waiting) {
          if (!payment.payment_intent_id) continue
          outcome.checked++
          try {
            const intent = await gateway.retrieveIntent(payment.payment_intent_id)
            let after = await applyIntent(payment, intent, 'reconciliation')
            if (after.status === 'pending' && unpaid(intent.status) && payment.created_at < abandonBefore) {
              // Stripe refuses to cancel an intent that moved since: then nothing changes here.
              await gateway.cancelIntent(payment.payment_intent_id)
              after = await giveBack(payment, 'canceled', 'reconciliation: never confirmed')
              outcome.abandoned++
            }
            if (after.status === 'succeeded' || after.status === 'refunded') outcome.settled++
            if (after.status === 'canceled' || after.status === 'failed') outcome.failed++
          } catch (error) {
            outcome.errors++
            logger.warn({ err: error, paymentId: payment._id }, 'reconciliation of a payment failed')
          }
        }
        if (waiting.length < RECONCILE_PAGE) break
        cursor = waiting.at(-1)?._id
      }
      cursor = undefined
      for (let page = 0; page < RECONCILE_PAGES; page++) {
        const inDoubt = await repo.listRefundsInDoubt(before, RECONCILE_PAGE, cursor)
        for (const refund of inDoubt) {
          try {
            const payment = await repo.findPayment(refund.payment_id)
            if (payment && (await settleRefund(payment, refund))) outcome.refunds++
          } catch (error) {
            outcome.errors++
            logger.warn({ err: error, refundId: refund._id }, 'a refund in doubt is still in doubt')
          }
        }
        if (inDoubt.length < RECONCILE_PAGE) break
        cursor = inDoubt.at(-1)?._id
      }
      return outcome
    },
  }

  /** A refund made at Stripe outside this API (the dashboard): recorded for the difference. */
  async function recordOutsideRefund(payment: PaymentRecord, amountRefunded: number) {
    const refunded = await refundedOf(payment._id)
    if (amountRefunded <= refunded) return
    await refundOnce(
      { userId: 'stripe', role: 'admin' },
      { ...payment, payment_intent_id: null },
      {
        amount: Math.min(amountRefunded - refunded, payment.amount - refunded),
        reason: 'refunded at Stripe',
      },
    ).catch((error: unknown) => {
      if (!(error instanceof AppError)) throw error
    })
  }
}
