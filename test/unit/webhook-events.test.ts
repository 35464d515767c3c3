import { describe, expect, it } from 'vitest'
import type { ChangeEvent } from '../../src/modules/occupancy/occupancy.state.ts'
import type { MoneyMoved } from '../../src/modules/payments/payments.service.ts'
import type { ReservationView } from '../../src/modules/reservations/reservations.service.ts'
import type { FeeQuote, SessionFacts } from '../../src/modules/sessions/operations.contract.ts'
import {
  type EventSink,
  eventId,
  type LotAvailability,
  type PlatformEvent,
  type WebhookEventType,
} from '../../src/modules/webhooks/webhooks.contract.ts'
import {
  availabilityOf,
  createEventProducers,
  lotsTouched,
  paymentEvent,
  reservationEvent,
  sensorStale,
  sessionClosed,
  sessionStarted,
  spaceStateChanged,
} from '../../src/modules/webhooks/webhooks.events.ts'

const AT = Date.parse('2030-03-04T05:06:07.000Z')

function change(fields: Partial<ChangeEvent> = {}): ChangeEvent {
  return {
    id: `${AT}-0`,
    space: 'sp1',
    lot: 'lot1',
    level: 'lv1',
    zone: 'zn1',
    number: 'A-12',
    type: 'STANDARD',
    kind: 'sensor',
    sensed_from: 'free',
    sensed_to: 'occupied',
    status_from: 'free',
    status_to: 'occupied',
    overlay: '',
    at: String(AT),
    device: 'dev-1',
    boot: 'b1',
    seq: '7',
    session: '',
    ...fields,
  }
}

const session: SessionFacts = {
  id: 'ses_1',
  ticket_number: 'T-100',
  lot_id: 'lot1',
  zone_id: 'zn1',
  space_id: 'sp1',
  plate: 'AB123CD',
  vehicle_id: null,
  vehicle_type: 'standard',
  user_id: null,
  status: 'active',
  entry_at: new Date(AT),
  exit_at: null,
  currency: 'EUR',
  reservation_id: null,
}

const fee: FeeQuote = {
  currency: 'EUR',
  duration_minutes: 95,
  base_fee: 500,
  discounts: 100,
  tax: 0,
  total: 400,
  breakdown: [],
  tariff_id: 'tar_1',
  tariff_name: 'Hourly',
}

/** A card payment of a session settled. */
const settled: MoneyMoved = {
  kind: 'settled',
  id: 'pay_1',
  payment_id: 'pay_1',
  session_id: 'ses_1',
  lot_id: 'lot1',
  method: 'card',
  currency: 'EUR',
  amount: 400,
  at: new Date(AT),
}

function reservation(fields: Partial<ReservationView> = {}): ReservationView {
  return {
    id: 'rsv_1',
    confirmation_number: 'RSV-SECRET12',
    status: 'confirmed',
    user_id: 'usr_1',
    lot_id: 'lot1',
    level_id: 'lv1',
    zone_id: 'zn1',
    space_id: 'sp1',
    space_number: 'A-12',
    space_type: 'STANDARD',
    vehicle_id: 'veh_1',
    license_plate: 'AB123CD',
    vehicle_type: 'standard',
    start_time: '2030-03-05T10:00:00.000Z',
    end_time: '2030-03-05T12:00:00.000Z',
    special_requests: 'near the lift',
    prepaid: true,
    amount: 600,
    currency: 'EUR',
    payment_status: 'paid',
    payment_intent_id: 'pi_1',
    paid_at: '2030-03-04T05:10:00.000Z',
    check_in_opens_at: '2030-03-05T09:45:00.000Z',
    check_in_closes_at: '2030-03-05T10:30:00.000Z',
    session_id: null,
    checked_in_at: null,
    cancelled_at: null,
    refund: null,
    created_at: '2030-03-04T05:06:07.000Z',
    updated_at: '2030-03-04T05:06:07.000Z',
    ...fields,
  }
}

