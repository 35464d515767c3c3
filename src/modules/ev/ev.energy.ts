// Energy, cost and idle fees of charges: pure functions of a charge, its stop and the last meter
// reading, so that the fee, the stop and the views price a charge alike.

import { formatMoney } from '../../../workers/fee.ts'
import type { ExtraCharge } from '../sessions/operations.contract.ts'
import type { ChargeRecord, ChargeStopRecord, EnergySource } from './ev.model.ts'

const HOUR_MS = 3_600_000
const MINUTE_MS = 60_000

/** A meter's last cumulative reading. */
export type MeterReading = { wh: number; at: Date }

export type Energy = { wh: number; source: EnergySource }

/** The most the charge can have drawn: the station's power for the time charged. */
export function estimatedWh(powerKw: number, from: Date, to: Date): number {
  return Math.max(0, Math.round((powerKw * 1000 * (to.getTime() - from.getTime())) / HOUR_MS))
}

/**
 * The energy of a charge ending at `at`, as a stop records it: the meter's advance since the start
 * when the charge has a start reading and the meter has a reading not below it; otherwise the
 * estimate (an upper bound).
 */
export function energyAtStop(
  charge: Pick<ChargeRecord, 'meter_start_wh' | 'power_kw' | 'started_at'>,
  at: Date,
  meter: MeterReading | null,
): Energy & { meter_end_wh: number | null } {
  if (charge.meter_start_wh !== null && meter && meter.wh >= charge.meter_start_wh) {
    return { wh: Math.round(meter.wh - charge.meter_start_wh), source: 'meter', meter_end_wh: meter.wh }
  }
  return { wh: estimatedWh(charge.power_kw, charge.started_at, at), source: 'estimated', meter_end_wh: null }
}

/**
 * The energy of a charge up to `until`. A charge that ended by then counts whole; one running at
 * `until`, or that ended after it, counts up to `until`: estimated from power and time, or for a
 * metered one the meter's advance, taken linearly over the time between the start and its last
 * reading (or its stop) when `until` lies before that reading.
 */
export function energyUntil(
  charge: ChargeRecord,
  stop: ChargeStopRecord | undefined,
  until: Date,
  meter: MeterReading | null,
): Energy {
  const start = charge.started_at.getTime()
  if (until.getTime() <= start) return { wh: 0, source: stop?.energy_source ?? charge.energy_source }
  if (stop && stop.stopped_at <= until) return { wh: stop.energy_wh, source: stop.energy_source }
  const last: Energy & { at: Date } = stop
    ? { wh: stop.energy_wh, source: stop.energy_source, at: stop.stopped_at }
    : { ...energyAtStop(charge, until, meter), at: meter?.at ?? until }
  if (last.source === 'estimated')
    return { wh: estimatedWh(charge.power_kw, charge.started_at, until), source: 'estimated' }
  if (last.at.getTime() <= until.getTime()) return { wh: last.wh, source: 'meter' }
  const span = last.at.getTime() - start
  const share = span <= 0 ? 1 : (until.getTime() - start) / span
  return { wh: Math.round(last.wh * share), source: 'meter' }
}

/** round(kWh x price per kWh) in minor units; energy in whole Wh. */
export function costOf(wh: number, pricePerKwh: number): number {
  return Math.round((wh * pricePerKwh) / 1000)
}

export const kwhOf = (wh: number) => Math.round(wh) / 1000

/**
 * Idle minutes billed: the started minutes a charge's vehicle stayed on the space after its charge
 * ended, past the grace. The idle time ends at `until` or when the same parking session started
 * another charge.
 */
export function idleMinutes(stoppedAt: Date, idleEnd: Date, graceMinutes: number): number {
  const minutes = Math.floor((idleEnd.getTime() - stoppedAt.getTime()) / MINUTE_MS)
  return Math.max(0, minutes - graceMinutes)
}

/**
 * A parking session's charges up to `until`, itemised. `onSpace`: the session still holds the
 * space of its charges (idle fees run only while the vehicle stays on the charger's space).
 */
export function sessionCharges(
  charges: readonly ChargeRecord[],
  stops: ReadonlyMap<string, ChargeStopRecord>,
  meters: ReadonlyMap<string, MeterReading>,
  until: Date,
  sessionSpaceId: string | null,
): ExtraCharge[] {
  const ordered = [...charges].sort((a, b) => a.started_at.getTime() - b.started_at.getTime())
  const lines: ExtraCharge[] = []
  ordered.forEach((charge, i) => {
    if (charge.started_at >= until) return
    const stop = stops.get(charge._id)
    const meter = charge.meter_device_id ? (meters.get(charge.meter_device_id) ?? null) : null
    const energy = energyUntil(charge, stop, until, meter)
    const price = `${formatMoney(charge.price_per_kwh, charge.currency)}/kWh`
    const estimated = energy.source === 'estimated' ? ' (estimated)' : ''
    lines.push({
      kind: 'ev_charging',
      description: `EV charging, ${kwhOf(energy.wh).toFixed(3)} kWh${estimated} @ ${price}`,
      amount: costOf(energy.wh, charge.price_per_kwh),
      ref: charge._id,
    })
    if (!stop || stop.stopped_at > until || charge.idle_fee_per_minute <= 0) return
    if (sessionSpaceId !== charge.space_id) return
    const next = ordered[i + 1]?.started_at
    const idleEnd = next && next < until ? next : until
    const minutes = idleMinutes(stop.stopped_at, idleEnd, charge.idle_grace_minutes)
    if (minutes <= 0) return
    lines.push({
      kind: 'ev_idle',
      description: `EV idle fee, ${minutes} min after the ${charge.idle_grace_minutes} min grace @ ${formatMoney(charge.idle_fee_per_minute, charge.currency)}/min`,
      amount: minutes * charge.idle_fee_per_minute,
      ref: charge._id,
    })
  })
  return lines
}
