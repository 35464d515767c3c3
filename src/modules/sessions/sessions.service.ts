import { randomBytes } from 'node:crypto'
import { formatMoney } from '../../../workers/fee.ts'
import { AppError } from '../../shared/errors.ts'
import { decodeCursor, pageOf, uuidv7 } from '../../shared/ids.ts'
import type { Logger } from '../../shared/logger.ts'
import type { FacilitiesService, LotView } from '../facilities/facilities.service.ts'
import type { SpaceType } from '../occupancy/occupancy.contract.ts'
import type { HeldSpace } from '../occupancy/occupancy.state.ts'
import type { SizeCategory } from '../vehicles/vehicles.model.ts'
import { normalizePlate } from '../vehicles/vehicles.service.ts'
import type {
  AdjustmentSource,
  AmountDue,
  ChargesSource,
  ExtraCharge,
  FeeQuote,
  LedgerPort,
  PricingPort,
  ReservedEntry,
  SessionFacts,
  SessionListener,
  SessionsPort,
} from './operations.contract.ts'
import type { EntrySource, ExitRecord, SessionRecord } from './sessions.model.ts'
import type { SessionsRepository } from './sessions.repository.ts'

/** The hot state's space arbiter (occupancy.state.ts). */
export type SpaceArbiter = {
  allocate(
    sessionId: string,
    lotId: string,
    zoneId: string | null,
    types: readonly SpaceType[],
  ): Promise<HeldSpace | null>
  /** `takeOverFrom`: the space may be held by that holder (a reservation): it is handed over. */
  hold(
    sessionId: string,
    spaceId: string,
    options?: { takeOverFrom?: string },
  ): Promise<HeldSpace | null | 'unknown-space'>
  release(sessionId: string): Promise<string | null>
}

/** What the gate needs to know about a registered vehicle. */
export type EntryProfile = {
  vehicleId: string
  ownerId: string
  vehicleType: string
  size: SizeCategory
  isEv: boolean
}

export type FullLotPolicy = 'refuse' | 'admit_unassigned'

/** What an entry answers: the session, its ticket and its space (null when admitted without one). */
export type EntryResult = {
  session: SessionView
  ticket_number: string
  space_assigned: {
    id: string
    space_number: string
    type: SpaceType
    zone: { id: string; name: string; level: { id: string; name: string } }
  } | null
}

/** The check-in of a plate's open reservation at an ordinary entry; null when it has none. */
export type ArrivalCheckIn = (plate: string, lotId: string, caller: Caller) => Promise<EntryResult | null>

export type EntryInput = {
  license_plate: string
  lot_id?: string | undefined
  zone_id?: string | undefined
  entry_gate?: string | undefined
  /** For a vehicle that is not registered (a registered one brings its own). */
  vehicle_type?: string | undefined
  space_type?: SpaceType | undefined
  is_ev?: boolean | undefined
  accessible?: boolean | undefined
  source?: EntrySource | undefined
  lpr_confidence?: number | undefined
}

export type ExitInput = {
  ticket_number?: string | undefined
  license_plate?: string | undefined
  lost_ticket?: boolean | undefined
  exit_gate?: string | undefined
}

type Page = { limit: number; cursor?: string | undefined }

export type Caller = { userId: string; role: 'customer' | 'operator' | 'admin' }

/** A claim of a session that never got written is taken over after this long. */
const ABANDONED_CLAIM_MS = 60_000

/**
 * The space types a vehicle may take, best first. EV bays are kept for EVs and accessible bays for
 * permit holders; a car never takes a motorcycle bay, and a large one never a compact bay.
 */
export function spacePreferences(vehicle: {
  size: SizeCategory
  ev: boolean
  accessible: boolean
  requested?: SpaceType | undefined
}): SpaceType[] {
  if (vehicle.requested) return [vehicle.requested]
  const bySize: Record<SizeCategory, SpaceType[]> = {
    MOTORCYCLE: ['MOTORCYCLE', 'COMPACT', 'STANDARD'],
    COMPACT: ['COMPACT', 'STANDARD'],
    STANDARD: ['STANDARD'],
    LARGE: ['STANDARD'],
  }
  const types = [...bySize[vehicle.size]]
  if (vehicle.ev && vehicle.size !== 'MOTORCYCLE') types.unshift('EV')
  if (vehicle.accessible) types.unshift('HANDICAPPED')
  return types
}

