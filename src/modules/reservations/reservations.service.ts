import { randomBytes } from 'node:crypto'
import { formatMoney } from '../../../workers/fee.ts'
import { AppError, type FieldProblem } from '../../shared/errors.ts'
import { type IdempotencyStore, keyedCreate } from '../../shared/idempotency.ts'
import { decodeCursor, pageOf, uuidv7 } from '../../shared/ids.ts'
import type { Logger } from '../../shared/logger.ts'
import type { MoneyEvent } from '../analytics/analytics.service.ts'
import type { FacilitiesService, SpaceView } from '../facilities/facilities.service.ts'
import type { SpaceType } from '../occupancy/occupancy.contract.ts'
import type { GatewayIntent, PaymentGateway } from '../payments/stripe.gateway.ts'
import type {
  Adjustment,
  AdjustmentSource,
  PricingPort,
  ReservedEntry,
  SessionFacts,
  SessionListener,
} from '../sessions/operations.contract.ts'
import {
  type Caller,
  type EntryResult,
  type SpaceArbiter,
  spacePreferences,
} from '../sessions/sessions.service.ts'
import type { VehiclesService } from '../vehicles/vehicles.service.ts'
import { normalizePlate } from '../vehicles/vehicles.service.ts'
import type {
  OutcomeKind,
  OutcomeRecord,
  PaidRecord,
  RefundRecord,
  ReservationRecord,
  ReservationStatus,
} from './reservations.model.ts'
import type { ReservationsRepository } from './reservations.repository.ts'

export type ReservationSettings = {
  slotMinutes: number
  maxHours: number
  paymentTimeoutMinutes: number
  freeCancelHours: number
  lateCancelRefundPercent: number
  checkinEarlyMinutes: number
  noShowGraceMinutes: number
  noShowRefundPercent: number
}

/** What a check-in answers: sessions' entry answer (session, ticket, space) and the reservation. */
export type CheckInResult = EntryResult & { reservation: ReservationView }

/** What check-in asks of sessions (the lead's sessions.enterReserved), and its active sessions. */
export type ReservedEntrance = {
  enterReserved(entry: ReservedEntry, caller: Caller): Promise<EntryResult>
  list(
    caller: Caller,
    query: { limit: number; cursor?: string | undefined; status?: 'active'; lot_id?: string | undefined },
  ): Promise<{ data: { id: string; reservation_id: string | null }[]; next_cursor: string | null }>
}

export type ReservationInput = {
  vehicle_id?: string | undefined
  license_plate?: string | undefined
  lot_id?: string | undefined
  zone_id?: string | undefined
  space_id?: string | undefined
  space_type?: SpaceType | undefined
  start_time: string
  end_time: string
  special_requests?: string | undefined
  prepay?: boolean | undefined
}

export type ReservationUpdate = {
  start_time?: string | undefined
  end_time?: string | undefined
  vehicle_id?: string | undefined
  license_plate?: string | undefined
  special_requests?: string | null | undefined
}

type Page = { limit: number; cursor?: string | undefined }

/** Unambiguous (no 0/O, no 1/I): 32 symbols, so a byte modulo 32 is unbiased. */
const CODE_ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789'
const newCode = () =>
  `RSV-${[...randomBytes(8)].map((b) => CODE_ALPHABET[b % CODE_ALPHABET.length]).join('')}`

/** A slot claimed by a booking that never wrote its reservation is free to take after this long. */
const ABANDONED_SLOT_MS = 60_000
/** A window may start this much before "now" (clocks of clients differ). */
const PAST_TOLERANCE_MS = 60_000
const MINUTE = 60_000
/** A check-in outcome this old with no session is a check-in that died (a crash) and is cleared. */
const ABANDONED_CHECKIN_MS = 5 * MINUTE
const JOB_CALLER: Caller = { userId: 'job:reservations', role: 'admin' }
/** A refund Stripe refused is tried again this many times in all, after 5, 10, 20, 40 minutes. */
const MAX_REFUND_ATTEMPTS = 5
const REFUND_RETRY_MINUTES = 5
/** The jobs read due reservations this many at a time. */
const DUE_PAGE = 200

const terminal: readonly ReservationStatus[] = ['cancelled', 'no_show', 'expired', 'completed']

const holderOf = (reservationId: string) => `rsv:${reservationId}`

function durationLabel(minutes: number): string {
  const h = Math.floor(minutes / 60)
  const m = minutes % 60
  if (m === 0) return `${h} h`
  return h === 0 ? `${m} min` : `${h} h ${m} min`
}

const byNumber = (a: { number: string }, b: { number: string }) =>
  a.number.localeCompare(b.number, 'en', { numeric: true })

export function toReservationView(r: ReservationRecord, refund?: RefundRecord | null) {
  return {
    id: r._id,
    confirmation_number: r.confirmation_number,
    status: r.status,
    user_id: r.user_id,
    lot_id: r.lot_id,
    level_id: r.level_id,
    zone_id: r.zone_id,
    space_id: r.space_id,
    space_number: r.space_number,
    space_type: r.space_type,
    vehicle_id: r.vehicle_id,
    license_plate: r.license_plate,
    vehicle_type: r.vehicle_type,
    start_time: r.start_at.toISOString(),
    end_time: r.end_at.toISOString(),
    special_requests: r.special_requests,
    prepaid: r.prepay,
    amount: r.amount,
    currency: r.currency,
    payment_status: paymentStatusOf(r),
    payment_intent_id: r.payment_intent_id,
    paid_at: r.paid_at?.toISOString() ?? null,
    check_in_opens_at: r.hold_from.toISOString(),
    check_in_closes_at: r.no_show_at.toISOString(),
    session_id: r.session_id,
    checked_in_at: r.checked_in_at?.toISOString() ?? null,
    cancelled_at: r.cancelled_at?.toISOString() ?? null,
    refund:
      refund || r.refund_amount !== null
        ? {
            amount: refund?.amount ?? r.refund_amount ?? 0,
            currency: r.currency,
            status: (refund ? refund.provider_refund_id : r.refund_id)
              ? ('succeeded' as const)
              : refund?.refusal
                ? ('refused' as const)
                : ('pending' as const),
            refund_id: refund?.provider_refund_id ?? r.refund_id,
            failure_reason: (refund?.provider_refund_id ? null : refund?.refusal) ?? null,
          }
        : null,
    created_at: r.created_at.toISOString(),
    updated_at: r.updated_at.toISOString(),
  }
}
export type ReservationView = ReturnType<typeof toReservationView>

/**
 * Told after the durable write of a booking, a cancel (with its refund, if any) and a check-in
 * (with its session), once or more (a retry tells again): listeners must be idempotent. A
 * listener's failure is logged and never fails the request.
 */
export type ReservationListener = {
  created?(reservation: ReservationView): Promise<void>
  cancelled?(reservation: ReservationView): Promise<void>
  checkedIn?(reservation: ReservationView): Promise<void>
}

function paymentStatusOf(r: ReservationRecord): 'not_required' | 'pending' | 'paid' | 'refunded' {
  if (!r.prepay || !r.amount) return 'not_required'
  if (r.refund_amount && r.refund_amount > 0) return 'refunded'
  return r.paid_at ? 'paid' : 'pending'
}