describe('space.state_changed', () => {
  it('maps a status change with its place, states, device and time, id from the stream id', () => {
    const event = spaceStateChanged(change())
    expect(event).toEqual({
      id: eventId('space.state_changed', `${AT}-0`),
      type: 'space.state_changed',
      occurred_at: new Date(AT),
      lot_id: 'lot1',
      data: {
        space_id: 'sp1',
        number: 'A-12',
        lot_id: 'lot1',
        level_id: 'lv1',
        zone_id: 'zn1',
        type: 'STANDARD',
        kind: 'sensor',
        status_from: 'free',
        status_to: 'occupied',
        sensed_from: 'free',
        sensed_to: 'occupied',
        overlay: null,
        device_id: 'dev-1',
        session_id: null,
        reservation_id: null,
        changed_at: '2030-03-04T05:06:07.000Z',
        change_id: `${AT}-0`,
      },
    })
    expect(JSON.parse(JSON.stringify(event?.data))).toEqual(event?.data)
  })

  it('gives the same id for the same change and another for another change', () => {
    expect(spaceStateChanged(change())?.id).toBe(spaceStateChanged(change())?.id)
    expect(spaceStateChanged(change({ id: `${AT}-1` }))?.id).not.toBe(spaceStateChanged(change())?.id)
  })

  it('skips changes that keep the status and structural ones (placed, removed)', () => {
    // The sensor flips under a maintenance overlay: the status that counts stays.
    expect(
      spaceStateChanged(
        change({ overlay: 'maintenance', status_from: 'maintenance', status_to: 'maintenance' }),
      ),
    ).toBeNull()
    expect(
      spaceStateChanged(change({ kind: 'placed', status_from: 'unknown', status_to: 'free' })),
    ).toBeNull()
    expect(
      spaceStateChanged(change({ kind: 'removed', status_from: 'free', status_to: 'unknown' })),
    ).toBeNull()
  })

  it('names a parking session and a reservation hold apart', () => {
    const held = spaceStateChanged(change({ kind: 'held', session: 'ses_9', status_to: 'occupied' }))
    expect(held?.data).toMatchObject({ session_id: 'ses_9', reservation_id: null, kind: 'held' })
    const reserved = spaceStateChanged(change({ kind: 'held', session: 'rsv:rsv_4', status_to: 'reserved' }))
    expect(reserved?.data).toMatchObject({ session_id: null, reservation_id: 'rsv_4', status_to: 'reserved' })
  })
})

describe('sensor.stale', () => {
  const stale = change({
    kind: 'stale',
    sensed_from: 'occupied',
    sensed_to: 'unknown',
    status_from: 'occupied',
    status_to: 'unknown',
    boot: '',
    seq: '',
  })

  it('maps a stale change with the device, its space and when it was last seen', () => {
    const lastSeen = new Date(AT - 600_000)
    const event = sensorStale(stale, lastSeen, 300)
    expect(event?.id).toBe(eventId('sensor.stale', `${AT}-0`))
    expect(event?.lot_id).toBe('lot1')
    expect(event?.data).toEqual({
      device_id: 'dev-1',
      space_id: 'sp1',
      number: 'A-12',
      lot_id: 'lot1',
      level_id: 'lv1',
      zone_id: 'zn1',
      last_seen_at: lastSeen.toISOString(),
      stale_after_seconds: 300,
      status_from: 'occupied',
      status_to: 'unknown',
      detected_at: '2030-03-04T05:06:07.000Z',
      change_id: `${AT}-0`,
    })
  })

  it('says nothing of a last message newer than the change (the sensor spoke again), and ignores other kinds', () => {
    expect(sensorStale(stale, new Date(AT + 1_000), 300)?.data.last_seen_at).toBeNull()
    expect(sensorStale(change(), new Date(AT - 1_000), 300)).toBeNull()
  })
})

describe('lot availability after a batch', () => {
  it('keeps the last change of each lot that moved counts, and skips lots without counts', () => {
    const batch = [
      change({ id: '1-0', lot: 'lotA' }),
      change({ id: '2-0', lot: 'lotB' }),
      change({ id: '3-0', lot: 'lotA' }),
      // No status change: no count moved.
      change({ id: '4-0', lot: 'lotA', status_from: 'unknown', status_to: 'unknown' }),
      change({ id: '5-0', lot: 'lotC', kind: 'placed', status_from: 'free', status_to: 'free' }),
    ]
    const touched = lotsTouched(batch)
    expect([...touched]).toEqual([
      ['lotA', '3-0'],
      ['lotB', '2-0'],
      ['lotC', '5-0'],
    ])
    const at = new Date(AT)
    const counts = new Map([
      ['lotA', { total: 10, free: 3 }],
      ['lotB', null],
      ['lotC', { total: 1, free: 1 }],
    ])
    expect(availabilityOf(touched, counts, at)).toEqual([
      { lot_id: 'lotA', after_change: '3-0', at, total: 10, free: 3 },
      { lot_id: 'lotC', after_change: '5-0', at, total: 1, free: 1 },
    ])
  })
})

