import { setTimeout as delay } from 'node:timers/promises'
import type { Logger } from '../../shared/logger.ts'
import type { ChangeEvent, Counts } from '../occupancy/occupancy.state.ts'
import type { MoneyMoved } from '../payments/payments.service.ts'
import type { ReservationListener, ReservationView } from '../reservations/reservations.service.ts'
import type { FeeQuote, SessionFacts, SessionListener } from '../sessions/operations.contract.ts'
import {
  type EventSink,
  eventId,
  type LotAvailability,
  type PlatformEvent,
  type WebhookEventType,
} from './webhooks.contract.ts'

/**
 * The producers of webhook events: what the other capabilities tell (a batch of space changes
 * written, a session started or closed, money moved, a reservation made, cancelled or checked in)
 * mapped to PlatformEvents for the sink. The mappings are pure; ids derive from the fact (a stream
 * id, a session id, a payment or refund id, a reservation id), so that telling a fact again (a
 * persister batch run again, a retried exit) gives the same event, recorded once.
 */

/** Changes that move a space in or out of the counts: structure, not state, so never an event. */
const structural = new Set<ChangeEvent['kind']>(['placed', 'removed'])

const iso = (ms: string) => new Date(Number(ms)).toISOString()
const orNull = (value: string) => value || null

/** The hot state names a reservation's hold `rsv:<id>` and a parking session's by its id. */
function holderOf(change: ChangeEvent): { session_id: string | null; reservation_id: string | null } {
  if (!change.session) return { session_id: null, reservation_id: null }
  if (change.session.startsWith('rsv:')) return { session_id: null, reservation_id: change.session.slice(4) }
  return { session_id: change.session, reservation_id: null }
}

/** Whether a change moved a space's status (what counts), as opposed to structure or a silent detail. */
export function isStateChange(change: ChangeEvent): boolean {
  return !structural.has(change.kind) && change.status_from !== change.status_to
}

/** space.state_changed for a change whose status moved; null for any other change. */
export function spaceStateChanged(change: ChangeEvent): PlatformEvent | null {
  if (!isStateChange(change)) return null
  const type = 'space.state_changed'
  return {
    id: eventId(type, change.id),
    type,
    occurred_at: new Date(Number(change.at)),
    lot_id: change.lot,
    data: {
      space_id: change.space,
      number: change.number,
      lot_id: change.lot,
      level_id: change.level,
      zone_id: change.zone,
      type: change.type,
      kind: change.kind,
      status_from: change.status_from,
      status_to: change.status_to,
      sensed_from: change.sensed_from,
      sensed_to: change.sensed_to,
      overlay: orNull(change.overlay),
      device_id: orNull(change.device),
      ...holderOf(change),
      changed_at: iso(change.at),
      change_id: change.id,
    },
  }
}

/**
 * sensor.stale for a change of kind `stale` (the sweeper turned a silent sensor's space unknown);
 * null for any other. `lastSeenAt`: the device's last message, when the hot state still has it
 * from before the change (a sensor that spoke again since has a newer one: then null).
 */
export function sensorStale(
  change: ChangeEvent,
  lastSeenAt: Date | null,
  staleAfterSeconds: number,
): PlatformEvent | null {
  if (change.kind !== 'stale') return null
  const type = 'sensor.stale'
  const at = Number(change.at)
  return {
    id: eventId(type, change.id),
    type,
    occurred_at: new Date(at),
    lot_id: change.lot,
    data: {
      device_id: change.device,
      space_id: change.space,
      number: change.number,
      lot_id: change.lot,
      level_id: change.level,
      zone_id: change.zone,
      last_seen_at: lastSeenAt && lastSeenAt.getTime() <= at ? lastSeenAt.toISOString() : null,
      stale_after_seconds: staleAfterSeconds,
      status_from: change.status_from,
      status_to: change.status_to,
      detected_at: iso(change.at),
      change_id: change.id,
    },
  }
}

/**
 * The lots whose counts a batch may have moved (a status change, a space placed or removed), each
 * with the last change of it in the batch: the counts read after the batch are "after" that one.
 */
export function lotsTouched(changes: readonly ChangeEvent[]): Map<string, string> {
  const last = new Map<string, string>()
  for (const change of changes)
    if (structural.has(change.kind) || change.status_from !== change.status_to)
      last.set(change.lot, change.id)
  return last
}