/**
 * Reservations: availability for a window, bookings that claim insert-only slot facts (the arbiter
 * of "no double booking"), one insert-only outcome per reservation (check-in, cancel, no-show,
 * expiry), prepayment through Stripe with refunds by the cancellation time, the `rsv:` hold in the
 * hot state around the start, and the ports sessions call (fee adjustment, session closed).
 */
export function createReservationsService(deps: {
  repo: ReservationsRepository
  facilities: Pick<FacilitiesService, 'getLot' | 'getZone' | 'findSpace' | 'listSpaces'>
  vehicles: Pick<VehiclesService, 'get' | 'entryProfile'>
  pricing: () => PricingPort
  gateway: () => PaymentGateway
  spaces: Pick<SpaceArbiter, 'hold' | 'release'>
  sessions: () => ReservedEntrance
  /** Idempotency-Keys of bookings. */
  idempotency: IdempotencyStore
  logger: Logger
  settings: ReservationSettings
  /** Told of a prepayment and of a refund Stripe took (analytics' day counters); failures only logged. */
  money?: (event: MoneyEvent) => Promise<void>
  /** Told of bookings, cancels and check-ins (webhook events). */
  listener?: ReservationListener
}) {
  const { repo, facilities, settings, logger } = deps

  async function tell(
    what: keyof ReservationListener,
    view: () => Promise<ReservationView> | ReservationView,
  ) {
    const told = deps.listener?.[what]
    if (!told) return
    try {
      await told(await view())
    } catch (error) {
      logger.warn({ err: error, what }, 'a reservation listener failed')
    }
  }
  const slotMs = settings.slotMinutes * MINUTE

  const notFound = (what: string) => new AppError('NOT_FOUND', `No reservation ${what}`)
  const isStaff = (caller: Caller) => caller.role !== 'customer'
  const canSee = (caller: Caller, r: ReservationRecord) => isStaff(caller) || r.user_id === caller.userId

  async function visible(caller: Caller, id: string): Promise<ReservationRecord> {
    const r = await repo.findReservation(id)
    if (!r || !canSee(caller, r)) throw notFound(id)
    return r
  }

  function windowProblem(field: string, reason: string, detail: string, where: FieldProblem['in']) {
    return new AppError('UNPROCESSABLE', detail, {
      errors: [{ in: where, field, pointer: `/${field}`, reason }],
      extensions: { reason },
    })
  }

  /** The window's rules: end after start, not in the past, at most RESERVATION_MAX_HOURS. */
  function windowOf(startText: string, endText: string, now: Date, where: FieldProblem['in']) {
    const start = new Date(startText)
    const end = new Date(endText)
    if (end <= start)
      throw windowProblem('end_time', 'end_before_start', 'The end_time must be after the start_time', where)
    if (start.getTime() < now.getTime() - PAST_TOLERANCE_MS)
      throw windowProblem('start_time', 'start_in_past', 'The start_time is in the past', where)
    if (end.getTime() - start.getTime() > settings.maxHours * 60 * MINUTE)
      throw windowProblem(
        'end_time',
        'too_long',
        `A reservation lasts at most ${settings.maxHours} hours`,
        where,
      )
    return { start, end }
  }

  /** Every slot the window overlaps, in time order: the same order for every booking. */
  function slotsOf(spaceId: string, start: Date, end: Date): string[] {
    const ids: string[] = []
    for (let t = Math.floor(start.getTime() / slotMs) * slotMs; t < end.getTime(); t += slotMs)
      ids.push(`${spaceId}:${new Date(t).toISOString()}`)
    return ids
  }
  const slotStart = (spaceId: string, slotId: string) => new Date(slotId.slice(spaceId.length + 1))

  async function spacesOf(scope: { lotId?: string; zoneId?: string }): Promise<SpaceView[]> {
    const all: SpaceView[] = []
    let cursor: string | undefined
    do {
      const page = await facilities.listSpaces({
        limit: 500,
        cursor,
        lot_id: scope.zoneId ? undefined : scope.lotId,
        zone_id: scope.zoneId,
      })
      all.push(...page.data)
      cursor = page.next_cursor ?? undefined
    } while (cursor)
    return all
  }

  /**
   * A slot left by a write that never finished (its reservation never written, ended, or moved
   * elsewhere) goes: only the holder's claim, by `_id` and reservation id. True when it went.
   */
  async function clearStaleSlot(slotId: string): Promise<boolean> {
    const slot = await repo.findSlot(slotId)
    if (!slot) return true
    const holder = await repo.findReservation(slot.reservation_id)
    const stale = holder
      ? terminal.includes(holder.status) || !holder.slot_ids.includes(slotId)
      : Date.now() - slot.created_at.getTime() > ABANDONED_SLOT_MS
    if (!stale) return false
    await repo.releaseSlots(slot.reservation_id, [slotId])
    return true
  }

  /** Claims every slot of the window on the first candidate that has them all. */
  async function claimFirst(reservationId: string, candidates: readonly SpaceView[], start: Date, end: Date) {
    for (const space of candidates) {
      const slots = slotsOf(space.id, start, end)
      for (let attempt = 0; attempt < 2; attempt++) {
        const taken = await repo.claimSlots(reservationId, slots, space.id)
        if (taken === null) return { space, slots }
        if ((await repo.findSlot(taken))?.reservation_id === reservationId) {
          // A twin of this request (the same Idempotency-Key) is booking under the same id.
          throw new AppError('CONFLICT', 'A request with this Idempotency-Key is in progress; retry')
        }
        if (attempt > 0 || !(await clearStaleSlot(taken))) break
      }
    }
    return null
  }

  async function issueCode(reservationId: string): Promise<string> {
    for (;;) {
      const code = newCode()
      if (await repo.claimCode(code, reservationId)) return code
    }
  }

  /** The vehicle booked: a customer's own (by id or plate), or any plate for staff. */
  async function vehicleOf(
    caller: Caller,
    input: { vehicle_id?: string | undefined; license_plate?: string | undefined },
  ) {
    if (input.vehicle_id) {
      const vehicle = await deps.vehicles.get(caller, input.vehicle_id)
      const profile = await deps.vehicles.entryProfile(vehicle.plate_normalized)
      return {
        vehicleId: vehicle.id,
        plate: vehicle.plate_normalized,
        licensePlate: vehicle.license_plate,
        ownerId: vehicle.owner_id,
        profile,
      }
    }
    if (input.license_plate) {
      const plate = normalizePlate(input.license_plate)
      const profile = await deps.vehicles.entryProfile(plate)
      if (!isStaff(caller) && profile && profile.ownerId !== caller.userId) {
        throw new AppError('UNPROCESSABLE', `The plate ${plate} is registered to another account`, {
          errors: [
            { in: 'body', field: 'license_plate', pointer: '/license_plate', reason: 'not_your_vehicle' },
          ],
          extensions: { reason: 'not_your_vehicle' },
        })
      }
      return {
        vehicleId: profile?.vehicleId ?? null,
        plate,
        licensePlate: input.license_plate.trim(),
        ownerId: profile?.ownerId ?? null,
        profile,
      }
    }
    throw new AppError('VALIDATION_FAILED', 'Say which vehicle: vehicle_id or license_plate', {
      errors: [
        {
          in: 'body',
          field: 'vehicle_id',
          pointer: '/vehicle_id',
          reason: 'vehicle_id or license_plate is required',
        },
      ],
    })
  }

  /** Where: a specific space, a zone or a lot; they must agree. */
  async function placeOf(input: {
    lot_id?: string | undefined
    zone_id?: string | undefined
    space_id?: string | undefined
  }) {
    const mismatch = (field: string) =>
      new AppError('UNPROCESSABLE', `The ${field} does not contain the place asked for`, {
        errors: [{ in: 'body', field, pointer: `/${field}`, reason: 'wrong_lot' }],
        extensions: { reason: 'wrong_lot' },
      })
    if (input.space_id) {
      const space = await facilities.findSpace(input.space_id)
      if (!space) throw new AppError('NOT_FOUND', `No space ${input.space_id}`)
      if (input.zone_id && input.zone_id !== space.zone_id) throw mismatch('zone_id')
      if (input.lot_id && input.lot_id !== space.lot_id) throw mismatch('lot_id')
      return { lot: await facilities.getLot(space.lot_id), zoneId: space.zone_id, space }
    }
    if (input.zone_id) {
      const zone = await facilities.getZone(input.zone_id)
      if (input.lot_id && input.lot_id !== zone.lot_id) throw mismatch('lot_id')
      return { lot: await facilities.getLot(zone.lot_id), zoneId: zone.id, space: undefined }
    }
    if (input.lot_id)
      return { lot: await facilities.getLot(input.lot_id), zoneId: undefined, space: undefined }
    throw new AppError('VALIDATION_FAILED', 'Say where: lot_id, zone_id or space_id', {
      errors: [
        {
          in: 'body',
          field: 'lot_id',
          pointer: '/lot_id',
          reason: 'lot_id, zone_id or space_id is required',
        },
      ],
    })
  }

  /** Spaces that can be booked for the window, in allocation order (type preference, then number). */
  async function candidatesOf(
    scope: { lotId: string; zoneId?: string | undefined },
    types: readonly SpaceType[],
    start: Date,
    end: Date,
    except?: string,
  ): Promise<SpaceView[]> {
    const [spaces, overlapping] = await Promise.all([
      spacesOf(scope.zoneId ? { zoneId: scope.zoneId } : { lotId: scope.lotId }),
      repo.overlapping(scope.lotId, start, end),
    ])
    const reserved = new Set(overlapping.filter((r) => r.space_id !== except).map((r) => r.space_id))
    return spaces
      .filter((s) => types.includes(s.type) && s.overlay === null && !reserved.has(s.id))
      .sort((a, b) => types.indexOf(a.type) - types.indexOf(b.type) || byNumber(a, b))
  }

  async function priceOf(r: {
    lotId: string
    zoneId: string
    vehicleType: string
    start: Date
    end: Date
    currency: string
    timeZone: string
  }) {
    const tariff = await deps.pricing().tariffFor({
      lotId: r.lotId,
      zoneId: r.zoneId,
      vehicleType: r.vehicleType,
      at: r.start,
    })
    if (!tariff) return 0
    const quote = await deps.pricing().quote({
      tariff,
      currency: r.currency,
      timeZone: r.timeZone,
      entryAt: r.start,
      exitAt: r.end,
      lostTicket: false,
      adjustments: [],
    })
    return quote.total
  }

  // Outcomes: one insert-only fact decides; whoever meets it finishes its effects (idempotent).

  async function decide(
    r: ReservationRecord,
    outcome: OutcomeKind,
    at: Date,
    by: string,
  ): Promise<{ won: boolean; fact: OutcomeRecord }> {
    const fact: OutcomeRecord = { _id: r._id, outcome, at, by, token: uuidv7() }
    if (await repo.claimOutcome(fact)) return { won: true, fact }
    const existing = await repo.findOutcome(r._id)
    if (!existing) return await decide(r, outcome, at, by)
    if (await abandonedCheckIn(existing, at)) return await decide(r, outcome, at, by)
    return { won: false, fact: existing }
  }

  /**
   * A check-in outcome whose check-in died before the session was written (a crash): older than
   * a few minutes, the reservation still open, no session id, and no active session made from it.
   * It goes (by its token: only that outcome), so the reservation goes on (check-in again, or a
   * no-show). When the session was written but not the reservation, the reservation is repaired.
   */
  async function abandonedCheckIn(outcome: OutcomeRecord, now: Date): Promise<boolean> {
    if (outcome.outcome !== 'checked_in' || now.getTime() - outcome.at.getTime() < ABANDONED_CHECKIN_MS)
      return false
    const r = await repo.findReservation(outcome._id)
    if (!r || r.session_id || (r.status !== 'confirmed' && r.status !== 'pending_payment')) return false
    const session = await activeSessionFrom(r)
    if (session) {
      await repo.updateReservation(r._id, {
        status: 'checked_in',
        session_id: session,
        checked_in_at: outcome.at,
        held: false,
      })
      return false
    }
    await repo.dropOutcome(r._id, outcome.token)
    logger.warn({ reservation: r._id, at: outcome.at }, 'reservation: abandoned check-in outcome cleared')
    return true
  }

  /** The active session of the reservation's lot checked in from it (rare path: crash recovery). */
  async function activeSessionFrom(r: ReservationRecord): Promise<string | null> {
    let cursor: string | undefined
    do {
      const page = await deps
        .sessions()
        .list(JOB_CALLER, { limit: 100, cursor, status: 'active', lot_id: r.lot_id })
      const found = page.data.find((s) => s.reservation_id === r._id)
      if (found) return found.id
      cursor = page.next_cursor ?? undefined
    } while (cursor)
    return null
  }

  /**
   * Every due row, a page at a time by `_id`: rows a run cannot resolve (Stripe down, a payment
   * processing) are passed over, not read again and again ahead of the rest.
   */
  async function* dueRows(
    status: ReservationStatus,
    field: 'hold_from' | 'no_show_at' | 'payment_deadline',
    now: Date,
    extra: { held?: boolean } = {},
  ): AsyncIterable<ReservationRecord> {
    for (let after = ''; ; ) {
      const page = await repo.due(status, field, now, extra, after)
      yield* page
      const last = page.at(-1)
      if (!last || page.length < DUE_PAGE) return
      after = last._id
    }
  }

  function refundAmountOf(r: ReservationRecord, outcome: OutcomeRecord, paid: PaidRecord): number {
    // Money that came in after the reservation ended was never owed.
    if (paid.at > outcome.at) return paid.amount
    switch (outcome.outcome) {
      case 'expired':
        return paid.amount
      case 'cancelled': {
        const lead = r.start_at.getTime() - outcome.at.getTime()
        if (lead >= settings.freeCancelHours * 60 * MINUTE) return paid.amount
        if (lead > 0) return Math.floor((paid.amount * settings.lateCancelRefundPercent) / 100)
        return 0
      }
      case 'no_show':
        return Math.floor((paid.amount * settings.noShowRefundPercent) / 100)
      case 'checked_in':
        return 0
    }
  }

  /** Tells the money listener (analytics' day counters) of a prepayment or a refund Stripe took. */
  async function tellMoney(
    kind: MoneyEvent['kind'],
    r: ReservationRecord,
    fact: { amount: number; at: Date },
  ) {
    const event = { kind, id: r._id, source: 'reservation' as const, lot_id: r.lot_id, method: 'stripe' }
    await deps
      .money?.({ ...event, currency: r.currency, amount: fact.amount, at: fact.at })
      .catch((error) => logger.warn({ err: error, reservation: r._id }, 'a money listener failed'))
  }

  /**
   * The one refund of a reservation, at Stripe with the key `reservation-refund:<id>` (`:<n>` after
   * n refusals). A lost answer leaves it in doubt (the same key asks again); a refusal is kept
   * (`refused`, Stripe's message) and only `retry` (the tick, after its backoff) tries again.
   */
  async function refundOnce(
    r: ReservationRecord,
    paid: PaidRecord,
    amount: number,
    options: { retry?: boolean; now?: Date } = {},
  ): Promise<RefundRecord | null> {
    const now = options.now ?? new Date()
    let fact = await repo.findRefund(r._id)
    if (!fact) {
      const mine: RefundRecord = {
        _id: r._id,
        amount,
        intent_id: paid.intent_id,
        provider_refund_id: null,
        at: now,
        refusal: null,
        attempts: 0,
        retry_at: null,
      }
      fact = (await repo.claimRefund(mine)) ? mine : ((await repo.findRefund(r._id)) ?? mine)
    }
    if (fact.provider_refund_id) {
      await repo.updateReservation(r._id, { refund_amount: fact.amount, refund_id: fact.provider_refund_id })
      return fact
    }
    const attempts = fact.attempts ?? 0
    if (fact.refusal) {
      const due = options.retry && attempts < MAX_REFUND_ATTEMPTS && (fact.retry_at ?? now) <= now
      if (!due) return fact
      await repo.retryRefund(r._id)
      fact = { ...fact, refusal: null, retry_at: null }
    }
    try {
      const refund = await deps.gateway().refund({
        paymentIntentId: fact.intent_id,
        amount: fact.amount,
        idempotencyKey:
          attempts === 0 ? `reservation-refund:${r._id}` : `reservation-refund:${r._id}:${attempts}`,
      })
      await repo.settleRefund(r._id, refund.id)
      fact = { ...fact, provider_refund_id: refund.id }
      await tellMoney('refunded', r, fact)
    } catch (error) {
      if (error instanceof AppError && error.code === 'UNPROCESSABLE') {
        // Stripe refused: no money moved. Kept and shown as refused; the tick tries again (with
        // the next key: Stripe would answer the same key's refusal again) after a backoff.
        const refused = attempts + 1
        const retryAt = new Date(now.getTime() + REFUND_RETRY_MINUTES * MINUTE * 2 ** (refused - 1))
        await repo.refuseRefund(r._id, error.message, refused, retryAt)
        const log = refused >= MAX_REFUND_ATTEMPTS ? logger.error : logger.warn
        log.call(
          logger,
          { reservation: r._id, reason: error.message, attempts: refused },
          refused >= MAX_REFUND_ATTEMPTS
            ? 'reservation refund refused; no more attempts (staff must refund)'
            : 'reservation refund refused; tried again later',
        )
        return { ...fact, refusal: error.message, attempts: refused, retry_at: retryAt }
      }
      // The answer was lost: the fact stays in doubt; the same key asks again next time.
      logger.warn({ reservation: r._id, reason: (error as Error).message }, 'reservation refund in doubt')
    }
    await repo.updateReservation(r._id, { refund_amount: fact.amount, refund_id: fact.provider_refund_id })
    return fact
  }

  /** Applies an ending outcome's effects: status, hold, slots, refund. Safe to run again. */
  async function finish(r: ReservationRecord, outcome: OutcomeRecord): Promise<ReservationRecord> {
    if (outcome.outcome === 'checked_in') return r
    await deps.spaces.release(holderOf(r._id))
    await repo.releaseSlots(r._id, r.slot_ids)
    const fields: Partial<ReservationRecord> = { status: outcome.outcome, held: false }
    if (outcome.outcome === 'cancelled') fields.cancelled_at = outcome.at
    await repo.updateReservation(r._id, fields)
    const paid = await repo.findPaid(r._id)
    if (paid) {
      const amount = refundAmountOf(r, outcome, paid)
      if (amount > 0) await refundOnce(r, paid, amount)
    }
    const finished = (await repo.findReservation(r._id)) ?? { ...r, ...fields }
    // Every path that finishes a cancel tells (a cancel that failed half-way is finished later).
    if (outcome.outcome === 'cancelled') await tell('cancelled', () => withRefund(finished))
    return finished
  }

  function stateConflict(r: ReservationRecord, outcome: OutcomeKind | ReservationStatus) {
    if (outcome === 'checked_in' || outcome === 'completed') {
      return new AppError('CONFLICT', `The reservation ${r.confirmation_number} is checked in already`, {
        extensions: { reason: 'already_checked_in', reservation_status: outcome, session_id: r.session_id },
      })
    }
    return new AppError(
      'CONFLICT',
      `The reservation ${r.confirmation_number} is ${outcome.replace('_', ' ')}`,
      {
        extensions: { reason: outcome, reservation_status: outcome },
      },
    )
  }

  // Payment

  /**
   * The prepayment succeeded at Stripe: the paid fact, then the status unless an outcome came first.
   * `at` is when the money counts as arrived: when the platform learned of it, unless the caller
   * knows it came earlier (a cancel that finds the intent paid: it was paid before the cancel).
   */
  async function markPaid(
    r: ReservationRecord,
    intent: GatewayIntent,
    at = new Date(),
  ): Promise<ReservationRecord> {
    // The price the intent was made for (stripe-mock answers lookups with a canned amount).
    const paid: PaidRecord = {
      _id: r._id,
      intent_id: intent.id,
      amount: r.amount ?? intent.amount,
      currency: r.currency,
      at,
    }
    await repo.recordPaid(paid)
    const fact = (await repo.findPaid(r._id)) ?? paid
    await tellMoney('settled', r, fact)
    const outcome = await repo.findOutcome(r._id)
    if (!outcome) {
      if (r.status === 'pending_payment' || !r.paid_at)
        await repo.updateReservation(r._id, {
          status: r.status === 'pending_payment' ? 'confirmed' : r.status,
          paid_at: fact.at,
        })
      // An outcome that raced in after our read wins over the status we wrote.
      const late = await repo.findOutcome(r._id)
      if (late) return await finish((await repo.findReservation(r._id)) ?? r, late)
      return (await repo.findReservation(r._id)) ?? r
    }
    await repo.updateReservation(r._id, { paid_at: fact.at })
    return await finish({ ...r, paid_at: fact.at }, outcome)
  }

  async function applyIntent(r: ReservationRecord, intent: GatewayIntent): Promise<ReservationRecord> {
    if (intent.status === 'succeeded') return await markPaid(r, intent)
    return r
  }

  // The hot state

  /** Places the `rsv:` hold; a space that is taken (a car on it) is left for the next tick. */
  async function placeHold(r: ReservationRecord): Promise<boolean> {
    const held = await deps.spaces.hold(holderOf(r._id), r.space_id)
    if (held === 'unknown-space') {
      logger.warn(
        { reservation: r._id, space: r.space_id },
        'reservation hold: the space is not in the hot state',
      )
      return false
    }
    if (!held) return false
    // An outcome that came meanwhile (a check-in, a cancel) means the hold is not wanted any more.
    if (await repo.findOutcome(r._id)) {
      const current = await repo.findReservation(r._id)
      if (current?.status !== 'checked_in') await deps.spaces.release(holderOf(r._id))
      return false
    }
    await repo.updateReservation(r._id, { held: true })
    return true
  }

  async function checkInReservation(caller: Caller, r: ReservationRecord, at: Date): Promise<CheckInResult> {
    if (r.status !== 'confirmed' && r.status !== 'pending_payment') throw stateConflict(r, r.status)
    const existing = await repo.findOutcome(r._id)
    if (existing && !(await abandonedCheckIn(existing, at))) {
      await finish(r, existing)
      throw stateConflict(r, existing.outcome)
    }
    if (r.status === 'pending_payment') {
      throw new AppError(
        'PAYMENT_REQUIRED',
        `The reservation ${r.confirmation_number} is prepaid and not paid yet: ${formatMoney(r.amount ?? 0, r.currency)}`,
        { extensions: { amount_due: r.amount ?? 0, currency: r.currency, reservation_id: r._id } },
      )
    }
    if (at < r.hold_from) {
      throw new AppError('UNPROCESSABLE', `Check-in opens at ${r.hold_from.toISOString()}`, {
        extensions: { reason: 'too_early', opens_at: r.hold_from.toISOString() },
      })
    }
    if (at > r.no_show_at) {
      throw new AppError('UNPROCESSABLE', `Check-in closed at ${r.no_show_at.toISOString()}`, {
        extensions: { reason: 'too_late', closed_at: r.no_show_at.toISOString() },
      })
    }
    const { won, fact } = await decide(r, 'checked_in', at, caller.userId)
    if (!won) {
      await finish(r, fact)
      throw stateConflict(r, fact.outcome)
    }
    // The reserved space if the reservation holds it now; else sessions allocates in the zone.
    const held = await deps.spaces.hold(holderOf(r._id), r.space_id).catch(() => null)
    let entry: EntryResult
    try {
      entry = await deps.sessions().enterReserved(
        {
          reservation_id: r._id,
          space_id: held && held !== 'unknown-space' ? r.space_id : null,
          zone_id: r.zone_id,
          holder: holderOf(r._id),
          lot_id: r.lot_id,
          license_plate: r.license_plate,
          user_id: r.user_id,
        },
        caller,
      )
    } catch (error) {
      // The entry did not happen: the reservation is open again (only our own outcome goes).
      await repo.dropOutcome(r._id, fact.token)
      throw error
    }
    const sessionId = entry.session.id
    await repo.updateReservation(r._id, {
      status: 'checked_in',
      session_id: sessionId,
      checked_in_at: at,
      held: false,
    })
    const updated = (await repo.findReservation(r._id)) ?? r
    const view = toReservationView(updated)
    await tell('checkedIn', () => view)
    return { ...entry, reservation: view }
  }

  async function withRefund(r: ReservationRecord) {
    return toReservationView(r, await repo.findRefund(r._id))
  }

  /** What a booking answers; a replay asks Stripe again for the intent's client secret. */
  async function createdView(r: ReservationRecord) {
    const intent = r.payment_intent_id
      ? await deps
          .gateway()
          .retrieveIntent(r.payment_intent_id)
          .catch(() => null)
      : null
    return {
      reservation: await withRefund(r),
      confirmation_number: r.confirmation_number,
      payment: r.payment_intent_id
        ? {
            payment_intent_id: r.payment_intent_id,
            client_secret: intent?.client_secret ?? null,
            amount: r.amount ?? intent?.amount ?? 0,
            currency: r.currency,
          }
        : null,
    }
  }

  /** The booking under a given id: a retry of the same id (an Idempotency-Key) answers what it made. */
  async function book(id: string, caller: Caller, input: ReservationInput, now: Date) {
    const existing = await repo.findReservation(id)
    if (existing) {
      // A retry after a write whose listener may not have been told (a crash): told again.
      await tell('created', () => toReservationView(existing))
      return await createdView(existing)
    }
    const { start, end } = windowOf(input.start_time, input.end_time, now, 'body')
    const vehicle = await vehicleOf(caller, input)
    const place = await placeOf(input)
    const vehicleType = vehicle.profile?.vehicleType ?? 'standard'
    const types = input.space_type
      ? [input.space_type]
      : spacePreferences({
          size: vehicle.profile?.size ?? 'STANDARD',
          ev: vehicle.profile?.isEv ?? false,
          accessible: false,
        })
    let candidates: SpaceView[]
    if (place.space) {
      if (input.space_type && input.space_type !== place.space.type) {
        throw new AppError(
          'UNPROCESSABLE',
          `The space ${place.space.number} is a ${place.space.type} space`,
          {
            errors: [{ in: 'body', field: 'space_type', pointer: '/space_type', reason: 'wrong_space_type' }],
            extensions: { reason: 'wrong_space_type' },
          },
        )
      }
      if (place.space.overlay) {
        throw new AppError('CONFLICT', `The space ${place.space.number} is ${place.space.overlay}`, {
          extensions: { reason: 'space_unavailable', overlay: place.space.overlay },
        })
      }
      candidates = [place.space]
    } else {
      candidates = await candidatesOf({ lotId: place.lot.id, zoneId: place.zoneId }, types, start, end)
    }
    const claimed = await claimFirst(id, candidates, start, end)
    if (!claimed) {
      throw place.space
        ? new AppError('CONFLICT', `The space ${place.space.number} is booked for part of this window`, {
            extensions: { reason: 'slot_taken' },
          })
        : new AppError('CONFLICT', 'No space of this kind is free for the whole window', {
            extensions: { reason: 'no_space_available', space_types: types },
          })
    }
    let code: string | undefined
    try {
      const amount = input.prepay
        ? await priceOf({
            lotId: place.lot.id,
            zoneId: claimed.space.zone_id,
            vehicleType,
            start,
            end,
            currency: place.lot.currency,
            timeZone: place.lot.time_zone,
          })
        : null
      code = await issueCode(id)
      const intent =
        amount && amount > 0
          ? await deps.gateway().createIntent({
              amount,
              currency: place.lot.currency,
              idempotencyKey: `reservation:${id}`,
              metadata: { purpose: 'reservation', reservation_id: id, confirmation_number: code },
            })
          : null
      if (intent) await repo.indexIntent(intent.id, id)
      const reservation: ReservationRecord = {
        _id: id,
        confirmation_number: code,
        user_id: isStaff(caller) ? vehicle.ownerId : caller.userId,
        created_by: caller.userId,
        lot_id: place.lot.id,
        level_id: claimed.space.level_id,
        zone_id: claimed.space.zone_id,
        space_id: claimed.space.id,
        space_number: claimed.space.number,
        space_type: claimed.space.type,
        vehicle_id: vehicle.vehicleId,
        license_plate: vehicle.licensePlate,
        plate: vehicle.plate,
        vehicle_type: vehicleType,
        start_at: start,
        end_at: end,
        slot_ids: claimed.slots,
        special_requests: input.special_requests?.trim() || null,
        status: intent ? 'pending_payment' : 'confirmed',
        prepay: input.prepay ?? false,
        amount,
        currency: place.lot.currency,
        payment_intent_id: intent?.id ?? null,
        payment_deadline: intent ? new Date(now.getTime() + settings.paymentTimeoutMinutes * MINUTE) : null,
        paid_at: null,
        hold_from: new Date(start.getTime() - settings.checkinEarlyMinutes * MINUTE),
        no_show_at: new Date(start.getTime() + settings.noShowGraceMinutes * MINUTE),
        held: false,
        session_id: null,
        checked_in_at: null,
        cancelled_at: null,
        refund_amount: null,
        refund_id: null,
        created_at: now,
        updated_at: now,
      }
      await repo.insertReservation(reservation)
      await repo
        .indexPlate(reservation.plate, id)
        .catch((error: Error) =>
          logger.warn({ reservation: id, reason: error.message }, 'reservation plate index not written'),
        )
      if (reservation.status === 'confirmed' && now >= reservation.hold_from)
        await placeHold(reservation).catch(() => false)
      await tell('created', () => toReservationView(reservation))
      return {
        reservation: toReservationView(reservation),
        confirmation_number: code,
        payment: intent
          ? {
              payment_intent_id: intent.id,
              client_secret: intent.client_secret,
              amount: intent.amount,
              currency: place.lot.currency,
            }
          : null,
      }
    } catch (error) {
      await repo.releaseSlots(id, claimed.slots).catch(() => {})
      if (code) await repo.releaseCode(code, id).catch(() => {})
      throw error
    }
  }

  const adjustments: AdjustmentSource = {
    async adjustmentsFor(session: SessionFacts): Promise<Adjustment[]> {
      if (!session.reservation_id) return []
      const r = await repo.findReservation(session.reservation_id)
      if (!r?.prepay || !r.amount) return []
      const paid = await repo.findPaid(r._id)
      if (!paid) return []
      const minutes = Math.round((r.end_at.getTime() - r.start_at.getTime()) / MINUTE)
      return [
        {
          kind: 'free_minutes',
          value: minutes,
          source: 'reservation',
          ref: r._id,
          label: `Reservation ${r.confirmation_number} prepaid (${durationLabel(minutes)})`,
        },
      ]
    },
  }

  const listener: SessionListener = {
    async sessionClosed(session: SessionFacts) {
      if (!session.reservation_id) return
      const r = await repo.findReservation(session.reservation_id)
      if (!r) return
      const outcome = await repo.findOutcome(r._id)
      if (outcome?.outcome !== 'checked_in') return
      const exitAt = session.exit_at ?? new Date()
      // The rest of the window is free to book again.
      const later = r.slot_ids.filter((id) => slotStart(r.space_id, id) >= exitAt)
      await repo.releaseSlots(r._id, later)
      await deps.spaces.release(holderOf(r._id))
      if (r.status !== 'completed') await repo.updateReservation(r._id, { status: 'completed', held: false })
    },
  }

  return {
    adjustments,
    listener,

    async availability(
      query: {
        start_time: string
        end_time: string
        lot_id?: string | undefined
        zone_id?: string | undefined
        space_type?: SpaceType | undefined
        limit: number
      },
      now = new Date(),
    ) {
      const { start, end } = windowOf(query.start_time, query.end_time, now, 'query')
      let lotId = query.lot_id
      if (query.zone_id) {
        const zone = await facilities.getZone(query.zone_id)
        if (lotId && lotId !== zone.lot_id)
          throw new AppError('NOT_FOUND', `No zone ${query.zone_id} in the lot ${lotId}`)
        lotId = zone.lot_id
      } else if (lotId) {
        await facilities.getLot(lotId)
      }
      if (!lotId) {
        throw new AppError('VALIDATION_FAILED', 'Say where: lot_id or zone_id', {
          errors: [
            { in: 'query', field: 'lot_id', pointer: '/lot_id', reason: 'lot_id or zone_id is required' },
          ],
        })
      }
      const [spaces, overlapping] = await Promise.all([
        spacesOf(query.zone_id ? { zoneId: query.zone_id } : { lotId }),
        repo.overlapping(lotId, start, end),
      ])
      const reservedIds = new Set(overlapping.map((r) => r.space_id))
      const byType = new Map<
        SpaceType,
        { space_type: SpaceType; total: number; available: number; reserved: number; unavailable: number }
      >()
      const free: SpaceView[] = []
      const totals = { total: 0, available: 0, reserved: 0, unavailable: 0 }
      for (const space of spaces) {
        if (query.space_type && space.type !== query.space_type) continue
        const row = byType.get(space.type) ?? {
          space_type: space.type,
          total: 0,
          available: 0,
          reserved: 0,
          unavailable: 0,
        }
        byType.set(space.type, row)
        const state =
          space.overlay === 'maintenance' || space.overlay === 'closed'
            ? 'unavailable'
            : space.overlay === 'reserved' || reservedIds.has(space.id)
              ? 'reserved'
              : 'available'
        row.total++
        totals.total++
        row[state]++
        totals[state]++
        if (state === 'available') free.push(space)
      }
      return {
        lot_id: lotId,
        zone_id: query.zone_id ?? null,
        start_time: start.toISOString(),
        end_time: end.toISOString(),
        ...totals,
        by_type: [...byType.values()].sort((a, b) => a.space_type.localeCompare(b.space_type)),
        spaces: free
          .sort(byNumber)
          .slice(0, query.limit)
          .map((s) => ({
            id: s.id,
            space_number: s.number,
            type: s.type,
            zone_id: s.zone_id,
            level_id: s.level_id,
          })),
      }
    },

    /**
     * Books. With an Idempotency-Key, a retry (same key, same body) answers the reservation the
     * first one made, and another body with the same key is a 422.
     */
    async create(caller: Caller, input: ReservationInput, now = new Date(), key?: string) {
      return await keyedCreate(
        deps.idempotency,
        { kind: 'reservation', callerId: caller.userId, key },
        input,
        (id) => book(id, caller, input, now),
        async (id) => {
          const r = await repo.findReservation(id)
          return r ? await createdView(r) : undefined
        },
      )
    },

    async get(caller: Caller, id: string) {
      return await withRefund(await visible(caller, id))
    },

    async byConfirmation(caller: Caller, code: string) {
      const claim = await repo.findCode(code.toUpperCase())
      const r = claim && (await repo.findReservation(claim.reservation_id))
      if (!r || !canSee(caller, r)) throw notFound(`with the confirmation number ${code.toUpperCase()}`)
      return await withRefund(r)
    },

    /** Customers see their own; operators and admins every one, filtered by lot and status. */
    async list(
      caller: Caller,
      query: Page & { lot_id?: string | undefined; status?: ReservationStatus | undefined },
    ) {
      const rows = await repo.listReservations({
        userId: isStaff(caller) ? undefined : caller.userId,
        lotId: query.lot_id,
        status: query.status,
        after: query.cursor ? decodeCursor(query.cursor) : undefined,
        limit: query.limit + 1,
      })
      return pageOf(rows, query.limit, (r) => toReservationView(r))
    },

    /**
     * Window, vehicle, special requests, before check-in. A new window claims its new slots on the
     * same space first and lets go of the old ones after: a conflict (409 slot_taken) changes nothing.
     */
    async update(caller: Caller, id: string, input: ReservationUpdate, now = new Date()) {
      const r = await visible(caller, id)
      if (r.status !== 'confirmed' && r.status !== 'pending_payment') throw stateConflict(r, r.status)
      const outcome = await repo.findOutcome(r._id)
      if (outcome) {
        await finish(r, outcome)
        throw stateConflict(r, outcome.outcome)
      }
      const fields: Partial<ReservationRecord> = {}
      if (input.special_requests !== undefined)
        fields.special_requests = input.special_requests?.trim() || null
      if (input.vehicle_id || input.license_plate) {
        const vehicle = await vehicleOf(caller, input)
        Object.assign(fields, {
          vehicle_id: vehicle.vehicleId,
          plate: vehicle.plate,
          license_plate: vehicle.licensePlate,
          vehicle_type: vehicle.profile?.vehicleType ?? r.vehicle_type,
        })
        if (isStaff(caller) && vehicle.ownerId) fields.user_id = vehicle.ownerId
      }
      let added: string[] = []
      let dropped: string[] = []
      if (input.start_time !== undefined || input.end_time !== undefined) {
        const { start, end } = windowOf(
          input.start_time ?? r.start_at.toISOString(),
          input.end_time ?? r.end_at.toISOString(),
          now,
          'body',
        )
        if (start.getTime() !== r.start_at.getTime() || end.getTime() !== r.end_at.getTime()) {
          if (r.prepay && r.amount) {
            throw new AppError(
              'UNPROCESSABLE',
              'The window of a prepaid reservation is fixed: cancel it and book again',
              {
                errors: [{ in: 'body', field: 'start_time', pointer: '/start_time', reason: 'prepaid' }],
                extensions: { reason: 'prepaid' },
              },
            )
          }
          const slots = slotsOf(r.space_id, start, end)
          added = slots.filter((s) => !r.slot_ids.includes(s))
          dropped = r.slot_ids.filter((s) => !slots.includes(s))
          let taken = await repo.claimSlots(r._id, added, r.space_id)
          if (taken !== null && (await clearStaleSlot(taken)))
            taken = await repo.claimSlots(r._id, added, r.space_id)
          if (taken !== null) {
            throw new AppError(
              'CONFLICT',
              `The space ${r.space_number} is booked for part of the new window`,
              {
                extensions: { reason: 'slot_taken', slot: slotStart(r.space_id, taken).toISOString() },
              },
            )
          }
          Object.assign(fields, {
            start_at: start,
            end_at: end,
            slot_ids: slots,
            hold_from: new Date(start.getTime() - settings.checkinEarlyMinutes * MINUTE),
            no_show_at: new Date(start.getTime() + settings.noShowGraceMinutes * MINUTE),
            held: false,
          })
        }
      }
      try {
        await repo.updateReservation(r._id, fields)
      } catch (error) {
        await repo.releaseSlots(r._id, added).catch(() => {})
        throw error
      }
      if (fields.plate && fields.plate !== r.plate) await repo.indexPlate(fields.plate, r._id)
      if (fields.start_at) {
        // The hold moves with the window: the tick places it again when it is due.
        if (r.held) await deps.spaces.release(holderOf(r._id))
        await repo.releaseSlots(r._id, dropped)
      }
      // An outcome that raced in (a cancel, a no-show) wins: finish it, and say so.
      const late = await repo.findOutcome(r._id)
      const updated = (await repo.findReservation(r._id)) ?? r
      if (late) {
        await finish(updated, late)
        throw stateConflict(r, late.outcome)
      }
      if (updated.status === 'confirmed' && now >= updated.hold_from && !updated.held)
        await placeHold(updated).catch(() => false)
      return await withRefund((await repo.findReservation(r._id)) ?? updated)
    },

    /** Cancels (refund by the rules); a cancelled one answers itself again. */
    async cancel(caller: Caller, id: string, now = new Date()) {
      const r = await visible(caller, id)
      const { fact } = await decide(r, 'cancelled', now, caller.userId)
      if (fact.outcome !== 'cancelled') {
        await finish(r, fact)
        throw stateConflict(r, fact.outcome)
      }
      if (r.payment_intent_id && !(await repo.findPaid(r._id))) {
        // Not paid as far as we know: the intent is cancelled so that it cannot be paid any more.
        // Stripe refusing because it succeeded means it was paid before this cancel (only the
        // webhook was late): refunded by the rule for the cancel's time, not in full.
        const intent = await deps
          .gateway()
          .cancelIntent(r.payment_intent_id)
          .catch(() => null)
        if (!intent || intent.status === 'succeeded') {
          const current = await deps
            .gateway()
            .retrieveIntent(r.payment_intent_id)
            .catch(() => null)
          if (current?.status === 'succeeded') await markPaid(r, current, fact.at)
        }
      }
      return await withRefund(await finish(r, fact))
    },

    /** Confirms the prepayment's intent (like POST /payments/confirm). */
    async pay(caller: Caller, id: string, input: { payment_method?: string | undefined }) {
      const r = await visible(caller, id)
      if (r.status !== 'pending_payment') {
        if (r.status === 'confirmed' || r.status === 'checked_in' || r.status === 'completed') {
          if (!r.payment_intent_id)
            throw new AppError('CONFLICT', 'This reservation has nothing to pay', {
              extensions: { reason: 'nothing_due' },
            })
          return await withRefund(r)
        }
        throw stateConflict(r, r.status)
      }
      const outcome = await repo.findOutcome(r._id)
      if (outcome) {
        await finish(r, outcome)
        throw stateConflict(r, outcome.outcome)
      }
      const intentId = r.payment_intent_id
      if (!intentId)
        throw new AppError('CONFLICT', 'This reservation has nothing to pay', {
          extensions: { reason: 'nothing_due' },
        })
      // One key per payment method: after a decline, another card is a new request at Stripe
      // (a fixed key would answer the declined attempt again); the same card retried is the same.
      const intent = await deps
        .gateway()
        .confirmIntent(
          intentId,
          input.payment_method,
          `reservation-confirm:${r._id}:${input.payment_method ?? 'default'}`,
        )
      const after = await applyIntent(r, intent)
      if (intent.status !== 'succeeded' && intent.status !== 'processing') {
        throw new AppError('PAYMENT_REQUIRED', `The payment did not go through (${intent.status})`, {
          extensions: { intent_status: intent.status, reason: intent.last_error ?? intent.status },
        })
      }
      return await withRefund(after)
    },

    /** Stripe told about a reservation's intent (payments.onForeignIntent): ask Stripe, apply. */
    async onIntent(intentId: string, _eventType?: string) {
      const id = await repo.reservationOfIntent(intentId)
      const r = id ? await repo.findReservation(id) : undefined
      if (!r) return
      await applyIntent(r, await deps.gateway().retrieveIntent(intentId))
    },

    async checkIn(caller: Caller, id: string, at = new Date()) {
      return await checkInReservation(caller, await visible(caller, id), at)
    },

    /** The gate: by confirmation number or by plate (the reservation whose check-in window is open). */
    async checkInAtGate(
      caller: Caller,
      input: {
        confirmation_number?: string | undefined
        license_plate?: string | undefined
        lot_id?: string | undefined
      },
      at = new Date(),
    ) {
      if (input.confirmation_number) {
        const claim = await repo.findCode(input.confirmation_number.toUpperCase())
        const r = claim && (await repo.findReservation(claim.reservation_id))
        if (!r || (input.lot_id && r.lot_id !== input.lot_id))
          throw notFound(`with the confirmation number ${input.confirmation_number.toUpperCase()}`)
        return await checkInReservation(caller, r, at)
      }
      if (!input.license_plate) {
        throw new AppError(
          'VALIDATION_FAILED',
          'Say which reservation: confirmation_number or license_plate',
          {
            errors: [
              {
                in: 'body',
                field: 'confirmation_number',
                pointer: '/confirmation_number',
                reason: 'confirmation_number or license_plate is required',
              },
            ],
          },
        )
      }
      const plate = normalizePlate(input.license_plate)
      const ids = await repo.reservationsOfPlate(plate)
      const rows = (await Promise.all(ids.map((rid) => repo.findReservation(rid)))).filter(
        (r): r is ReservationRecord =>
          r !== undefined &&
          r.plate === plate &&
          (r.status === 'confirmed' || r.status === 'pending_payment') &&
          (!input.lot_id || r.lot_id === input.lot_id),
      )
      // The one whose window is open now, else the nearest (its answer says too early or too late).
      const distance = (r: ReservationRecord) =>
        at < r.hold_from
          ? r.hold_from.getTime() - at.getTime()
          : at > r.no_show_at
            ? at.getTime() - r.no_show_at.getTime()
            : 0
      const best = rows.sort((a, b) => distance(a) - distance(b))[0]
      if (!best) throw notFound(`open for the plate ${plate}`)
      return await checkInReservation(caller, best, at)
    },

    /**
     * A car at the ordinary gate (POST /sessions/entry, LPR): when its plate has a reservation at
     * this lot whose check-in window is open, it is checked in to it exactly as at the gate, so that
     * a booked car is not let in as a walk-in (charged in full while its prepayment is kept as a
     * no-show). null when there is none, or it cannot be checked in (unpaid, decided meanwhile):
     * the car enters as a walk-in. It fits sessions' `ArrivalCheckIn` (deps.arrivals).
     */
    async arrivalCheckIn(
      plate: string,
      lotId: string,
      caller: Caller,
      at = new Date(),
    ): Promise<CheckInResult | null> {
      const normalized = normalizePlate(plate)
      const ids = await repo.reservationsOfPlate(normalized)
      const open = (await Promise.all(ids.map((rid) => repo.findReservation(rid)))).filter(
        (r): r is ReservationRecord =>
          r !== undefined &&
          r.plate === normalized &&
          r.lot_id === lotId &&
          (r.status === 'confirmed' || r.status === 'pending_payment') &&
          r.hold_from <= at &&
          at <= r.no_show_at,
      )
      // The one starting nearest to now, when windows of two reservations are open at once.
      const distance = (r: ReservationRecord) => Math.abs(r.start_at.getTime() - at.getTime())
      const best = open.sort((a, b) => distance(a) - distance(b))[0]
      if (!best) return null
      if (best.status === 'pending_payment') {
        logger.warn(
          { reservation: best._id, plate: normalized },
          'arrival: the reservation is prepaid and not paid; entering as a walk-in',
        )
        return null
      }
      try {
        return await checkInReservation(caller, best, at)
      } catch (error) {
        // Decided meanwhile (cancelled, no-show, checked in by another door) or its window closed:
        // the car is let in as a walk-in. Anything else (the plate parked already, a dependency
        // down) is the entry's own answer.
        const decided =
          error instanceof AppError &&
          (error.code === 'CONFLICT' ||
            error.code === 'UNPROCESSABLE' ||
            error.code === 'PAYMENT_REQUIRED') &&
          error.extensions?.reason !== 'already_parked' &&
          error.extensions?.reason !== 'entry_in_progress'
        if (!decided) throw error
        logger.warn(
          { reservation: best._id, plate: normalized, reason: error.message },
          'arrival: the reservation cannot be checked in; entering as a walk-in',
        )
        return null
      }
    },

    /** Job: holds that are due (from check-in opening) placed; holds of ended reservations let go. */
    async tick(now = new Date()) {
      let placed = 0
      let released = 0
      for await (const r of dueRows('confirmed', 'hold_from', now, { held: false }))
        if (r.no_show_at > now && (await placeHold(r).catch(() => false))) placed++
      for (const r of await repo.heldButClosed()) {
        if (r.status !== 'checked_in') await deps.spaces.release(holderOf(r._id))
        await repo.updateReservation(r._id, { held: false })
        released++
      }
      // Refunds in doubt (asked again with the same key) and refused ones due again.
      let refunded = 0
      for (let after = '', page: RefundRecord[] = []; ; ) {
        page = await repo.unsettledRefunds(after)
        for (const doubt of page) {
          const [r, paid] = await Promise.all([repo.findReservation(doubt._id), repo.findPaid(doubt._id)])
          if (!r || !paid) continue
          const settled = await refundOnce(r, paid, doubt.amount, { retry: true, now }).catch(() => null)
          if (settled?.provider_refund_id) refunded++
        }
        const last = page.at(-1)
        if (!last || page.length < 100) break
        after = last._id
      }
      return { placed, released, refunded }
    },

    /** Job: past start + grace without check-in -> no_show, space and slots freed, refund by the policy. */
    async noShows(now = new Date()) {
      let noShows = 0
      for await (const r of dueRows('confirmed', 'no_show_at', now)) {
        if (r.no_show_at >= now) continue
        const { won, fact } = await decide(r, 'no_show', now, 'job:reservations.no-show')
        if (fact.outcome === 'checked_in') continue
        await finish(r, fact)
        if (won) noShows++
      }
      return { no_shows: noShows }
    },

    /** Job: prepaid reservations still unpaid after the timeout expire (unless Stripe says paid). */
    async expireUnpaid(now = new Date()) {
      let expired = 0
      for await (const r of dueRows('pending_payment', 'payment_deadline', now)) {
        if (r.payment_intent_id) {
          const gateway = deps.gateway()
          const intent = await gateway.retrieveIntent(r.payment_intent_id).catch(() => null)
          if (!intent) continue
          if (intent.status === 'succeeded') {
            await markPaid(r, intent)
            continue
          }
          if (intent.status === 'processing') continue
          if (intent.status !== 'canceled') {
            const canceled = await gateway.cancelIntent(r.payment_intent_id).catch(() => null)
            if (!canceled) {
              // Stripe refused to cancel: it may have been paid just now; the next run asks again.
              const again = await gateway.retrieveIntent(r.payment_intent_id).catch(() => null)
              if (again?.status === 'succeeded') await markPaid(r, again)
              continue
            }
            if (canceled.status === 'succeeded') {
              await markPaid(r, canceled)
              continue
            }
          }
        }
        const { won, fact } = await decide(r, 'expired', now, 'job:reservations.expire')
        if (fact.outcome === 'checked_in') continue
        await finish(r, fact)
        if (won) expired++
      }
      return { expired }
    },

    /** Active reservation holds, for the hot state's rebuild. */
    holds: () => repo.holds(),
  }
}

export type ReservationsService = ReturnType<typeof createReservationsService>