describe('sessions, payments and reservations', () => {
  it('maps a session start and close, with fee, duration and exit time on the close', () => {
    const started = sessionStarted(session)
    expect(started.id).toBe(eventId('session.started', 'ses_1'))
    expect(started.data).toMatchObject({
      session_id: 'ses_1',
      ticket_number: 'T-100',
      lot_id: 'lot1',
      license_plate: 'AB123CD',
      status: 'active',
      entry_at: '2030-03-04T05:06:07.000Z',
    })
    const exitAt = new Date(AT + 95 * 60_000)
    const closed = sessionClosed({ ...session, status: 'closed', exit_at: exitAt }, fee)
    expect(closed.id).toBe(eventId('session.closed', 'ses_1'))
    expect(closed.id).not.toBe(started.id)
    expect(closed.occurred_at).toEqual(exitAt)
    expect(closed.data).toMatchObject({
      status: 'closed',
      exit_at: exitAt.toISOString(),
      duration_minutes: 95,
      fee: { amount: 400, currency: 'EUR' },
    })
  })

  it('maps a settlement and a refund by their own ids', () => {
    const paid = paymentEvent(settled)
    expect(paid).toMatchObject({ id: eventId('payment.succeeded', 'pay_1'), type: 'payment.succeeded' })
    expect(paid.data).toEqual({
      payment_id: 'pay_1',
      session_id: 'ses_1',
      settled_at: '2030-03-04T05:06:07.000Z',
      lot_id: 'lot1',
      method: 'card',
      amount: 400,
      currency: 'EUR',
    })
    const refunded = paymentEvent({ ...settled, kind: 'refunded', id: 'ref_1', amount: 150 })
    expect(refunded).toMatchObject({ id: eventId('payment.refunded', 'ref_1'), type: 'payment.refunded' })
    expect(refunded.data).toMatchObject({
      payment_id: 'pay_1',
      session_id: 'ses_1',
      refund_id: 'ref_1',
      amount: 150,
    })
    expect(paymentEvent({ ...settled, session_id: null }).data).toMatchObject({
      payment_id: 'pay_1',
      session_id: null,
    })
  })

  it('maps reservations without the confirmation number (it checks a car in at the gate)', () => {
    const created = reservationEvent('reservation.created', reservation())
    expect(created.id).toBe(eventId('reservation.created', 'rsv_1'))
    expect(created.data).toMatchObject({ reservation_id: 'rsv_1', status: 'confirmed', amount: 600 })
    expect(JSON.stringify(created.data)).not.toContain('RSV-SECRET12')
    expect(created.data).not.toHaveProperty('special_requests')

    const cancelled = reservationEvent(
      'reservation.cancelled',
      reservation({
        status: 'cancelled',
        cancelled_at: '2030-03-04T06:00:00.000Z',
        refund: {
          amount: 600,
          currency: 'EUR',
          status: 'succeeded',
          refund_id: 're_1',
          failure_reason: null,
        },
      }),
    )
    expect(cancelled.occurred_at).toEqual(new Date('2030-03-04T06:00:00.000Z'))
    expect(cancelled.data).toMatchObject({
      status: 'cancelled',
      cancelled_at: '2030-03-04T06:00:00.000Z',
      refund: { amount: 600, currency: 'EUR', status: 'succeeded' },
    })
    const checkedIn = reservationEvent(
      'reservation.checked_in',
      reservation({ status: 'checked_in', session_id: 'ses_1', checked_in_at: '2030-03-05T09:50:00.000Z' }),
    )
    expect(checkedIn.data).toMatchObject({ session_id: 'ses_1', checked_in_at: '2030-03-05T09:50:00.000Z' })
    expect(new Set([created.id, cancelled.id, checkedIn.id]).size).toBe(3)
  })
})

