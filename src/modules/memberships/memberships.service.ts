import { AppError } from '../../shared/errors.ts'
import { keyedCreate } from '../../shared/idempotency.ts'
import { decodeCursor, pageOf, uuidv7 } from '../../shared/ids.ts'
import type { Logger } from '../../shared/logger.ts'
import type { Role } from '../accounts/accounts.model.ts'
import type { MoneyEvent } from '../analytics/analytics.service.ts'
import type { GatewayIntent, PaymentGateway } from '../payments/stripe.gateway.ts'
import type {
  Adjustment,
  AdjustmentSource,
  FeeQuote,
  SessionFacts,
  SessionListener,
} from '../sessions/operations.contract.ts'
import type {
  CancellationRecord,
  MembershipPaymentMethod,
  MembershipRecord,
  MembershipStatus,
  PeriodRecord,
  PeriodStateRecord,
  PlanRecord,
  PlanTerms,
} from './memberships.model.ts'
import type { MembershipsRepository } from './memberships.repository.ts'

export type Caller = { userId: string; role: Role }

type Page = { limit: number; cursor?: string | undefined }

export type PlanInput = {
  name: string
  description?: string | null | undefined
  lot_id: string
  duration_months: number
  price: number
  vehicle_limit: number
  included_hours?: number | null | undefined
  unlimited?: boolean | undefined
  discount_percentage?: number | undefined
  is_active?: boolean | undefined
}

export type SubscribeInput = {
  plan_id: string
  vehicle_ids?: string[] | undefined
  auto_renew?: boolean | undefined
  user_id?: string | undefined
  payment_method?: 'stripe' | 'cash' | 'card' | undefined
}

type PeriodPayment = 'paid' | 'pending' | 'failed' | 'canceled'

type Period = PeriodRecord & { payment: PeriodPayment; paidWith: string | null }

/** A membership's state, derived from its facts at `now`. */
type Derived = {
  membership: MembershipRecord
  periods: Period[]
  cancellation: CancellationRecord | undefined
  status: MembershipStatus
  /** The paid period in force now. */
  current: Period | undefined
  lastPaid: Period | undefined
  pending: Period[]
  /** Over, with nothing pending: its claims go. */
  ended: boolean
}

/** A claim whose membership was never written (a crash mid-subscribe) may go after this long. */
const STALE_CLAIM_MS = 60_000
const DAY_MS = 86_400_000

const staff = (caller: Caller) => caller.role !== 'customer'
const round2 = (value: number) => Math.round(value * 100) / 100

/** `months` calendar months later in UTC; the 31st becomes the last day of a shorter month. */
export function addMonths(from: Date, months: number): Date {
  const day = from.getUTCDate()
  const date = new Date(from)
  date.setUTCDate(1)
  date.setUTCMonth(date.getUTCMonth() + months)
  const last = new Date(Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + 1, 0)).getUTCDate()
  date.setUTCDate(Math.min(day, last))
  return date
}

function termsOf(plan: PlanRecord): PlanTerms {
  return {
    name: plan.name,
    duration_months: plan.duration_months,
    price: plan.price,
    currency: plan.currency,
    vehicle_limit: plan.vehicle_limit,
    included_hours: plan.included_hours,
    unlimited: plan.unlimited,
    discount_percentage: plan.discount_percentage,
  }
}

export function toPlanView(plan: PlanRecord) {
  return {
    id: plan._id,
    name: plan.name,
    description: plan.description,
    lot_id: plan.lot_id,
    duration_months: plan.duration_months,
    price: plan.price,
    currency: plan.currency,
    vehicle_limit: plan.vehicle_limit,
    included_hours: plan.included_hours,
    unlimited: plan.unlimited,
    discount_percentage: plan.discount_percentage,
    is_active: plan.is_active,
    created_at: plan.created_at.toISOString(),
    updated_at: plan.updated_at.toISOString(),
  }
}

const problem = (code: 'CONFLICT' | 'UNPROCESSABLE', detail: string, reason: string, more = {}) =>
  new AppError(code, detail, { extensions: { reason, ...more } })

const noPlan = () => new AppError('NOT_FOUND', 'No such membership plan')
const noMembership = () => new AppError('NOT_FOUND', 'No such membership')

function labelOf(terms: PlanTerms, what: string) {
  return `Membership ${terms.name}: ${what}`
}

function hoursText(minutes: number) {
  const h = Math.floor(minutes / 60)
  const m = minutes % 60
  return m === 0 ? `${h} h` : h === 0 ? `${m} min` : `${h} h ${m} min`
}

/** A lookup of another capability whose NOT_FOUND means "none". */
export async function unlessNotFound<T>(lookup: Promise<T>): Promise<T | undefined> {
  try {
    return await lookup
  } catch (error) {
    if (error instanceof AppError && error.code === 'NOT_FOUND') return undefined
    throw error
  }
}

export type MembershipsService = ReturnType<typeof createMembershipsService>