const newTicketNumber = () => `TKT-${randomBytes(6).toString('hex').toUpperCase()}`

export function toSessionView(s: SessionRecord) {
  return {
    id: s._id,
    ticket_number: s.ticket_number,
    lot_id: s.lot_id,
    level_id: s.level_id,
    zone_id: s.zone_id,
    space_id: s.space_id,
    space_number: s.space_number,
    license_plate: s.license_plate,
    plate_normalized: s.plate,
    vehicle_id: s.vehicle_id,
    vehicle_type: s.vehicle_type,
    user_id: s.user_id,
    status: s.status,
    entry_time: s.entry_at.toISOString(),
    entry_gate: s.entry_gate,
    entry_source: s.entry_source,
    lpr_confidence: s.lpr_confidence,
    exit_time: s.exit_at?.toISOString() ?? null,
    exit_gate: s.exit_gate,
    lost_ticket: s.lost_ticket,
    fee_total: s.fee_total,
    currency: s.currency,
    tariff_id: s.tariff?.id ?? null,
    tariff_name: s.tariff?.name ?? null,
    reservation_id: s.reservation_id ?? null,
  }
}
export type SessionView = ReturnType<typeof toSessionView>

/** What anyone holding the ticket may see: no plate, no owner. */
function ticketView(s: SessionRecord, at: Date) {
  return {
    ticket_number: s.ticket_number,
    status: s.status,
    lot_id: s.lot_id,
    space_number: s.space_number,
    entry_time: s.entry_at.toISOString(),
    exit_time: s.exit_at?.toISOString() ?? null,
    duration_minutes: minutesBetween(s.entry_at, s.exit_at ?? at),
  }
}

const minutesBetween = (from: Date, to: Date) =>
  Math.max(0, Math.floor((to.getTime() - from.getTime()) / 60_000))

function factsOf(s: SessionRecord): SessionFacts {
  return {
    id: s._id,
    ticket_number: s.ticket_number,
    lot_id: s.lot_id,
    zone_id: s.zone_id,
    space_id: s.space_id,
    plate: s.plate,
    vehicle_id: s.vehicle_id,
    vehicle_type: s.vehicle_type,
    user_id: s.user_id,
    status: s.status,
    entry_at: s.entry_at,
    exit_at: s.exit_at,
    currency: s.currency,
    reservation_id: s.reservation_id ?? null,
  }
}

/**
 * Entry and exit. A plate's active session is an insert-only claim (one per plate); the space is
 * held in Redis, the arbiter of the hot state, so that the availability counts move at the entry
 * and the exit, and two cars never get one space; the end of a stay is an insert-only fact.
 */