describe('the producers', () => {
  function fakeSink(wanted: readonly WebhookEventType[], failPublish = false) {
    const published: PlatformEvent[] = []
    const availability: LotAvailability[] = []
    const asked: WebhookEventType[] = []
    const sink: EventSink = {
      publish: async (events) => {
        if (failPublish) throw new Error('database down')
        published.push(...events)
      },
      wants: (type) => {
        asked.push(type)
        return wanted.includes(type)
      },
      availability: async (lots) => {
        availability.push(...lots)
      },
    }
    return { sink, published, availability, asked }
  }
  function reads() {
    const calls: string[] = []
    return {
      calls,
      occupancy: {
        lotCounts: async (lotIds: readonly string[]) => {
          calls.push(`counts:${lotIds.join(',')}`)
          return lotIds.map(() => ({ total: 4, free: 1 }))
        },
        deviceHealth: async (deviceIds: readonly string[]) => {
          calls.push(`health:${deviceIds.join(',')}`)
          return deviceIds.map((deviceId) => ({ deviceId, lastSeenAt: new Date(AT - 1_000) }))
        },
      },
    }
  }

  const batch = [
    change({ id: '1-0' }),
    change({ id: '2-0', kind: 'stale', status_from: 'occupied', status_to: 'unknown' }),
  ]

  it('builds and reads nothing when no subscription wants the types', async () => {
    const { sink, published, availability } = fakeSink([])
    const { occupancy, calls } = reads()
    const producers = createEventProducers({
      sink: () => sink,
      settings: { staleAfterSeconds: 60 },
    })
    await producers.changesWritten(batch, occupancy)
    await producers.sessionListener.sessionStarted?.(session)
    await producers.reservationListener.created?.(reservation())
    expect(published).toEqual([])
    expect(availability).toEqual([])
    expect(calls).toEqual([])
  })

  it('publishes the wanted events of a batch and the touched lots counts', async () => {
    const { sink, published, availability } = fakeSink([
      'space.state_changed',
      'sensor.stale',
      'lot.availability_threshold_crossed',
    ])
    const { occupancy, calls } = reads()
    const producers = createEventProducers({
      sink: () => sink,
      settings: { staleAfterSeconds: 60 },
    })
    await producers.changesWritten(batch, occupancy)
    expect(published.map((e) => e.type)).toEqual([
      'space.state_changed',
      'space.state_changed',
      'sensor.stale',
    ])
    expect(published.find((e) => e.type === 'sensor.stale')?.data).toMatchObject({
      device_id: 'dev-1',
      last_seen_at: new Date(AT - 1_000).toISOString(),
      stale_after_seconds: 60,
    })
    expect(calls).toEqual(['health:dev-1', 'counts:lot1'])
    expect(availability).toEqual([
      { lot_id: 'lot1', after_change: '2-0', at: expect.any(Date), total: 4, free: 1 },
    ])
  })

  it('fails the batch when the sink cannot record (the persister then does not acknowledge it)', async () => {
    const { sink } = fakeSink(['space.state_changed'], true)
    const { occupancy } = reads()
    const producers = createEventProducers({
      sink: () => sink,
      settings: { staleAfterSeconds: 60 },
    })
    await expect(producers.changesWritten(batch, occupancy)).rejects.toThrow('database down')
  })

  it('tries a failed publish of a session, payment or reservation event again, then gives up', async () => {
    let calls = 0
    let failures = 2
    const sink: EventSink = {
      publish: async () => {
        calls++
        if (failures-- > 0) throw new Error('database down')
      },
      wants: () => true,
      availability: async () => {},
    }
    const producers = createEventProducers({
      sink: () => sink,
      settings: { staleAfterSeconds: 60, publishRetryDelaysMs: [1, 1, 1] },
    })
    await producers.sessionListener.sessionStarted?.(session)
    expect(calls).toBe(3)

    calls = 0
    failures = 10
    await expect(producers.reservationListener.created?.(reservation())).rejects.toThrow('database down')
    expect(calls).toBe(4)
  })

  it('publishes a session close and a payment when wanted', async () => {
    const { sink, published } = fakeSink(['session.closed', 'payment.refunded'])
    const producers = createEventProducers({
      sink: () => sink,
      settings: { staleAfterSeconds: 60 },
    })
    await producers.sessionListener.sessionStarted?.(session)
    await producers.sessionListener.sessionClosed({ ...session, exit_at: new Date(AT) }, fee)
    await producers.moneyMoved(settled)
    await producers.moneyMoved({ ...settled, kind: 'refunded', id: 'ref_1' })
    expect(published.map((e) => e.type)).toEqual(['session.closed', 'payment.refunded'])
  })
})
