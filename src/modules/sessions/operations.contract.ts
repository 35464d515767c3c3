// The seams between the money-path capabilities (sessions, pricing, discounts, payments): each
// capability implements its port, and the composition root wires them together. Plain data only.

/**
 * What a session's fee is reduced by: a discount code, a partner validation, a membership (its
 * included hours as `free_minutes`, then its `percentage`), a prepaid reservation (`free_minutes`).
 */
export type Adjustment = {
  /** `full`: the whole fee is covered (value ignored). `fixed`: minor units. `free_minutes`: minutes off the stay. */
  kind: 'percentage' | 'fixed' | 'free_minutes' | 'full'
  value: number
  source: 'discount' | 'validation' | 'membership' | 'reservation'
  /** The discount code, the validation id, the membership id or the reservation id. */
  ref: string
  /** Shown in the breakdown, e.g. "Discount SUMMER20 (20%)". */
  label: string
}

/** One line of an itemised fee; amounts in minor units, negative for reductions. */
export type FeeLine = {
  kind:
    | 'grace'
    | 'parking'
    | 'peak'
    | 'daily_cap'
    | 'flat'
    | 'daily'
    | 'lost_ticket'
    | 'discount'
    | 'validation'
    | 'membership'
    | 'reservation'
    | 'ev_charging'
    | 'ev_idle'
    | 'no_tariff'
  description: string
  amount: number
}

export type FeeQuote = {
  currency: string
  duration_minutes: number
  /** Before reductions, lost-ticket fee included. */
  base_fee: number
  /** Sum of the reductions, as a positive number. */
  discounts: number
  /** Billed with the parking fee and never reduced by its adjustments (EV energy, idle fees). */
  charges?: number
  tax: number
  total: number
  breakdown: FeeLine[]
  tariff_id: string | null
  tariff_name: string | null
}

/**
 * A rate plan as it stood when it was picked: stored on the session at entry, because the tariff in
 * force at entry applies to the whole stay. Owned by pricing; opaque to everyone else.
 */
export type TariffSnapshot = { id: string; name: string } & Record<string, unknown>

export type FeeRequest = {
  /** null: no tariff in force, the stay is free (one `no_tariff` line). */
  tariff: TariffSnapshot | null
  currency: string
  /** The facility's IANA time zone: "day" in a tariff is a calendar day there. */
  timeZone: string
  entryAt: Date
  exitAt: Date
  lostTicket: boolean
  adjustments: readonly Adjustment[]
}

export interface PricingPort {
  /** The rate plan in force at `at` for this lot, zone and vehicle type, by priority; null when none. */
  tariffFor(query: {
    lotId: string
    zoneId: string | null
    vehicleType: string
    at: Date
  }): Promise<TariffSnapshot | null>
  /** Prices one stay in the worker pool; concurrent calls are batched into one pool task. */
  quote(request: FeeRequest): Promise<FeeQuote>
  /** Prices many stays in pool tasks of a few hundred each (closings, reports). */
  quoteMany(requests: readonly FeeRequest[]): Promise<FeeQuote[]>
}

export interface DiscountsPort {
  /**
   * Redeems a code for a session, once per session (a second call with the same code returns the
   * same adjustment), within the code's validity window and its maximum uses overall and per user,
   * enforced atomically. Refusals are AppErrors: NOT_FOUND (unknown), UNPROCESSABLE with
   * `extensions.reason` (expired, not_yet_valid, limit_reached, already_used_by_you, inactive,
   * wrong_lot, wrong_currency).
   */
  redeem(input: {
    code: string
    sessionId: string
    lotId: string
    userId: string | null
  }): Promise<Adjustment>
  /** The discount codes and partner validations attached to a session. */
  adjustmentsOf(sessionId: string): Promise<Adjustment[]>
}

/** A session as the other capabilities see it. */
export type SessionFacts = {
  id: string
  ticket_number: string
  lot_id: string
  zone_id: string | null
  space_id: string | null
  plate: string
  vehicle_id: string | null
  vehicle_type: string
  /** The owner of the registered vehicle, if any: the customer who may pay in the app. */
  user_id: string | null
  status: 'active' | 'closed'
  entry_at: Date
  exit_at: Date | null
  currency: string
  /** The reservation the session was checked in from, if any. */
  reservation_id: string | null
}

/** What a session owes now, as validate-exit and payments need it. */
export type AmountDue = {
  session: SessionFacts
  /** The fee the due is computed from: up to the last payment while the exit window runs, else up to now. */
  quote: FeeQuote
  /** Net of refunds. */
  paid: number
  due: number
  currency: string
  /** Until when a paid session may leave without paying more; null when nothing was paid. */
  exit_deadline: Date | null
  /** How many settlements the session has had: the next one claims `${sessionId}:${settlements}`. */
  settlements: number
}

export interface SessionsPort {
  /** NOT_FOUND AppError when there is no such session. */
  facts(sessionId: string): Promise<SessionFacts>
  factsByTicket(ticketNumber: string): Promise<SessionFacts>
  amountDue(sessionId: string, at?: Date): Promise<AmountDue>
}

/** The payments ledger as sessions read it: money in, net of refunds. */
export interface LedgerPort {
  paidFor(sessionId: string): Promise<{ paid: number; settlements: number; last_paid_at: Date | null }>
}

/**
 * A capability that reduces a session's fee: discount codes and validations, memberships, prepaid
 * reservations. Asked every time the fee is priced, with the end of the stay being priced.
 */
export interface AdjustmentSource {
  adjustmentsFor(session: SessionFacts, until: Date): Promise<Adjustment[]>
}

/** A charge billed with the parking fee, itemised, and not reduced by its adjustments. */
export type ExtraCharge = {
  kind: 'ev_charging' | 'ev_idle'
  /** e.g. "EV charging, 12.500 kWh @ 0.25 EUR/kWh" */
  description: string
  /** Minor units, in the session's currency. */
  amount: number
  /** The charging session's id. */
  ref: string
}

/** A capability that bills with the parking fee (EV charging). */
export interface ChargesSource {
  /** The charges of a session up to `until` (a charge still running is priced up to then). */
  chargesFor(session: SessionFacts, until: Date): Promise<ExtraCharge[]>
}

/**
 * Told when a session has closed (its exit fact is written), once or more (a retried exit tells
 * again): listeners must be idempotent. `fee` is the fee the session left with.
 */
export interface SessionListener {
  sessionClosed(session: SessionFacts, fee: FeeQuote): Promise<void>
  /** Told once a session is written at an entry or a check-in (at most once; a failure is logged). */
  sessionStarted?(session: SessionFacts): Promise<void>
}

/** What check-in at a reservation asks of sessions: an entry onto the space the reservation holds. */
export type ReservedEntry = {
  reservation_id: string
  /** The space the reservation holds in the hot state (null: none; one is allocated in the zone). */
  space_id: string | null
  zone_id: string | null
  /** The reservation's holder id in the hot state (`rsv:<reservationId>`), handed over to the session. */
  holder: string
  lot_id: string
  license_plate: string
  user_id: string | null
}