/** The availability of each touched lot whose counts exist (a lot with no space left has none). */
export function availabilityOf(
  touched: ReadonlyMap<string, string>,
  counts: ReadonlyMap<string, Pick<Counts, 'total' | 'free'> | null>,
  at: Date,
): LotAvailability[] {
  const lots: LotAvailability[] = []
  for (const [lotId, afterChange] of touched) {
    const lot = counts.get(lotId)
    if (lot) lots.push({ lot_id: lotId, after_change: afterChange, at, total: lot.total, free: lot.free })
  }
  return lots
}

function sessionData(session: SessionFacts) {
  return {
    session_id: session.id,
    ticket_number: session.ticket_number,
    lot_id: session.lot_id,
    zone_id: session.zone_id,
    space_id: session.space_id,
    license_plate: session.plate,
    vehicle_id: session.vehicle_id,
    vehicle_type: session.vehicle_type,
    user_id: session.user_id,
    reservation_id: session.reservation_id,
    entry_at: session.entry_at.toISOString(),
  }
}

export function sessionStarted(session: SessionFacts): PlatformEvent {
  const type = 'session.started'
  return {
    id: eventId(type, session.id),
    type,
    occurred_at: session.entry_at,
    lot_id: session.lot_id,
    data: { ...sessionData(session), status: 'active' },
  }
}

export function sessionClosed(session: SessionFacts, fee: FeeQuote): PlatformEvent {
  const type = 'session.closed'
  const exitAt = session.exit_at ?? new Date()
  return {
    id: eventId(type, session.id),
    type,
    occurred_at: exitAt,
    lot_id: session.lot_id,
    data: {
      ...sessionData(session),
      status: 'closed',
      exit_at: exitAt.toISOString(),
      duration_minutes: fee.duration_minutes,
      fee: { amount: fee.total, currency: fee.currency },
    },
  }
}

/** payment.succeeded for a settlement, payment.refunded for a refund (its id is the refund's). */
export function paymentEvent(money: MoneyMoved): PlatformEvent {
  const type = money.kind === 'settled' ? 'payment.succeeded' : 'payment.refunded'
  const at = money.at.toISOString()
  return {
    id: eventId(type, money.id),
    type,
    occurred_at: money.at,
    lot_id: money.lot_id,
    data: {
      payment_id: money.payment_id,
      session_id: money.session_id,
      ...(money.kind === 'refunded' ? { refund_id: money.id, refunded_at: at } : { settled_at: at }),
      lot_id: money.lot_id,
      method: money.method,
      amount: money.amount,
      currency: money.currency,
    },
  }
}

export type ReservationEventType = Extract<
  WebhookEventType,
  'reservation.created' | 'reservation.cancelled' | 'reservation.checked_in'
>

/** A reservation event from the reservation as the API shows it (without its confirmation number). */
export function reservationEvent(type: ReservationEventType, r: ReservationView): PlatformEvent {
  const occurredAt =
    type === 'reservation.cancelled'
      ? (r.cancelled_at ?? r.updated_at)
      : type === 'reservation.checked_in'
        ? (r.checked_in_at ?? r.updated_at)
        : r.created_at
  const data: Record<string, unknown> = {
    reservation_id: r.id,
    status: r.status,
    lot_id: r.lot_id,
    level_id: r.level_id,
    zone_id: r.zone_id,
    space_id: r.space_id,
    space_number: r.space_number,
    space_type: r.space_type,
    vehicle_id: r.vehicle_id,
    license_plate: r.license_plate,
    user_id: r.user_id,
    start_time: r.start_time,
    end_time: r.end_time,
    prepaid: r.prepaid,
    amount: r.amount,
    currency: r.currency,
    payment_status: r.payment_status,
    created_at: r.created_at,
  }
  if (type === 'reservation.cancelled') {
    data.cancelled_at = r.cancelled_at
    data.refund = r.refund
      ? { amount: r.refund.amount, currency: r.refund.currency, status: r.refund.status }
      : null
  }
  if (type === 'reservation.checked_in') {
    data.session_id = r.session_id
    data.checked_in_at = r.checked_in_at
  }
  return { id: eventId(type, r.id), type, occurred_at: new Date(occurredAt), lot_id: r.lot_id, data }
}

/** What the producers read from the occupancy hot state after a batch. */
export type OccupancyReads = {
  /** Counts of these lots, in one round trip (null for a lot with no counts). */
  lotCounts(lotIds: readonly string[]): Promise<(Pick<Counts, 'total' | 'free'> | null)[]>
  deviceHealth(deviceIds: readonly string[]): Promise<{ deviceId: string; lastSeenAt: Date | null }[]>
}