export function createSessionsService(deps: {
  repo: SessionsRepository
  facilities: Pick<FacilitiesService, 'getLot' | 'listLots' | 'getZone' | 'getLevel' | 'findSpace'>
  vehicles: { entryProfile(plate: string): Promise<EntryProfile | undefined> }
  spaces: SpaceArbiter
  /** Late-bound: the capabilities around sessions are made after it. */
  pricing: () => PricingPort
  /** What reduces a fee: discount codes and validations, memberships, prepaid reservations. */
  adjustments: () => readonly AdjustmentSource[]
  /** What is billed with the fee: EV charging. */
  charges: () => readonly ChargesSource[]
  /** Told when a session has closed. */
  listeners: () => readonly SessionListener[]
  /**
   * Asked at an ordinary entry: a plate with a reservation open for check-in at this lot is
   * checked in instead (and answers the check-in), so that a booked car is never a walk-in.
   */
  arrivals?: () => ArrivalCheckIn

  ledger: () => LedgerPort
  logger: Logger
  settings: { exitWindowMinutes: number; fullLotPolicy: FullLotPolicy; lprMinConfidence: number }
}) {
  const { repo, facilities, spaces, logger, settings } = deps

  const noSession = (what: string) => new AppError('NOT_FOUND', `No parking session ${what}`)

  async function requireSession(id: string): Promise<SessionRecord> {
    const session = await repo.findSession(id)
    if (!session) throw noSession(id)
    return session
  }

  async function sessionByTicket(ticketNumber: string): Promise<SessionRecord> {
    const ticket = await repo.findTicket(ticketNumber.toUpperCase())
    const session = ticket && (await repo.findSession(ticket.session_id))
    if (!session) throw noSession(`with the ticket ${ticketNumber}`)
    return session
  }

  async function activeSessionOfPlate(plate: string): Promise<SessionRecord | undefined> {
    const claim = await repo.findPlateClaim(plate)
    const session = claim && (await repo.findSession(claim.session_id))
    return session?.status === 'active' ? session : undefined
  }

  /** The lot asked for, or the only lot when there is one (seed 004's entry names no lot). */
  async function lotOf(lotId: string | undefined): Promise<LotView> {
    if (lotId) return await facilities.getLot(lotId)
    const { data } = await facilities.listLots({ limit: 2 })
    if (data.length === 1 && data[0]) return data[0]
    throw new AppError('VALIDATION_FAILED', 'Say which lot: the platform has no lot or several', {
      errors: [
        {
          in: 'body',
          field: 'lot_id',
          pointer: '/lot_id',
          reason: 'required when the platform has not exactly one lot',
        },
      ],
    })
  }

  /** Claims the plate for the session; a plate whose claim outlived its session is taken over. */
  async function claimPlate(plate: string, sessionId: string): Promise<void> {
    for (let attempt = 0; attempt < 2; attempt++) {
      if (await repo.claimPlate({ _id: plate, session_id: sessionId, created_at: new Date() })) return
      const claim = await repo.findPlateClaim(plate)
      if (!claim) continue
      const holder = await repo.findSession(claim.session_id)
      if (holder?.status === 'active') {
        throw new AppError(
          'CONFLICT',
          `The plate ${plate} is parked already (ticket ${holder.ticket_number})`,
          {
            extensions: {
              reason: 'already_parked',
              session_id: holder._id,
              ticket_number: holder.ticket_number,
            },
          },
        )
      }
      if (!holder && Date.now() - claim.created_at.getTime() < ABANDONED_CLAIM_MS) {
        throw new AppError('CONFLICT', `An entry of the plate ${plate} is in progress`, {
          extensions: { reason: 'entry_in_progress' },
        })
      }
      await repo.releasePlate(plate, claim.session_id)
    }
    throw new AppError('CONFLICT', `The plate ${plate} is being entered by another gate; retry`, {
      extensions: { reason: 'entry_in_progress' },
    })
  }

  async function issueTicket(sessionId: string): Promise<string> {
    for (;;) {
      const ticket = newTicketNumber()
      if (await repo.claimTicket({ _id: ticket, session_id: sessionId, created_at: new Date() }))
        return ticket
    }
  }

  async function spaceAssigned(space: HeldSpace) {
    const [zone, level] = await Promise.all([
      facilities.getZone(space.zoneId),
      facilities.getLevel(space.levelId),
    ])
    return {
      id: space.spaceId,
      space_number: space.number,
      type: space.type,
      zone: { id: zone.id, name: zone.name, level: { id: level.id, name: level.name } },
    }
  }

  /** Ends a stay whose exit fact is written: idempotent, so that a retried exit finishes it. */
  async function close(session: SessionRecord, exit: ExitRecord): Promise<SessionRecord> {
    if (session.status !== 'closed') {
      await repo.updateSession(session._id, {
        status: 'closed',
        exit_at: exit.exit_at,
        exit_gate: exit.exit_gate,
        fee_total: exit.fee_total,
      })
    }
    await spaces.release(session._id)
    await repo.releasePlate(session.plate, session._id)
    return {
      ...session,
      status: 'closed',
      exit_at: exit.exit_at,
      exit_gate: exit.exit_gate,
      fee_total: exit.fee_total,
    }
  }

  /** Tells the listeners that care (dashboards) that a session has started; never fails the entry. */
  async function tellStarted(session: SessionRecord): Promise<void> {
    const facts = factsOf(session)
    await Promise.all(
      deps
        .listeners()
        .map((listener) =>
          listener
            .sessionStarted?.(facts)
            .catch((error: Error) =>
              logger.warn({ err: error, session: session._id }, 'session started: a listener failed'),
            ),
        ),
    )
  }

  /**
   * Tells the listeners (usage, charging, reservations) that a session has closed. A listener that
   * fails is logged and told again by a retried exit; it never undoes the exit.
   */
  async function tellClosed(session: SessionRecord, fee: FeeQuote): Promise<void> {
    const facts = factsOf(session)
    await Promise.all(
      deps
        .listeners()
        .map((listener) =>
          listener
            .sessionClosed(facts, fee)
            .catch((error: Error) =>
              logger.warn({ err: error, session: session._id }, 'session closed: a listener failed'),
            ),
        ),
    )
  }

  async function amountDue(session: SessionRecord, at: Date): Promise<AmountDue> {
    const until = session.status === 'closed' && session.exit_at ? session.exit_at : at
    const facts = factsOf(session)
    const ledger = await deps.ledger().paidFor(session._id)
    const deadline = ledger.last_paid_at
      ? new Date(ledger.last_paid_at.getTime() + settings.exitWindowMinutes * 60_000)
      : null
    // Within the exit window the fee stands as it was when it was paid.
    const pricedUntil = deadline && ledger.last_paid_at && until <= deadline ? ledger.last_paid_at : until
    // The exit window holds the parking fee only: energy is billed up to the real end of the stay,
    // so that a charge that ran on after the payment is paid before the car leaves.
    const [adjustments, charges] = await Promise.all([
      Promise.all(deps.adjustments().map((source) => source.adjustmentsFor(facts, pricedUntil))),
      Promise.all(deps.charges().map((source) => source.chargesFor(facts, until))),
    ])
    const parking = await deps.pricing().quote({
      tariff: session.tariff,
      currency: session.currency,
      timeZone: session.time_zone,
      entryAt: session.entry_at,
      exitAt: pricedUntil,
      lostTicket: session.lost_ticket,
      adjustments: adjustments.flat(),
    })
    const quote = withCharges(parking, charges.flat())
    return {
      session: facts,
      quote,
      paid: ledger.paid,
      due: Math.max(0, quote.total - ledger.paid),
      currency: session.currency,
      exit_deadline: deadline,
      settlements: ledger.settlements,
    }
  }

  async function requireZoneOf(lot: LotView, zoneId: string) {
    const zone = await facilities.getZone(zoneId)
    if (zone.lot_id !== lot.id) throw new AppError('NOT_FOUND', `No zone ${zoneId} in the lot ${lot.id}`)
  }

  function typesFor(
    vehicle: EntryProfile | undefined,
    vehicleType: string,
    input: Pick<EntryInput, 'is_ev' | 'accessible' | 'space_type'>,
  ) {
    return spacePreferences({
      size: vehicle?.size ?? (vehicleType === 'motorcycle' ? 'MOTORCYCLE' : 'STANDARD'),
      ev: vehicle?.isEv ?? input.is_ev ?? false,
      accessible: input.accessible ?? false,
      requested: input.space_type,
    })
  }

  /**
   * Lets a car in: claims the plate, takes a space the way the door asks, picks the tariff in
   * force, issues the ticket and writes the session; undoes the claims when anything fails.
   */
  async function admit(
    a: {
      lot: LotView
      plate: string
      licensePlate: string
      vehicle: EntryProfile | undefined
      vehicleType: string
      zoneId: string | null
      source: EntrySource
      gate: string | null
      lprConfidence: number | null
      reservationId: string | null
      /** The customer, when the vehicle is not registered (a reservation's booker). */
      userId: string | null
      takeSpace: (sessionId: string) => Promise<HeldSpace | null>
    },
    caller: Caller,
  ) {
    const { lot, plate, vehicle } = a
    const sessionId = uuidv7()
    const now = new Date()
    await claimPlate(plate, sessionId)
    let ticket: string | undefined
    try {
      const space = await a.takeSpace(sessionId)
      const tariff = await deps.pricing().tariffFor({
        lotId: lot.id,
        zoneId: space?.zoneId ?? a.zoneId,
        vehicleType: a.vehicleType,
        at: now,
      })
      ticket = await issueTicket(sessionId)
      const session: SessionRecord = {
        _id: sessionId,
        ticket_number: ticket,
        lot_id: lot.id,
        level_id: space?.levelId ?? null,
        zone_id: space?.zoneId ?? a.zoneId,
        space_id: space?.spaceId ?? null,
        space_number: space?.number ?? null,
        plate,
        license_plate: a.licensePlate.trim(),
        vehicle_id: vehicle?.vehicleId ?? null,
        vehicle_type: a.vehicleType,
        user_id: vehicle?.ownerId ?? a.userId,
        entry_at: now,
        entry_gate: a.gate,
        entry_source: a.source,
        lpr_confidence: a.lprConfidence,
        tariff,
        currency: lot.currency,
        time_zone: lot.time_zone,
        status: 'active',
        lost_ticket: false,
        exit_at: null,
        exit_gate: null,
        fee_total: null,
        reservation_id: a.reservationId,
        created_by: caller.userId,
        created_at: now,
        updated_at: now,
      }
      // Read before the session is written: past the insert, nothing may fail and undo the claims.
      const assigned = space ? await spaceAssigned(space) : null
      await repo.insertSession(session)
      await tellStarted(session)
      return { session: toSessionView(session), ticket_number: ticket, space_assigned: assigned }
    } catch (error) {
      // Undo in reverse; what cannot be undone now is taken over later (the plate claim) or
      // rebuilt (the hold goes with the session that never got written).
      await spaces
        .release(sessionId)
        .catch((e: Error) => logger.warn({ reason: e.message }, 'entry: space not released'))
      if (ticket) await repo.releaseTicket(ticket, sessionId).catch(() => {})
      await repo.releasePlate(plate, sessionId).catch(() => {})
      throw error
    }
  }

  const canSee = (caller: Caller, session: SessionRecord) =>
    caller.role !== 'customer' || (session.user_id !== null && session.user_id === caller.userId)

  const port: SessionsPort = {
    async facts(sessionId) {
      return factsOf(await requireSession(sessionId))
    },
    async factsByTicket(ticketNumber) {
      return factsOf(await sessionByTicket(ticketNumber))
    },
    async amountDue(sessionId, at = new Date()) {
      return await amountDue(await requireSession(sessionId), at)
    },
  }

  return {
    port,

    async enter(input: EntryInput, caller: Caller) {
      const source = input.source ?? 'operator'
      if (source === 'lpr' && (input.lpr_confidence ?? 0) < settings.lprMinConfidence) {
        throw new AppError(
          'UNPROCESSABLE',
          'The plate read is not certain enough: confirm the plate by hand',
          {
            extensions: { reason: 'low_confidence', min_confidence: settings.lprMinConfidence },
          },
        )
      }
      const lot = await lotOf(input.lot_id)
      const zoneId = input.zone_id ?? null
      if (zoneId) await requireZoneOf(lot, zoneId)
      const plate = normalizePlate(input.license_plate)
      const arrived = await deps.arrivals?.()(plate, lot.id, caller)
      if (arrived) return arrived
      const vehicle = await deps.vehicles.entryProfile(plate)
      const vehicleType = vehicle?.vehicleType ?? input.vehicle_type ?? 'standard'
      const types = typesFor(vehicle, vehicleType, input)
      return await admit(
        {
          lot,
          plate,
          licensePlate: input.license_plate,
          vehicle,
          vehicleType,
          zoneId,
          source,
          gate: input.entry_gate ?? null,
          lprConfidence: input.lpr_confidence ?? null,
          reservationId: null,
          userId: null,
          takeSpace: async (sessionId) => {
            const space = await spaces.allocate(sessionId, lot.id, zoneId, types)
            if (!space && settings.fullLotPolicy === 'refuse') {
              throw new AppError(
                'CONFLICT',
                `${lot.name} has no free space for this vehicle (${types.join(', ')})`,
                { extensions: { reason: 'lot_full', lot_id: lot.id, space_types: types } },
              )
            }
            return space
          },
        },
        caller,
      )
    },

    /**
     * A check-in at a reservation: the car enters onto the space the reservation holds, handed over
     * from the reservation to the session in one step of the arbiter; when the reservation could not
     * hold it (a car sat there), another space of its zone. A booked car is let in even when the lot
     * is full (without a space: an operator assigns one).
     */
    async enterReserved(entry: ReservedEntry, caller: Caller) {
      const lot = await facilities.getLot(entry.lot_id)
      const plate = normalizePlate(entry.license_plate)
      const vehicle = await deps.vehicles.entryProfile(plate)
      const vehicleType = vehicle?.vehicleType ?? 'standard'
      const types = typesFor(vehicle, vehicleType, {})
      const result = await admit(
        {
          lot,
          plate,
          licensePlate: entry.license_plate,
          vehicle,
          vehicleType,
          zoneId: entry.zone_id,
          source: 'reservation',
          gate: null,
          lprConfidence: null,
          reservationId: entry.reservation_id,
          userId: entry.user_id,
          takeSpace: async (sessionId) => {
            if (entry.space_id) {
              const held = await spaces.hold(sessionId, entry.space_id, { takeOverFrom: entry.holder })
              if (held && held !== 'unknown-space') return held
            }
            return await spaces.allocate(sessionId, lot.id, entry.zone_id, types)
          },
        },
        caller,
      )
      // Whatever the session took, the reservation holds nothing any more.
      await spaces
        .release(entry.holder)
        .catch((e: Error) => logger.warn({ reason: e.message }, 'check-in: reservation hold not released'))
      return result
    },

    async exit(input: ExitInput, caller: Caller) {
      let session: SessionRecord | undefined
      if (input.ticket_number) session = await sessionByTicket(input.ticket_number)
      else if (input.license_plate) {
        const plate = normalizePlate(input.license_plate)
        session = await activeSessionOfPlate(plate)
        if (!session) throw noSession(`is active for the plate ${plate}`)
      }
      if (!session) throw noSession('without a ticket number or a plate')
      const exited = await repo.findExit(session._id)
      if (session.status === 'closed' && exited) {
        // The listeners of an exit whose answer was lost may have failed: tell them again (they
        // are idempotent) before answering that the car has left.
        await tellClosed(session, (await amountDue(session, exited.exit_at)).quote)
        throw new AppError('CONFLICT', `The session of ticket ${session.ticket_number} has exited already`, {
          extensions: { reason: 'already_exited', exit_time: exited.exit_at.toISOString() },
        })
      }
      if (exited) {
        // A retried exit that did not finish: finish it.
        const closed = await close(session, exited)
        const fee = (await amountDue(closed, exited.exit_at)).quote
        await tellClosed(closed, fee)
        return { session: toSessionView(closed), fee, amount_paid: exited.paid }
      }
      if (input.lost_ticket && !session.lost_ticket) {
        await repo.updateSession(session._id, { lost_ticket: true })
        session = { ...session, lost_ticket: true }
      }
      const now = new Date()
      const due = await amountDue(session, now)
      if (due.due > 0) {
        throw new AppError(
          'PAYMENT_REQUIRED',
          `${formatMoney(due.due, due.currency)} is due before this vehicle can leave`,
          {
            extensions: {
              amount_due: due.due,
              currency: due.currency,
              session_id: session._id,
              ticket_number: session.ticket_number,
            },
          },
        )
      }
      const exit: ExitRecord = {
        _id: session._id,
        exit_at: now,
        exit_gate: input.exit_gate ?? null,
        fee_total: due.quote.total,
        paid: due.paid,
        created_by: caller.userId,
      }
      // Two gates exiting one session at once: one fact, both finish it.
      const record = (await repo.recordExit(exit)) ? exit : ((await repo.findExit(session._id)) ?? exit)
      const closed = await close(session, record)
      await tellClosed(closed, due.quote)
      return { session: toSessionView(closed), fee: due.quote, amount_paid: due.paid }
    },

    async get(caller: Caller, id: string): Promise<SessionView> {
      const session = await requireSession(id)
      if (!canSee(caller, session)) throw noSession(id)
      return toSessionView(session)
    },

    async byTicket(ticketNumber: string) {
      return ticketView(await sessionByTicket(ticketNumber), new Date())
    },

    async fee(caller: Caller, id: string) {
      const session = await requireSession(id)
      if (!canSee(caller, session)) throw noSession(id)
      const at = new Date()
      const due = await amountDue(session, at)
      return feeView(session, due, at)
    },

    /** Customers see their own sessions; operators and admins every one, filtered. */
    async list(
      caller: Caller,
      query: Page & { status?: SessionRecord['status'] | undefined; lot_id?: string | undefined },
    ) {
      const rows = await repo.listSessions({
        status: query.status,
        lotId: query.lot_id,
        userId: caller.role === 'customer' ? caller.userId : undefined,
        after: query.cursor ? decodeCursor(query.cursor) : undefined,
        limit: query.limit + 1,
      })
      return pageOf(rows, query.limit, toSessionView)
    },

    /**
     * Active sessions of a lot (or all), each with its fee so far (before reductions and
     * payments), the page priced in one batch through the worker pool.
     */
    async active(query: Page & { lot_id?: string | undefined }) {
      const rows = await repo.listSessions({
        status: 'active',
        lotId: query.lot_id,
        after: query.cursor ? decodeCursor(query.cursor) : undefined,
        limit: query.limit + 1,
      })
      const now = new Date()
      const page = rows.slice(0, query.limit)
      const quotes = await deps.pricing().quoteMany(
        page.map((s) => ({
          tariff: s.tariff,
          currency: s.currency,
          timeZone: s.time_zone,
          entryAt: s.entry_at,
          exitAt: now,
          lostTicket: s.lost_ticket,
          adjustments: [],
        })),
      )
      const fees = new Map(page.map((s, i) => [s._id, quotes[i]?.total ?? null]))
      return pageOf(rows, query.limit, (s) => ({
        ...toSessionView(s),
        duration_minutes: minutesBetween(s.entry_at, now),
        fee_so_far: fees.get(s._id) ?? null,
      }))
    },

    async assignSpace(id: string, spaceId: string) {
      const session = await requireSession(id)
      if (session.status !== 'active') {
        throw new AppError('CONFLICT', `The session ${id} has ended`, {
          extensions: { reason: 'session_closed' },
        })
      }
      const space = await facilities.findSpace(spaceId)
      if (!space) throw new AppError('NOT_FOUND', `No space ${spaceId}`)
      if (space.lot_id !== session.lot_id) {
        throw new AppError('UNPROCESSABLE', `The space ${spaceId} is in another lot`, {
          extensions: { reason: 'wrong_lot' },
        })
      }
      const held = await spaces.hold(session._id, spaceId)
      if (held === 'unknown-space') throw new AppError('NOT_FOUND', `No space ${spaceId}`)
      // An exit may have closed the session meanwhile: then the space goes back at once.
      if (held && (await repo.findExit(session._id))) {
        await spaces.release(session._id)
        throw new AppError('CONFLICT', `The session ${id} has ended`, {
          extensions: { reason: 'session_closed' },
        })
      }
      if (!held) {
        throw new AppError('CONFLICT', `The space ${spaceId} is not free`, {
          extensions: { reason: 'space_taken' },
        })
      }
      const fields = {
        level_id: held.levelId,
        zone_id: held.zoneId,
        space_id: held.spaceId,
        space_number: held.number,
      }
      await repo.updateSession(session._id, fields)
      return { session: toSessionView({ ...session, ...fields }), space_assigned: await spaceAssigned(held) }
    },

    /** For the hot state's rebuild. */
    holds: () => repo.holds(),
  }
}

export type SessionsService = ReturnType<typeof createSessionsService>

/** The parking fee with the charges billed alongside it (EV energy, idle fees), itemised. */
function withCharges(parking: FeeQuote, charges: readonly ExtraCharge[]): FeeQuote {
  if (charges.length === 0) return parking
  const sum = charges.reduce((total, c) => total + c.amount, 0)
  return {
    ...parking,
    charges: sum,
    total: parking.total + sum,
    breakdown: [
      ...parking.breakdown,
      ...charges.map((c) => ({ kind: c.kind, description: c.description, amount: c.amount })),
    ],
  }
}

function feeView(session: SessionRecord, due: AmountDue, at: Date) {
  const q: FeeQuote = due.quote
  return {
    session_id: session._id,
    duration_minutes: q.duration_minutes,
    base_fee: q.base_fee,
    discounts: q.discounts,
    charges: q.charges ?? 0,
    tax: q.tax,
    total: q.total,
    currency: q.currency,
    breakdown: q.breakdown,
    tariff_id: q.tariff_id,
    tariff_name: q.tariff_name,
    amount_paid: due.paid,
    amount_due: due.due,
    exit_deadline: due.exit_deadline?.toISOString() ?? null,
    computed_at: at.toISOString(),
  }
}