export function createMembershipsService(deps: {
  repo: MembershipsRepository
  gateway: PaymentGateway
  /** The lot's currency; undefined when there is no such lot. */
  lotCurrency: (lotId: string) => Promise<string | undefined>
  /** The account's role; undefined when there is no such account. */
  accountRole: (userId: string) => Promise<Role | undefined>
  /** The owner of a registered vehicle; undefined when there is no such vehicle. */
  vehicleOwner: (vehicleId: string) => Promise<string | undefined>
  /**
   * The adjustment sources the fee applies before the membership's (discount codes and
   * validations, a prepaid reservation): their free minutes come first, so that included hours are
   * spent only on minutes nothing else covered. Empty when not given.
   */
  earlierSources?: readonly AdjustmentSource[]
  logger: Logger
  settings: {
    /** An automatic renewal is made this long before the period ends. */
    renewBeforeMs: number
    /** A Stripe payment never made after this long is canceled, and the membership with it. */
    paymentTimeoutMs: number
  }
  now?: () => Date
  /** Told of a period paid for a price (analytics' day counters); failures only logged. */
  money?: (event: MoneyEvent) => Promise<void>
}) {
  const { repo, gateway, logger, settings } = deps
  const now = deps.now ?? (() => new Date())

  // --- derived state --------------------------------------------------------------------------

  async function periodOf(record: PeriodRecord): Promise<Period> {
    if (record.paid_at) return { ...record, payment: 'paid', paidWith: null }
    const states = await repo.statesOf(record._id)
    const paid = states.find((s) => s.state === 'paid')
    if (paid) return { ...record, payment: 'paid', paidWith: paid.payment_method_ref }
    const other = states.find((s) => s.state === 'canceled') ?? states.find((s) => s.state === 'failed')
    return { ...record, payment: other ? (other.state as PeriodPayment) : 'pending', paidWith: null }
  }

  async function derive(membership: MembershipRecord, at = now()): Promise<Derived> {
    const [records, cancellation] = await Promise.all([
      repo.periodsOf(membership._id),
      repo.findCancellation(membership._id),
    ])
    const periods = await Promise.all(records.map(periodOf))
    const paid = periods.filter((p) => p.payment === 'paid')
    const current = paid.find((p) => p.starts_at <= at && at < p.ends_at)
    const lastPaid = paid.at(-1)
    const pending = periods.filter((p) => p.payment === 'pending')
    // A subscription writes its membership, then its first period: until then (or until the
    // claim's staleness has passed) it is being written, not ended, so that a concurrent
    // subscription cannot take its claim over in between.
    const writing = records.length === 0 && at.getTime() - membership.created_at.getTime() < STALE_CLAIM_MS
    let status: MembershipStatus
    if (cancellation?.immediately) status = 'canceled'
    else if (writing) status = 'pending_payment'
    else if (current) status = 'active'
    else if (pending.length > 0 && !(lastPaid && lastPaid.starts_at > at)) status = 'pending_payment'
    else if (lastPaid && lastPaid.starts_at > at) status = 'active'
    else status = cancellation ? 'canceled' : 'expired'
    const ended =
      !writing &&
      (status === 'canceled' || status === 'expired') &&
      (cancellation?.immediately === true || pending.length === 0)
    return { membership, periods, cancellation, status, current, lastPaid, pending, ended }
  }

  /** Gives back what an ended membership holds: its customer-and-lot claim, vehicles and slots. */
  async function release(membership: MembershipRecord) {
    const slots = await repo.slotsOf(membership._id, membership.vehicle_limit)
    for (const slot of slots) {
      await repo.releaseVehicleClaim(slot.vehicle_id, membership._id)
      await repo.releaseSlot(slot._id, slot.vehicle_id)
    }
    await repo.releaseClaim(`${membership.user_id}:${membership.lot_id}`, membership._id)
  }

  /** Brings the cached status up to the facts, and releases the claims of one that ended. */
  async function settle(membership: MembershipRecord): Promise<Derived> {
    const derived = await derive(membership)
    if (derived.ended && membership.released_at === null) {
      await release(membership)
      const released_at = now()
      await repo.cacheMembership(membership._id, { status: derived.status, released_at })
      derived.membership = { ...membership, status: derived.status, released_at }
    } else if (derived.status !== membership.status) {
      await repo.cacheMembership(membership._id, { status: derived.status })
      derived.membership = { ...membership, status: derived.status }
    }
    return derived
  }

  async function viewOf(derived: Derived) {
    const { membership, cancellation } = derived
    const slots = await repo.slotsOf(membership._id, membership.vehicle_limit)
    const latest = derived.periods.at(-1)
    const terms = (derived.current ?? derived.lastPaid ?? latest)?.terms
    const period = derived.current ?? derived.lastPaid
    return {
      id: membership._id,
      user_id: membership.user_id,
      plan_id: membership.plan_id,
      plan_name: terms?.name ?? null,
      lot_id: membership.lot_id,
      status: derived.status,
      auto_renew: membership.auto_renew && !cancellation,
      cancel_at_period_end: cancellation !== undefined && !cancellation.immediately,
      canceled_at: cancellation?.created_at.toISOString() ?? null,
      period_start: period?.starts_at.toISOString() ?? null,
      period_end: period?.ends_at.toISOString() ?? null,
      vehicle_limit: membership.vehicle_limit,
      vehicle_ids: slots.map((slot) => slot.vehicle_id),
      periods: derived.periods.map((p) => ({
        index: p.index,
        starts_at: p.starts_at.toISOString(),
        ends_at: p.ends_at.toISOString(),
        amount: p.terms.price,
        currency: p.terms.currency,
        payment_method: p.payment_method,
        payment_status: p.payment,
        payment_intent_id: p.payment_intent_id,
        client_secret: p.payment === 'pending' ? p.client_secret : null,
      })),
      created_at: membership.created_at.toISOString(),
      updated_at: membership.updated_at.toISOString(),
    }
  }

  async function visible(caller: Caller, id: string): Promise<MembershipRecord> {
    const membership = await repo.findMembership(id)
    if (!membership || (!staff(caller) && membership.user_id !== caller.userId)) throw noMembership()
    return membership
  }

  // --- claims -----------------------------------------------------------------------------------

  /** Is the holder of a claim gone for good: never written (after a while), or ended? */
  async function holderGone(membershipId: string, claimedAt: Date): Promise<boolean> {
    const holder = await repo.findMembership(membershipId)
    if (!holder) return Date.now() - claimedAt.getTime() > STALE_CLAIM_MS
    const derived = await settle(holder)
    return derived.ended
  }

  /** The insert of `${userId}:${lotId}` decides: one live membership per customer per facility. */
  async function claimMembership(key: string, membershipId: string) {
    for (let attempt = 0; attempt < 2; attempt++) {
      if (await repo.insertClaim({ _id: key, membership_id: membershipId, created_at: now() })) return
      const claim = await repo.findClaim(key)
      if (!claim) continue
      // A retry of the same subscription (same Idempotency-Key, same id) holds it already.
      if (claim.membership_id === membershipId) return
      if (await holderGone(claim.membership_id, claim.created_at)) {
        await repo.releaseClaim(key, claim.membership_id)
        continue
      }
      throw problem('CONFLICT', 'The customer has a membership at this facility already', 'already_member', {
        membership_id: claim.membership_id,
      })
    }
    throw problem('CONFLICT', 'The customer has a membership at this facility already', 'already_member')
  }

  /** Appends a vehicle's join or leave to its history (insert-only, the next free number). */
  async function recordVehicleEvent(vehicleId: string, membershipId: string, event: 'added' | 'removed') {
    for (let attempt = 0; attempt < 10; attempt++) {
      const { next } = await repo.vehicleHistory(vehicleId)
      const inserted = await repo.insertVehicleHistory({
        _id: `${vehicleId}:${next}`,
        vehicle_id: vehicleId,
        membership_id: membershipId,
        event,
        at: now(),
      })
      if (inserted) return
    }
    throw new AppError('CONFLICT', 'The vehicle is being changed by another request; retry')
  }

  /** A join that a crash may have left unwritten after the slot was won is written by the retry. */
  async function ensureAdded(vehicleId: string, membershipId: string) {
    const last = (await repo.vehicleHistory(vehicleId)).events.at(-1)
    if (last?.event !== 'added' || last.membership_id !== membershipId) {
      await recordVehicleEvent(vehicleId, membershipId, 'added')
    }
  }

  /**
   * The membership a vehicle was on at `at`: the last join or leave of its history at or before
   * then. A vehicle without any history (added before the history was kept) goes by its live claim.
   */
  async function membershipOfVehicleAt(vehicleId: string, at: Date): Promise<string | undefined> {
    const { events } = await repo.vehicleHistory(vehicleId)
    if (events.length === 0) {
      const claim = await repo.findVehicleClaim(vehicleId)
      if (!claim || claim.slot === null || claim.created_at > at) return undefined
      return claim.membership_id
    }
    let last: (typeof events)[number] | undefined
    for (const event of events) {
      if (event.at > at) continue
      if (!last || event.at >= last.at) last = event
    }
    return last?.event === 'added' ? last.membership_id : undefined
  }

  /**
   * A vehicle claim (one membership per vehicle), then a slot claim `${membershipId}:${n}`, n in
   * 1..limit: of any number of concurrent additions, at most `limit` vehicles get a slot.
   */
  async function registerVehicle(
    membership: Pick<MembershipRecord, '_id' | 'vehicle_limit'>,
    vehicleId: string,
  ) {
    let claimed = false
    for (let attempt = 0; attempt < 2 && !claimed; attempt++) {
      if (
        await repo.insertVehicleClaim({
          _id: vehicleId,
          membership_id: membership._id,
          slot: null,
          created_at: now(),
        })
      ) {
        claimed = true
        break
      }
      const claim = await repo.findVehicleClaim(vehicleId)
      if (!claim) continue
      if (claim.membership_id === membership._id) {
        // Added already, or being added by a twin request; one that never got its slot is redone.
        if (claim.slot !== null) return await ensureAdded(vehicleId, membership._id)
        if (Date.now() - claim.created_at.getTime() < STALE_CLAIM_MS) return
        claimed = true
        break
      }
      if (await holderGone(claim.membership_id, claim.created_at)) {
        await repo.releaseVehicleClaim(vehicleId, claim.membership_id)
        continue
      }
      throw problem('CONFLICT', 'The vehicle is registered to another membership', 'vehicle_taken')
    }
    if (!claimed)
      throw problem('CONFLICT', 'The vehicle is registered to another membership', 'vehicle_taken')

    for (let round = 0; round < 2; round++) {
      for (let n = 1; n <= membership.vehicle_limit; n++) {
        const slot = `${membership._id}:${n}`
        if (
          await repo.insertSlot({
            _id: slot,
            membership_id: membership._id,
            vehicle_id: vehicleId,
            created_at: now(),
          })
        ) {
          await repo.setVehicleSlot(vehicleId, membership._id, n)
          await recordVehicleEvent(vehicleId, membership._id, 'added')
          return
        }
      }
      // Every slot is taken; a slot whose vehicle claim does not point back at it is a leftover.
      let freed = false
      for (const slot of await repo.slotsOf(membership._id, membership.vehicle_limit)) {
        if (Date.now() - slot.created_at.getTime() < STALE_CLAIM_MS) continue
        const claim = await repo.findVehicleClaim(slot.vehicle_id)
        if (!claim || claim.membership_id !== membership._id) {
          await repo.releaseSlot(slot._id, slot.vehicle_id)
          freed = true
        }
      }
      if (!freed) break
    }
    await repo.releaseVehicleClaim(vehicleId, membership._id)
    throw problem(
      'UNPROCESSABLE',
      `The plan allows ${membership.vehicle_limit} vehicle(s) and they are registered`,
      'vehicle_limit',
      { vehicle_limit: membership.vehicle_limit },
    )
  }

  async function unregisterVehicle(membershipId: string, vehicleId: string): Promise<boolean> {
    const claim = await repo.findVehicleClaim(vehicleId)
    if (!claim || claim.membership_id !== membershipId) return false
    if (claim.slot !== null) await repo.releaseSlot(`${membershipId}:${claim.slot}`, vehicleId)
    await repo.releaseVehicleClaim(vehicleId, membershipId)
    await recordVehicleEvent(vehicleId, membershipId, 'removed')
    return true
  }

  async function requireOwnVehicles(memberId: string, vehicleIds: readonly string[]) {
    for (const vehicleId of vehicleIds) {
      if ((await deps.vehicleOwner(vehicleId)) !== memberId) {
        throw new AppError('NOT_FOUND', `No vehicle ${vehicleId} of the member`)
      }
    }
  }

  // --- payments ---------------------------------------------------------------------------------

  /** The period's PaymentIntent, made once (Stripe idempotency key `membership:${periodId}`). */
  async function ensureIntent(period: PeriodRecord): Promise<PeriodRecord> {
    if (period.payment_intent_id) return period
    const intent = await gateway.createIntent({
      amount: period.terms.price,
      currency: period.terms.currency,
      idempotencyKey: `membership:${period._id}`,
      metadata: { purpose: 'membership', membership_id: period.membership_id, period_id: period._id },
    })
    await repo.insertIntent({ _id: intent.id, period_id: period._id, created_at: now() })
    await repo.setPeriodIntent(period._id, intent.id, intent.client_secret)
    return { ...period, payment_intent_id: intent.id, client_secret: intent.client_secret }
  }

  async function recordState(
    period: PeriodRecord,
    state: PeriodStateRecord['state'],
    source: string,
    paymentMethodRef: string | null = null,
  ) {
    const at = now()
    await repo.insertPeriodState({
      _id: `${period._id}:${state}`,
      period_id: period._id,
      state,
      payment_method_ref: paymentMethodRef,
      source,
      created_at: at,
    })
    if (state === 'paid') await tellPaid(period, at)
  }

  /** Tells the money listener of a period paid for a price (once it is paid: at insert or by Stripe). */
  async function tellPaid(period: PeriodRecord, at: Date | null) {
    if (!deps.money || !at || period.terms.price <= 0) return
    try {
      const membership = await repo.findMembership(period.membership_id)
      if (!membership) return
      await deps.money({
        kind: 'settled',
        id: period._id,
        source: 'membership',
        lot_id: membership.lot_id,
        method: period.payment_method,
        currency: period.terms.currency,
        amount: period.terms.price,
        at,
      })
    } catch (error) {
      logger.warn({ err: error, period: period._id }, 'a money listener failed')
    }
  }

  /** What Stripe says of a period's intent, applied once: insert-only state facts. */
  async function applyIntent(period: PeriodRecord, intent: GatewayIntent, source: string, pm: string | null) {
    if (intent.status === 'succeeded') await recordState(period, 'paid', source, pm)
    else if (intent.status === 'canceled') await recordState(period, 'canceled', source)
  }

  /** Confirms a pending Stripe period; a declined card (402) leaves it pending for another card. */
  async function confirmPeriod(period: PeriodRecord, paymentMethod: string | undefined, source: string) {
    const withIntent = await ensureIntent(period)
    const intentId = withIntent.payment_intent_id as string
    const intent = await gateway.confirmIntent(
      intentId,
      paymentMethod,
      `membership-confirm:${intentId}:${paymentMethod ?? 'default'}`,
    )
    await applyIntent(withIntent, intent, source, paymentMethod ?? null)
    return intent
  }

  function paymentMethodFor(caller: Caller, requested: SubscribeInput['payment_method'], price: number) {
    const method = requested ?? 'stripe'
    if (method !== 'stripe' && !staff(caller)) {
      throw new AppError(
        'FORBIDDEN',
        'Cash and card-terminal payments are recorded by staff; pay with stripe',
      )
    }
    return (price === 0 ? 'free' : method) as MembershipPaymentMethod
  }

  function newPeriod(
    membershipId: string,
    index: number,
    startsAt: Date,
    plan: PlanRecord,
    method: MembershipPaymentMethod,
    origin: string,
    by: string,
  ): PeriodRecord {
    const created = now()
    return {
      _id: `${membershipId}:${index}`,
      membership_id: membershipId,
      index,
      starts_at: startsAt,
      ends_at: addMonths(startsAt, plan.duration_months),
      terms: termsOf(plan),
      payment_method: method,
      paid_at: method === 'stripe' ? null : created,
      payment_intent_id: null,
      client_secret: null,
      origin,
      created_by: by,
      created_at: created,
    }
  }

  const nextIndex = (periods: readonly Period[]) =>
    periods.length === 0 ? 0 : Math.max(...periods.map((p) => p.index)) + 1

  // --- fees -------------------------------------------------------------------------------------

  /** The membership a session gets, and what it grants up to `until`; undefined when none. */
  async function grantFor(session: SessionFacts, until: Date) {
    if (!session.vehicle_id) return undefined
    // Decided by the entry: a membership that ended (its claims released) while the car was
    // parked still counts, and a vehicle added after the entry gets nothing for this stay.
    const membershipId = await membershipOfVehicleAt(session.vehicle_id, session.entry_at)
    if (!membershipId) return undefined
    const membership = await repo.findMembership(membershipId)
    if (!membership || membership.lot_id !== session.lot_id) return undefined
    const derived = await derive(membership, session.entry_at)
    const canceled = derived.cancellation
    if (canceled?.immediately && canceled.created_at <= session.entry_at) return undefined
    const period = derived.current
    if (!period) return undefined
    const terms = period.terms
    const adjustments: Adjustment[] = []
    const base = { source: 'membership' as const, ref: membership._id }
    if (terms.unlimited) {
      adjustments.push({ ...base, kind: 'full', value: 0, label: labelOf(terms, 'unlimited parking') })
      return { membership, period, adjustments }
    }
    if (terms.included_hours !== null && terms.included_hours > 0) {
      const { entries } = await repo.usageOf(membership._id, period.index)
      const used = entries
        .filter((entry) => entry.session_id !== session.id)
        .reduce((sum, entry) => sum + entry.included_minutes_used, 0)
      const remaining = Math.max(0, terms.included_hours * 60 - used)
      const stay = Math.max(0, Math.ceil((until.getTime() - session.entry_at.getTime()) / 60_000))
      // Minutes another source covers first (a reservation's, a validation's) or a stay another
      // source covers in full are not taken from the included hours.
      let covered = 0
      if (remaining > 0 && stay > 0 && deps.earlierSources && deps.earlierSources.length > 0) {
        const earlier = (
          await Promise.all(deps.earlierSources.map((source) => source.adjustmentsFor(session, until)))
        ).flat()
        covered = earlier.some((a) => a.kind === 'full')
          ? stay
          : earlier.filter((a) => a.kind === 'free_minutes').reduce((sum, a) => sum + Math.max(0, a.value), 0)
      }
      const free = Math.min(remaining, Math.max(0, stay - covered))
      if (free > 0) {
        adjustments.push({
          ...base,
          kind: 'free_minutes',
          value: free,
          label: labelOf(terms, `${hoursText(free)} of the included hours`),
        })
      }
    }
    if (terms.discount_percentage > 0) {
      adjustments.push({
        ...base,
        kind: 'percentage',
        value: terms.discount_percentage,
        label: labelOf(terms, `${terms.discount_percentage}% off`),
      })
    }
    return { membership, period, adjustments }
  }

  /** The usage fact's numbered index entry, so that a period's usage reads go by `_id`. */
  async function indexUsage(usage: {
    _id: string
    membership_id: string
    period_index: number
    minutes: number
    included_minutes_used: number
    savings: number
  }) {
    const { entries, next } = await repo.usageOf(usage.membership_id, usage.period_index)
    const mine = entries.find((entry) => entry.session_id === usage._id)
    if (mine) {
      await repo.setUsageIndex(usage._id, mine._id)
      return
    }
    for (let k = next; k < next + 1000; k++) {
      const id = `${usage.membership_id}:${usage.period_index}:${k}`
      const inserted = await repo.insertUsageIndex({
        _id: id,
        session_id: usage._id,
        minutes: usage.minutes,
        included_minutes_used: usage.included_minutes_used,
        savings: usage.savings,
        created_at: now(),
      })
      if (inserted) {
        await repo.setUsageIndex(usage._id, id)
        return
      }
    }
  }

  const adjustmentSource: AdjustmentSource = {
    async adjustmentsFor(session, until) {
      if (!session.vehicle_id) return []
      // A closed session keeps what it was granted when it left.
      const usage = await repo.findUsage(session.id)
      if (usage) {
        return usage.adjustments.map((a) => ({
          kind: a.kind as Adjustment['kind'],
          value: a.value,
          label: a.label,
          source: 'membership' as const,
          ref: usage.membership_id,
        }))
      }
      return (await grantFor(session, until))?.adjustments ?? []
    },
  }

  const sessionListener: SessionListener = {
    async sessionClosed(session: SessionFacts, fee: FeeQuote) {
      if (!session.vehicle_id) return
      const existing = await repo.findUsage(session.id)
      if (existing) {
        if (existing.index_id === null) await indexUsage(existing)
        return
      }
      const closedAt = session.exit_at ?? now()
      // Granted for the stay the fee was priced for (within the exit window: up to the payment).
      const pricedUntil = new Date(session.entry_at.getTime() + fee.duration_minutes * 60_000)
      const grant = await grantFor(session, pricedUntil)
      if (!grant) return
      const lines = fee.breakdown.filter((line) => line.kind === 'membership')
      const savings = -lines.reduce((sum, line) => sum + line.amount, 0)
      // Included minutes are used only when they took money off the fee: none within a grace
      // period, without a tariff, or when nothing was left to reduce.
      const granted = grant.adjustments.find((a) => a.kind === 'free_minutes')
      const freeLine = granted
        ? (lines.find((line) => line.description === granted.label) ??
          lines.find((line) => line.description.endsWith('of the included hours')))
        : undefined
      const includedUsed = granted && freeLine && freeLine.amount !== 0 ? granted.value : 0
      const usage = {
        _id: session.id,
        membership_id: grant.membership._id,
        period_index: grant.period.index,
        minutes: fee.duration_minutes,
        included_minutes_used: includedUsed,
        savings: Math.max(0, savings),
        currency: fee.currency,
        adjustments: grant.adjustments.map((a) => ({ kind: a.kind, value: a.value, label: a.label })),
        index_id: null,
        closed_at: closedAt,
        created_at: now(),
      }
      if (await repo.insertUsage(usage)) {
        await indexUsage(usage)
        return
      }
      const won = await repo.findUsage(session.id)
      if (won && won.index_id === null) await indexUsage(won)
    },
  }

  /** A subscription with a given id: every step accepts the facts of an earlier attempt of it. */
  async function subscribeAs(id: string, caller: Caller, input: SubscribeInput) {
    const memberId = input.user_id ?? caller.userId
    if (memberId !== caller.userId) {
      if (!staff(caller)) throw new AppError('FORBIDDEN', 'Only staff subscribe another account')
      if ((await deps.accountRole(memberId)) === undefined) {
        throw new AppError('NOT_FOUND', `No account ${memberId}`)
      }
    }
    const plan = await repo.findPlan(input.plan_id)
    if (!plan || (!staff(caller) && !plan.is_active)) throw noPlan()
    if (!plan.is_active) throw problem('UNPROCESSABLE', 'The plan is not offered any more', 'plan_inactive')
    const method = paymentMethodFor(caller, input.payment_method, plan.price)
    const vehicleIds = [...new Set(input.vehicle_ids ?? [])]
    if (vehicleIds.length > plan.vehicle_limit) {
      throw problem('UNPROCESSABLE', `The plan allows ${plan.vehicle_limit} vehicle(s)`, 'vehicle_limit', {
        vehicle_limit: plan.vehicle_limit,
      })
    }
    await requireOwnVehicles(memberId, vehicleIds)

    const claimKey = `${memberId}:${plan.lot_id}`
    await claimMembership(claimKey, id)
    const registered: string[] = []
    try {
      for (const vehicleId of vehicleIds) {
        await registerVehicle({ _id: id, vehicle_limit: plan.vehicle_limit }, vehicleId)
        registered.push(vehicleId)
      }
    } catch (error) {
      // A retry of a subscription that was written leaves the first one's claims alone.
      if (!(await repo.findMembership(id))) {
        for (const vehicleId of registered) await unregisterVehicle(id, vehicleId)
        await repo.releaseClaim(claimKey, id)
      }
      throw error
    }
    const created = now()
    const membership: MembershipRecord = {
      _id: id,
      user_id: memberId,
      plan_id: plan._id,
      lot_id: plan.lot_id,
      vehicle_limit: plan.vehicle_limit,
      auto_renew: input.auto_renew ?? false,
      status: method === 'stripe' ? 'pending_payment' : 'active',
      released_at: null,
      created_by: caller.userId,
      created_at: created,
      updated_at: created,
    }
    // A retry (same id) goes on from the facts the first attempt wrote.
    const stored = (await repo.insertMembership(membership))
      ? membership
      : ((await repo.findMembership(id)) ?? membership)
    const fresh = newPeriod(id, 0, stored.created_at, plan, method, 'subscribe', caller.userId)
    const period = (await repo.insertPeriod(fresh)) ? fresh : ((await repo.findPeriod(fresh._id)) ?? fresh)
    await tellPaid(period, period.paid_at)
    // Stripe unreachable: the period stays pending; POST /pay makes the intent later, and the
    // renewals job ends a membership never paid.
    if (period.payment_method === 'stripe') await ensureIntent(period)
    return await viewOf(await settle(stored))
  }

  // --- the service ------------------------------------------------------------------------------

  return {
    adjustmentSource,
    sessionListener,

    plans: {
      async list(
        caller: Caller,
        query: Page & { lot_id?: string | undefined; is_active?: boolean | undefined },
      ) {
        const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor)
        const activeOnly = !staff(caller) || query.is_active === true
        const rows = await repo.listPlans({
          ...(query.lot_id ? { lotId: query.lot_id } : {}),
          activeOnly,
          ...(after ? { after } : {}),
          limit: query.limit + 1,
        })
        const filtered = staff(caller) && query.is_active === false ? rows.filter((p) => !p.is_active) : rows
        return pageOf(filtered, query.limit, toPlanView)
      },

      async get(caller: Caller, id: string) {
        const plan = await repo.findPlan(id)
        if (!plan || (!staff(caller) && !plan.is_active)) throw noPlan()
        return toPlanView(plan)
      },

      async create(input: PlanInput) {
        const currency = await deps.lotCurrency(input.lot_id)
        if (!currency) throw new AppError('NOT_FOUND', `No parking lot ${input.lot_id}`)
        const created = now()
        const plan: PlanRecord = {
          _id: uuidv7(),
          name: input.name.trim(),
          description: input.description?.trim() || null,
          lot_id: input.lot_id,
          duration_months: input.duration_months,
          price: input.price,
          currency,
          vehicle_limit: input.vehicle_limit,
          included_hours: input.included_hours ?? null,
          unlimited: input.unlimited ?? false,
          discount_percentage: input.discount_percentage ?? 0,
          is_active: input.is_active ?? true,
          created_at: created,
          updated_at: created,
        }
        await repo.insertPlan(plan)
        return toPlanView(plan)
      },

      /** A full replacement of the terms; memberships keep the terms of the periods they bought. */
      async replace(id: string, input: Omit<PlanInput, 'lot_id'>) {
        if (!(await repo.findPlan(id))) throw noPlan()
        const plan = await repo.replacePlan(id, {
          name: input.name.trim(),
          description: input.description?.trim() || null,
          duration_months: input.duration_months,
          price: input.price,
          vehicle_limit: input.vehicle_limit,
          included_hours: input.included_hours ?? null,
          unlimited: input.unlimited ?? false,
          discount_percentage: input.discount_percentage ?? 0,
          is_active: input.is_active ?? true,
        })
        if (!plan) throw noPlan()
        return toPlanView(plan)
      },
    },

    /**
     * With an Idempotency-Key, a retry with the same body answers the membership the first request
     * made (every step below accepts an id whose facts exist already); another body is a 422.
     */
    async subscribe(caller: Caller, input: SubscribeInput, idempotencyKey?: string | undefined) {
      return await keyedCreate(
        repo.idempotency,
        { kind: 'membership', callerId: caller.userId, key: idempotencyKey },
        input,
        async (id) => await subscribeAs(id, caller, input),
        async (id) => {
          const membership = await repo.findMembership(id)
          return membership ? await viewOf(await settle(membership)) : undefined
        },
      )
    },

    async list(
      caller: Caller,
      query: Page & {
        user_id?: string | undefined
        lot_id?: string | undefined
        status?: MembershipStatus | undefined
      },
    ) {
      const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor)
      const userId = staff(caller) ? query.user_id : caller.userId
      const rows = await repo.listMemberships({
        ...(userId ? { userId } : {}),
        ...(query.lot_id ? { lotId: query.lot_id } : {}),
        ...(query.status ? { status: query.status } : {}),
        ...(after ? { after } : {}),
        limit: query.limit + 1,
      })
      const page = pageOf(rows, query.limit, (row) => row)
      return {
        data: await Promise.all(page.data.map(async (row) => await viewOf(await derive(row)))),
        next_cursor: page.next_cursor,
      }
    },

    async get(caller: Caller, id: string) {
      return await viewOf(await settle(await visible(caller, id)))
    },

    async addVehicle(caller: Caller, id: string, vehicleId: string) {
      const membership = await visible(caller, id)
      const derived = await settle(membership)
      if (derived.ended) throw problem('CONFLICT', 'The membership has ended', 'membership_ended')
      await requireOwnVehicles(membership.user_id, [vehicleId])
      await registerVehicle(membership, vehicleId)
      return await viewOf(derived)
    },

    async removeVehicle(caller: Caller, id: string, vehicleId: string) {
      const membership = await visible(caller, id)
      if (!(await unregisterVehicle(membership._id, vehicleId))) {
        throw new AppError('NOT_FOUND', `The vehicle ${vehicleId} is not registered to this membership`)
      }
    },

    async usage(caller: Caller, id: string) {
      const derived = await settle(await visible(caller, id))
      const period = derived.current ?? derived.lastPaid
      const currency = period?.terms.currency ?? derived.periods[0]?.terms.currency ?? ''
      if (!period) {
        return {
          membership_id: id,
          hours_used: 0,
          hours_remaining: null,
          sessions_count: 0,
          savings_to_date: { amount: 0, currency },
          days_remaining: 0,
          period_start: null,
          period_end: null,
        }
      }
      const { entries } = await repo.usageOf(id, period.index)
      const minutes = entries.reduce((sum, entry) => sum + entry.minutes, 0)
      const includedUsed = entries.reduce((sum, entry) => sum + entry.included_minutes_used, 0)
      const terms = period.terms
      const remaining =
        terms.unlimited || terms.included_hours === null
          ? null
          : round2(Math.max(0, terms.included_hours * 60 - includedUsed) / 60)
      const left = derived.status === 'active' ? period.ends_at.getTime() - now().getTime() : 0
      return {
        membership_id: id,
        hours_used: round2(minutes / 60),
        hours_remaining: remaining,
        sessions_count: entries.length,
        savings_to_date: { amount: entries.reduce((sum, e) => sum + e.savings, 0), currency: terms.currency },
        days_remaining: Math.max(0, Math.ceil(left / DAY_MS)),
        period_start: period.starts_at.toISOString(),
        period_end: period.ends_at.toISOString(),
      }
    },

    /** Default: no renewal, it ends with its period. `immediately`: it ends now (no refund). */
    async cancel(caller: Caller, id: string, input: { immediately?: boolean | undefined }) {
      const membership = await visible(caller, id)
      const before = await derive(membership)
      if (before.ended) throw problem('CONFLICT', 'The membership has ended', 'membership_ended')
      const immediately = input.immediately === true || before.status === 'pending_payment'
      const inserted = await repo.insertCancellation({
        _id: id,
        immediately,
        canceled_by: caller.userId,
        created_at: now(),
      })
      if (!inserted && immediately) await repo.makeCancellationImmediate(id)
      await repo.cacheMembership(id, { auto_renew: false })
      if (immediately) {
        // An intent nobody paid yet is canceled at Stripe, so that it cannot be paid later.
        for (const period of before.pending) {
          if (period.payment_intent_id) {
            await gateway.cancelIntent(period.payment_intent_id).catch(() => undefined)
          }
          await recordState(period, 'canceled', 'cancel')
        }
      }
      return await viewOf(await settle({ ...membership, auto_renew: false }))
    },

    /** A new period after the current one: the insert of `${id}:${n}` makes it exactly once. */
    async renew(caller: Caller, id: string, input: { payment_method?: SubscribeInput['payment_method'] }) {
      const membership = await visible(caller, id)
      const derived = await settle(membership)
      if (derived.cancellation) {
        throw problem('CONFLICT', 'The membership is canceled; subscribe again', 'canceled')
      }
      if (derived.status !== 'active' || !derived.lastPaid) {
        throw problem('CONFLICT', `The membership is ${derived.status}`, 'not_active', {
          membership_status: derived.status,
        })
      }
      const lastPaid = derived.lastPaid
      const later = derived.periods.filter((p) => p.index > lastPaid.index && p.payment === 'pending')
      // One period ahead at most: a renewal that is paid already and has not begun yet is the
      // renewal (so that concurrent renewals paid at once still make exactly one new period).
      if (later.length > 0 || lastPaid.starts_at.getTime() > Date.now()) {
        throw problem('CONFLICT', 'The membership is renewed already; pay the renewal', 'already_renewed')
      }
      const plan = await repo.findPlan(membership.plan_id)
      if (!plan?.is_active)
        throw problem('UNPROCESSABLE', 'The plan is not offered any more', 'plan_inactive')
      const method = paymentMethodFor(caller, input.payment_method, plan.price)
      const period = newPeriod(
        id,
        nextIndex(derived.periods),
        lastPaid.ends_at,
        plan,
        method,
        'renew',
        caller.userId,
      )
      if (!(await repo.insertPeriod(period))) {
        throw problem('CONFLICT', 'The membership is renewed already; pay the renewal', 'already_renewed')
      }
      await tellPaid(period, period.paid_at)
      if (method === 'stripe') await ensureIntent(period)
      return await viewOf(await settle(membership))
    },

    /** Confirms the pending Stripe payment (the subscription or a renewal) with a payment method. */
    async pay(caller: Caller, id: string, input: { payment_method?: string | undefined }) {
      const membership = await visible(caller, id)
      const derived = await settle(membership)
      const period = derived.pending.find((p) => p.payment_method === 'stripe')
      if (!period) throw problem('CONFLICT', 'Nothing is waiting to be paid', 'nothing_due')
      await confirmPeriod(period, input.payment_method, 'pay')
      return await viewOf(await settle(membership))
    },

    /** A Stripe event of a membership's intent (forwarded by payments): what Stripe says now. */
    async onIntent(intentId: string, eventType: string) {
      const index = await repo.findIntent(intentId)
      const period = index ? await repo.findPeriod(index.period_id) : undefined
      if (!period) return
      const intent = await gateway.retrieveIntent(intentId)
      await applyIntent(period, intent, `event ${eventType}`, null)
      const membership = await repo.findMembership(period.membership_id)
      if (membership) await settle(membership)
    },

    /**
     * The renewals job: Stripe payments never made are canceled after the payment timeout,
     * memberships with auto-renewal get their next period shortly before the current one ends
     * (paid with the payment method that paid last), and ended ones release their claims.
     * Every step is a fact insert or an idempotent Stripe call: running it twice is running it once.
     */
    async runRenewals() {
      const counts = { renewed: 0, renewal_failed: 0, abandoned: 0, ended: 0 }
      let after: string | undefined
      for (;;) {
        const rows = await repo.listMemberships({
          statuses: ['active', 'pending_payment'],
          ...(after ? { after } : {}),
          limit: 100,
        })
        for (const membership of rows) {
          try {
            await renewalStep(membership, counts)
          } catch (error) {
            logger.warn({ err: error, membership: membership._id }, 'membership renewal step failed')
          }
        }
        if (rows.length < 100) return counts
        after = rows.at(-1)?._id
      }
    },
  }

  async function renewalStep(
    membership: MembershipRecord,
    counts: { renewed: number; renewal_failed: number; abandoned: number; ended: number },
  ) {
    let derived = await derive(membership)
    const at = now()
    for (const period of derived.pending) {
      if (period.origin === 'auto_renew') continue
      if (at.getTime() - period.created_at.getTime() < settings.paymentTimeoutMs) continue
      if (period.payment_intent_id) {
        const intent = await gateway.retrieveIntent(period.payment_intent_id)
        if (intent.status === 'succeeded' || intent.status === 'processing') {
          await applyIntent(period, intent, 'renewals job', null)
          continue
        }
        await gateway.cancelIntent(period.payment_intent_id).catch(() => undefined)
      }
      await recordState(period, 'canceled', 'renewals job: never paid')
      counts.abandoned++
    }
    derived = await derive(membership)
    const lastPaid = derived.lastPaid
    const renewing =
      membership.auto_renew &&
      !derived.cancellation &&
      lastPaid !== undefined &&
      !derived.periods.some(
        (p) => p.index > lastPaid.index && p.payment !== 'failed' && p.payment !== 'canceled',
      ) &&
      !derived.periods.some((p) => p.index > lastPaid.index && p.origin === 'auto_renew') &&
      lastPaid.ends_at.getTime() - at.getTime() <= settings.renewBeforeMs
    if (renewing) {
      const plan = await repo.findPlan(membership.plan_id)
      if (plan?.is_active) {
        const method: MembershipPaymentMethod = plan.price === 0 ? 'free' : 'stripe'
        const period = newPeriod(
          membership._id,
          nextIndex(derived.periods),
          lastPaid.ends_at,
          plan,
          method,
          'auto_renew',
          'renewals-job',
        )
        if ((await repo.insertPeriod(period)) && method === 'free') counts.renewed++
      }
      derived = await derive(membership)
    }
    // An automatic renewal is paid with the payment method that paid last; no method, a declined
    // card or an unpaid answer: not renewed, and the membership expires with its period.
    for (const period of derived.pending) {
      if (period.origin !== 'auto_renew') continue
      const saved = [...derived.periods].reverse().find((p) => p.paidWith !== null)?.paidWith ?? null
      if (!saved) {
        await recordState(period, 'failed', 'renewals job: no saved payment method')
        counts.renewal_failed++
        continue
      }
      try {
        const intent = await confirmPeriod(period, saved, 'renewals job')
        if (intent.status === 'succeeded') counts.renewed++
        else if (intent.status !== 'processing') {
          await recordState(period, 'failed', `renewals job: ${intent.status}`)
          counts.renewal_failed++
        }
      } catch (error) {
        if (error instanceof AppError && error.code === 'PAYMENT_REQUIRED') {
          await recordState(period, 'failed', 'renewals job: declined')
          counts.renewal_failed++
        } else {
          throw error
        }
      }
    }
    const settled = await settle(membership)
    if (settled.ended && membership.released_at === null) counts.ended++
  }
}