/** Waits before the second, third and fourth try of a producer's publish. */
export const PUBLISH_RETRY_DELAYS_MS: readonly number[] = [100, 400, 1_600]

/**
 * The producers, bound to a sink. `sink` is asked at every call (the webhooks capability may be
 * made after the capabilities that tell); every producer asks `wants` first, so that nothing is
 * built while nobody subscribes.
 */
export function createEventProducers(deps: {
  sink: () => EventSink
  settings: {
    staleAfterSeconds: number
    /** Waits before each new try of a failed publish (sessions, payments, reservations). */
    publishRetryDelaysMs?: readonly number[] | undefined
  }
  logger?: Logger | undefined
}) {
  const wants = (type: WebhookEventType) => deps.sink().wants(type)

  /**
   * After the persister wrote a batch of changes, before it acknowledges them: a failure here
   * throws, the batch is not acknowledged and comes again (the same stream ids, the same events).
   */
  async function changesWritten(changes: readonly ChangeEvent[], occupancy: OccupancyReads): Promise<void> {
    if (changes.length === 0) return
    const sink = deps.sink()
    const events: PlatformEvent[] = []
    if (sink.wants('space.state_changed'))
      for (const change of changes) {
        const event = spaceStateChanged(change)
        if (event) events.push(event)
      }
    if (sink.wants('sensor.stale')) {
      const stale = changes.filter((change) => change.kind === 'stale')
      if (stale.length > 0) {
        const health = await occupancy.deviceHealth([...new Set(stale.map((c) => c.device))])
        const lastSeen = new Map(health.map((h) => [h.deviceId, h.lastSeenAt]))
        for (const change of stale) {
          const event = sensorStale(
            change,
            lastSeen.get(change.device) ?? null,
            deps.settings.staleAfterSeconds,
          )
          if (event) events.push(event)
        }
      }
    }
    if (events.length > 0) await sink.publish(events)
    if (sink.wants('lot.availability_threshold_crossed')) {
      const touched = lotsTouched(changes)
      if (touched.size > 0) {
        const lotIds = [...touched.keys()]
        const counts = await occupancy.lotCounts(lotIds)
        const byLot = new Map(lotIds.map((lotId, i) => [lotId, counts[i] ?? null]))
        await sink.availability(availabilityOf(touched, byLot, new Date()))
      }
    }
  }

  const retryDelays = deps.settings.publishRetryDelaysMs ?? PUBLISH_RETRY_DELAYS_MS

  /**
   * Publishes one event. Sessions, payments and reservations only log a listener's failure and
   * nothing tells the fact again (unlike a persister batch): a failure (MongoDB or Redis away for
   * a moment) is tried again a few times with growing waits before the event is logged as lost.
   * A try that recorded part of it is harmless: the event id and delivery ids are deterministic.
   */
  async function publishOne(event: PlatformEvent): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await deps.sink().publish([event])
      } catch (error) {
        const wait = retryDelays[attempt]
        if (wait === undefined) {
          deps.logger?.error(
            { err: error, eventId: event.id, type: event.type, attempts: attempt + 1 },
            'webhook event lost: not recorded',
          )
          throw error
        }
        await delay(wait)
      }
    }
  }

  const sessionListener: SessionListener = {
    async sessionStarted(session) {
      if (wants('session.started')) await publishOne(sessionStarted(session))
    },
    async sessionClosed(session, fee) {
      if (wants('session.closed')) await publishOne(sessionClosed(session, fee))
    },
  }

  async function moneyMoved(money: MoneyMoved): Promise<void> {
    if (wants(money.kind === 'settled' ? 'payment.succeeded' : 'payment.refunded'))
      await publishOne(paymentEvent(money))
  }

  const reservationListener: ReservationListener = {
    async created(r) {
      if (wants('reservation.created')) await publishOne(reservationEvent('reservation.created', r))
    },
    async cancelled(r) {
      if (wants('reservation.cancelled')) await publishOne(reservationEvent('reservation.cancelled', r))
    },
    async checkedIn(r) {
      if (wants('reservation.checked_in')) await publishOne(reservationEvent('reservation.checked_in', r))
    },
  }

  return { changesWritten, sessionListener, moneyMoved, reservationListener }
}

export type EventProducers = ReturnType<typeof createEventProducers>
