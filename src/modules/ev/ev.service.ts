import { AppError } from '../../shared/errors.ts'
import { decodeCursor, encodeCursor, pageOf, uuidv7 } from '../../shared/ids.ts'
import type { Logger } from '../../shared/logger.ts'
import type { FacilitiesService } from '../facilities/facilities.service.ts'
import type { SpaceStatus } from '../occupancy/occupancy.contract.ts'
import type {
  ChargesSource,
  ExtraCharge,
  SessionFacts,
  SessionListener,
  SessionsPort,
} from '../sessions/operations.contract.ts'
import type { Caller } from '../sessions/sessions.service.ts'
import { costOf, energyAtStop, energyUntil, kwhOf, type MeterReading, sessionCharges } from './ev.energy.ts'
import type {
  ChargeRecord,
  ChargerType,
  ChargeStopRecord,
  ServiceStatus,
  StationRecord,
  StopReason,
} from './ev.model.ts'
import type { EvRepository } from './ev.repository.ts'

/** What a station answers as its status: what staff set, then what is going on at the space. */
export type StationStatus = 'available' | 'charging' | 'occupied' | 'out_of_service'

/** The space's live state in the occupancy hot state (null: the hot state does not know it). */
export type LiveSpace = (spaceId: string) => Promise<{ status: SpaceStatus; sessionId: string | null } | null>

/** A device's last meter reading, as the occupancy index keeps it (DeviceHealth). */
export type MeterHealth = { deviceId: string; meterWh?: number | null; meterAt?: Date | null }

export type StationInput = {
  space_id: string
  charger_type: string
  connector_type: string
  power_kw: number
  price_per_kwh: number
  idle_fee_per_minute?: number | undefined
  idle_grace_minutes?: number | undefined
  status?: ServiceStatus | undefined
  meter_device_id?: string | null | undefined
}

export type StartInput = {
  station_id: string
  parking_session_id: string
  vehicle_id?: string | undefined
  max_power_requested?: number | undefined
}

type Page = { limit: number; cursor?: string | undefined }

/** A claim whose charge or station never got written is taken over after this long. */
const ABANDONED_CLAIM_MS = 60_000
/** available_only scans at most this many stations per page asked. */
const SCAN_BATCH = 100
const SCAN_ROUNDS = 20

const minutesBetween = (from: Date, to: Date) =>
  Math.max(0, Math.floor((to.getTime() - from.getTime()) / 60_000))

export function toStationView(
  station: StationRecord,
  live: { charging: boolean; space: { status: SpaceStatus; sessionId: string | null } | null },
) {
  return {
    id: station._id,
    space_id: station.space_id,
    space_number: station.space_number,
    lot_id: station.lot_id,
    zone_id: station.zone_id,
    charger_type: station.charger_type,
    connector_type: station.connector_type,
    power_kw: station.power_kw,
    price_per_kwh: station.price_per_kwh,
    idle_fee_per_minute: station.idle_fee_per_minute,
    idle_grace_minutes: station.idle_grace_minutes,
    currency: station.currency,
    meter_device_id: station.meter_device_id,
    service_status: station.status,
    status: liveStatus(station.status, live.charging, live.space),
    space_status: live.space?.status ?? null,
    created_at: station.created_at.toISOString(),
    updated_at: station.updated_at.toISOString(),
  }
}
export type StationView = ReturnType<typeof toStationView>

/**
 * A running charge wins (it goes on whatever staff set meanwhile); then staff's out_of_service, or
 * a space in maintenance or closed; then occupied: a vehicle on the space (held by a parking
 * session, sensed occupied, or reserved) without a charge; else available.
 */
export function liveStatus(
  service: ServiceStatus,
  charging: boolean,
  space: { status: SpaceStatus; sessionId: string | null } | null,
): StationStatus {
  if (charging) return 'charging'
  if (service === 'out_of_service') return 'out_of_service'
  if (space?.status === 'maintenance' || space?.status === 'closed') return 'out_of_service'
  if (space && (space.sessionId || space.status === 'occupied' || space.status === 'reserved'))
    return 'occupied'
  return 'available'
}

/** A charge with its stop, priced as of `at` (a running one so far). */
function toChargeView(
  charge: ChargeRecord,
  stop: ChargeStopRecord | undefined,
  at: Date,
  meter: MeterReading | null,
) {
  const end = stop?.stopped_at ?? at
  const energy = energyUntil(charge, stop, end, meter)
  return {
    id: charge._id,
    station_id: charge.station_id,
    parking_session_id: charge.parking_session_id,
    vehicle_id: charge.vehicle_id,
    user_id: charge.user_id,
    lot_id: charge.lot_id,
    space_id: charge.space_id,
    charger_type: charge.charger_type,
    status: stop ? ('completed' as const) : ('charging' as const),
    started_at: charge.started_at.toISOString(),
    stopped_at: stop?.stopped_at.toISOString() ?? null,
    duration_minutes: minutesBetween(charge.started_at, end),
    power_kw: charge.power_kw,
    max_power_requested: charge.max_power_requested,
    price_per_kwh: charge.price_per_kwh,
    idle_fee_per_minute: charge.idle_fee_per_minute,
    idle_grace_minutes: charge.idle_grace_minutes,
    currency: charge.currency,
    energy_kwh: kwhOf(energy.wh),
    energy_source: energy.source,
    cost: stop ? stop.cost : costOf(energy.wh, charge.price_per_kwh),
    meter_device_id: charge.meter_device_id,
    meter_start_wh: charge.meter_start_wh,
    meter_end_wh: stop?.meter_end_wh ?? null,
    stop_reason: stop?.reason ?? null,
  }
}
export type ChargeView = ReturnType<typeof toChargeView>

const noStation = (id: string) => new AppError('NOT_FOUND', `No charging station ${id}`)
const noCharge = (id: string) => new AppError('NOT_FOUND', `No charging session ${id}`)
const stationBusy = (id: string) =>
  new AppError('CONFLICT', `The station ${id} is charging another vehicle`, {
    extensions: { reason: 'station_busy' },
  })
const noParkingSession = (id: string) => new AppError('NOT_FOUND', `No parking session ${id}`)

/**
 * EV charging: stations bound to EV spaces, charges tied to parking sessions, their energy from a
 * meter or estimated, billed with the parking fee (ChargesSource) and stopped at the exit
 * (SessionListener). "Exactly once" is always an insert: a space's station, a station's running
 * charge, a parking session's running charge, a charge's stop.
 */
export function createEvService(deps: {
  repo: EvRepository
  facilities: Pick<FacilitiesService, 'findSpace' | 'getLot'>
  liveSpace: LiveSpace
  meters: { deviceHealth(deviceIds: readonly string[]): Promise<MeterHealth[]> }
  /** The registered device (sensors); a NOT_FOUND AppError when there is none. */
  findDevice: (deviceId: string) => Promise<{ kind: string; space_id: string | null }>
  /** Late-bound: sessions is made before this service and after it is asked. */
  sessions: () => Pick<SessionsPort, 'facts'>
  logger: Logger
}) {
  const { repo, facilities, logger } = deps

  async function requireStation(id: string): Promise<StationRecord> {
    const station = await repo.findStation(id)
    if (!station) throw noStation(id)
    return station
  }

  async function meterReadings(deviceIds: readonly string[]): Promise<Map<string, MeterReading>> {
    const unique = [...new Set(deviceIds)]
    if (unique.length === 0) return new Map()
    const health = await deps.meters.deviceHealth(unique)
    return new Map(
      health.flatMap((h) =>
        typeof h.meterWh === 'number' && Number.isFinite(h.meterWh)
          ? [[h.deviceId, { wh: h.meterWh, at: h.meterAt ?? new Date() }] as const]
          : [],
      ),
    )
  }

  async function meterReading(deviceId: string | null): Promise<MeterReading | null> {
    if (!deviceId) return null
    return (await meterReadings([deviceId])).get(deviceId) ?? null
  }

  /** The space a station goes on: an EV space; with the lot's currency. */
  async function placementOf(spaceId: string) {
    const space = await facilities.findSpace(spaceId)
    if (!space) throw new AppError('NOT_FOUND', `No space ${spaceId}`)
    if (space.type !== 'EV') {
      throw new AppError('UNPROCESSABLE', `The space ${space.number} is of type ${space.type}, not EV`, {
        extensions: { reason: 'not_ev_space' },
      })
    }
    const lot = await facilities.getLot(space.lot_id)
    return {
      space_id: space.id,
      lot_id: space.lot_id,
      zone_id: space.zone_id,
      space_number: space.number,
      currency: lot.currency,
    }
  }

  /**
   * A station's meter: a registered sensor or charger bound to the station's space, so that a
   * station never bills another bay's meter (422 meter_not_bound).
   */
  async function requireMeter(deviceId: string | null | undefined, spaceId: string): Promise<string | null> {
    if (!deviceId) return null
    const device = await deps.findDevice(deviceId).catch((error: unknown) => {
      if (error instanceof AppError && error.code === 'NOT_FOUND') return null
      throw error
    })
    if (!device || (device.kind !== 'sensor' && device.kind !== 'charger') || device.space_id !== spaceId) {
      throw new AppError(
        'UNPROCESSABLE',
        `The meter ${deviceId} must be a registered sensor or charger bound to the station's space`,
        {
          extensions: {
            reason: 'meter_not_bound',
            space_id: spaceId,
            device_kind: device?.kind ?? null,
            device_space_id: device?.space_id ?? null,
          },
        },
      )
    }
    return deviceId
  }

  /** One station per space; a claim whose station was never written is taken over. */
  async function claimSpace(spaceId: string, stationId: string): Promise<void> {
    for (let attempt = 0; attempt < 2; attempt++) {
      if (await repo.claimSpace(spaceId, stationId)) return
      const claim = await repo.findSpaceClaim(spaceId)
      if (!claim) continue
      const holder = await repo.findStation(claim.station_id)
      if (holder?.space_id === spaceId || Date.now() - claim.created_at.getTime() < ABANDONED_CLAIM_MS) {
        throw new AppError('CONFLICT', `The space ${spaceId} has a charging station already`, {
          extensions: { reason: 'space_has_station', station_id: claim.station_id },
        })
      }
      await repo.releaseSpace(spaceId, claim.station_id)
    }
    throw new AppError('CONFLICT', `The space ${spaceId} is being given a station; retry`, {
      extensions: { reason: 'space_has_station' },
    })
  }

  /**
   * Takes a running charge's claim of a station or a parking session. A claim left by a charge
   * that has stopped (its stop did not finish) or that was never written (after a minute) is
   * taken over; otherwise the holder's charge id is answered.
   */
  async function claimFor(kind: 'station' | 'session', id: string, chargeId: string): Promise<string | null> {
    for (let attempt = 0; attempt < 2; attempt++) {
      if (await repo.claim(kind, id, chargeId)) return null
      const claim = await repo.findClaim(kind, id)
      if (!claim) continue
      const [holder, stop] = await Promise.all([
        repo.findCharge(claim.charge_id),
        repo.findStop(claim.charge_id),
      ])
      const abandoned = !holder && Date.now() - claim.created_at.getTime() >= ABANDONED_CLAIM_MS
      if (!stop && !abandoned) return claim.charge_id
      await repo.releaseClaim(kind, id, claim.charge_id)
    }
    return (await repo.findClaim(kind, id))?.charge_id ?? ''
  }

  async function withLive(stations: readonly StationRecord[]): Promise<StationView[]> {
    const [claims, spaces] = await Promise.all([
      repo.findClaims(
        'station',
        stations.map((s) => s._id),
      ),
      Promise.all(stations.map((s) => deps.liveSpace(s.space_id))),
    ])
    return stations.map((station, i) =>
      toStationView(station, { charging: claims.has(station._id), space: spaces[i] ?? null }),
    )
  }

  const canSee = (caller: Caller, ownerId: string | null) =>
    caller.role !== 'customer' || (ownerId !== null && ownerId === caller.userId)

  async function visibleCharge(caller: Caller, id: string): Promise<ChargeRecord> {
    const charge = await repo.findCharge(id)
    if (!charge || !canSee(caller, charge.user_id)) throw noCharge(id)
    return charge
  }

  /**
   * Ends a charge at `at`, once: the stop fact's insert decides, and every later stop answers it.
   * Then the charge's cache is written and its claims go (both idempotent, so a stop that did not
   * finish is finished by the next one, or by the sweep).
   */
  async function stopCharge(
    charge: ChargeRecord,
    at: Date,
    reason: StopReason,
    by: string,
  ): Promise<{ charge: ChargeRecord; stop: ChargeStopRecord }> {
    let stop = await repo.findStop(charge._id)
    if (!stop) {
      const end = at < charge.started_at ? charge.started_at : at
      const meter = charge.meter_start_wh === null ? null : await meterReading(charge.meter_device_id)
      const energy = energyAtStop(charge, end, meter)
      const fresh: ChargeStopRecord = {
        _id: charge._id,
        stopped_at: end,
        energy_wh: energy.wh,
        energy_source: energy.source,
        meter_end_wh: energy.meter_end_wh,
        cost: costOf(energy.wh, charge.price_per_kwh),
        reason,
        created_by: by,
      }
      stop = (await repo.insertStop(fresh)) ? fresh : ((await repo.findStop(charge._id)) ?? fresh)
    }
    const fields = {
      status: 'completed' as const,
      stopped_at: stop.stopped_at,
      energy_wh: stop.energy_wh,
      energy_source: stop.energy_source,
      meter_end_wh: stop.meter_end_wh,
      cost: stop.cost,
      stop_reason: stop.reason,
    }
    if (charge.status !== 'completed') await repo.updateCharge(charge._id, fields)
    await repo.releaseClaim('station', charge.station_id, charge._id)
    await repo.releaseClaim('session', charge.parking_session_id, charge._id)
    return { charge: { ...charge, ...fields }, stop }
  }

  async function stopAnswer(charge: ChargeRecord, stop: ChargeStopRecord) {
    const view = toChargeView(charge, stop, stop.stopped_at, null)
    return {
      session: view,
      energy_used: view.energy_kwh,
      energy_source: view.energy_source,
      cost: view.cost,
      currency: view.currency,
      duration_minutes: view.duration_minutes,
    }
  }

  /** Views of charges as of now: stop facts read by `_id`, meters of running ones in one round trip. */
  async function chargeViews(charges: readonly ChargeRecord[]): Promise<ChargeView[]> {
    const running = charges.filter((c) => c.status !== 'completed')
    const [stops, meters] = await Promise.all([
      repo.findStops(running.map((c) => c._id)),
      meterReadings(
        running.flatMap((c) => (c.meter_start_wh !== null && c.meter_device_id ? [c.meter_device_id] : [])),
      ),
    ])
    const now = new Date()
    return charges.map((charge) => {
      const stop = charge.status === 'completed' ? stopOfCache(charge) : stops.get(charge._id)
      return toChargeView(
        charge,
        stop,
        now,
        charge.meter_device_id ? (meters.get(charge.meter_device_id) ?? null) : null,
      )
    })
  }

  const chargesSource: ChargesSource = {
    async chargesFor(session: SessionFacts, until: Date): Promise<ExtraCharge[]> {
      const charges = await repo.chargesOfSession(session.id)
      if (charges.length === 0) return []
      const [stops, meters] = await Promise.all([
        repo.findStops(charges.map((c) => c._id)),
        meterReadings(
          charges.flatMap((c) =>
            c.status !== 'completed' && c.meter_start_wh !== null && c.meter_device_id
              ? [c.meter_device_id]
              : [],
          ),
        ),
      ])
      return sessionCharges(charges, stops, meters, until, session.space_id)
    },
  }

  const sessionListener: SessionListener = {
    /** The vehicle left: its running charge stops at the exit time and the station is free. */
    async sessionClosed(session: SessionFacts): Promise<void> {
      const claim = await repo.findClaim('session', session.id)
      if (!claim) return
      const charge = await repo.findCharge(claim.charge_id)
      if (!charge) return
      await stopCharge(charge, session.exit_at ?? new Date(), 'exit', 'system')
    },
  }

  return {
    chargesSource,
    sessionListener,

    async createStation(input: StationInput): Promise<StationView> {
      const placement = await placementOf(input.space_id)
      const meter = await requireMeter(input.meter_device_id, placement.space_id)
      const id = uuidv7()
      const now = new Date()
      const station: StationRecord = {
        _id: id,
        ...placement,
        ...stationFields(input),
        meter_device_id: meter,
        created_at: now,
        updated_at: now,
      }
      await claimSpace(placement.space_id, id)
      try {
        await repo.insertStation(station)
      } catch (error) {
        await repo.releaseSpace(placement.space_id, id).catch(() => {})
        throw error
      }
      return (await withLive([station]))[0] as StationView
    },

    /**
     * Full replacement. A move to another space claims the new space before the old one goes,
     * and is refused while a charge runs (409 station_busy).
     */
    async replaceStation(id: string, input: StationInput): Promise<StationView> {
      const current = await requireStation(id)
      const placement = await placementOf(input.space_id)
      const meter = await requireMeter(input.meter_device_id, placement.space_id)
      const moves = placement.space_id !== current.space_id
      if (moves) {
        const running = await repo.findClaim('station', id)
        if (running && !(await repo.findStop(running.charge_id))) {
          throw new AppError(
            'CONFLICT',
            'A charge is running at this station: stop it before moving the station',
            {
              extensions: { reason: 'station_busy', charging_session_id: running.charge_id },
            },
          )
        }
        await claimSpace(placement.space_id, id)
      }
      let updated: StationRecord | undefined
      try {
        updated = await repo.updateStation(id, {
          ...placement,
          ...stationFields(input),
          meter_device_id: meter,
        })
      } catch (error) {
        if (moves) await repo.releaseSpace(placement.space_id, id).catch(() => {})
        throw error
      }
      if (moves) await repo.releaseSpace(current.space_id, id)
      if (!updated) throw noStation(id)
      return (await withLive([updated]))[0] as StationView
    },

    async getStation(id: string): Promise<StationView> {
      return (await withLive([await requireStation(id)]))[0] as StationView
    },

    /**
     * Stations by `_id`, with their live status. `available_only` filters on the live status, so
     * it scans up to SCAN_ROUNDS batches per page; past that the page ends early with a cursor.
     */
    async listStations(
      query: Page & {
        lot_id?: string | undefined
        charger_type?: string | undefined
        available_only?: boolean | undefined
      },
    ) {
      const filter = {
        lotId: query.lot_id,
        chargerType: query.charger_type ? (query.charger_type.toUpperCase() as ChargerType) : undefined,
      }
      const start = query.cursor === undefined ? undefined : decodeCursor(query.cursor)
      if (!query.available_only) {
        const rows = await repo.listStations({ ...filter, after: start, limit: query.limit + 1 })
        const views = await withLive(rows.slice(0, query.limit))
        const last = views.at(-1)
        return { data: views, next_cursor: rows.length > query.limit && last ? encodeCursor(last.id) : null }
      }
      const found: StationView[] = []
      let after = start
      let lastScanned: string | undefined
      let exhausted = false
      scan: for (let round = 0; round < SCAN_ROUNDS; round++) {
        const rows = await repo.listStations({ ...filter, after, limit: SCAN_BATCH })
        const views = await withLive(rows)
        for (const view of views) {
          lastScanned = view.id
          if (view.status === 'available') found.push(view)
          if (found.length > query.limit) break scan
        }
        if (rows.length < SCAN_BATCH) {
          exhausted = true
          break
        }
        after = lastScanned
      }
      if (found.length > query.limit) {
        const data = found.slice(0, query.limit)
        return { data, next_cursor: encodeCursor((data.at(-1) as StationView).id) }
      }
      return { data: found, next_cursor: !exhausted && lastScanned ? encodeCursor(lastScanned) : null }
    },

    async start(caller: Caller, input: StartInput): Promise<ChargeView> {
      const station = await requireStation(input.station_id)
      const session = await deps.sessions().facts(input.parking_session_id)
      if (!canSee(caller, session.user_id)) throw noParkingSession(input.parking_session_id)
      if (session.status !== 'active') {
        throw new AppError('UNPROCESSABLE', `The parking session ${session.id} has ended`, {
          extensions: { reason: 'session_not_active' },
        })
      }
      if (station.status === 'out_of_service') {
        throw new AppError('CONFLICT', `The station ${station._id} is out of service`, {
          extensions: { reason: 'station_unavailable' },
        })
      }
      // Told before wrong_space: another vehicle's charge there is what the caller needs to know.
      const holder = await repo.findClaim('station', station._id)
      if (holder && !(await repo.findStop(holder.charge_id))) {
        const other = await repo.findCharge(holder.charge_id)
        if (other && other.parking_session_id !== session.id) throw stationBusy(station._id)
      }
      if (session.space_id !== station.space_id) {
        throw new AppError(
          'UNPROCESSABLE',
          `The vehicle is not on the station's space ${station.space_number}: assign it the space first (POST /api/v1/sessions/{id}/assign-space)`,
          {
            extensions: {
              reason: 'wrong_space',
              station_space_id: station.space_id,
              session_space_id: session.space_id,
            },
          },
        )
      }
      if (input.vehicle_id !== undefined && input.vehicle_id !== session.vehicle_id) {
        throw new AppError('UNPROCESSABLE', 'The vehicle is not the parking session’s vehicle', {
          extensions: { reason: 'wrong_vehicle' },
        })
      }
      const chargeId = uuidv7()
      const charging = await claimFor('session', session.id, chargeId)
      if (charging !== null) {
        throw new AppError('CONFLICT', 'This parking session has a charge running already', {
          extensions: { reason: 'already_charging', charging_session_id: charging },
        })
      }
      const busy = await claimFor('station', station._id, chargeId).catch(async (error) => {
        await repo.releaseClaim('session', session.id, chargeId)
        throw error
      })
      if (busy !== null) {
        await repo.releaseClaim('session', session.id, chargeId)
        throw stationBusy(station._id)
      }
      const now = new Date()
      let charge: ChargeRecord
      let meter: MeterReading | null = null
      try {
        meter = await meterReading(station.meter_device_id)
        charge = {
          _id: chargeId,
          station_id: station._id,
          parking_session_id: session.id,
          vehicle_id: session.vehicle_id,
          user_id: session.user_id,
          lot_id: session.lot_id,
          space_id: station.space_id,
          currency: session.currency,
          charger_type: station.charger_type,
          price_per_kwh: station.price_per_kwh,
          idle_fee_per_minute: station.idle_fee_per_minute,
          idle_grace_minutes: station.idle_grace_minutes,
          // The station's power: a requested maximum is not enforced at the charger, so it is kept
          // as information only (a 0.1 kW request must not price the estimate).
          power_kw: station.power_kw,
          max_power_requested: input.max_power_requested ?? null,
          meter_device_id: station.meter_device_id,
          meter_start_wh: meter?.wh ?? null,
          started_at: now,
          status: 'charging',
          stopped_at: null,
          energy_wh: null,
          energy_source: meter ? 'meter' : 'estimated',
          meter_end_wh: null,
          cost: null,
          stop_reason: null,
          created_by: caller.userId,
          created_at: now,
          updated_at: now,
        }
        // The index first: an entry whose charge was never written is skipped by the fee.
        await repo.indexCharge(session.id, chargeId)
        await repo.insertCharge(charge)
      } catch (error) {
        await repo.releaseClaim('station', station._id, chargeId).catch(() => {})
        await repo.releaseClaim('session', session.id, chargeId).catch(() => {})
        throw error
      }
      // An exit that closed the session meanwhile found no charge to stop: stop it at the exit.
      const after = await deps.sessions().facts(session.id)
      if (after.status !== 'active') {
        const ended = await stopCharge(charge, after.exit_at ?? now, 'exit', caller.userId)
        return toChargeView(ended.charge, ended.stop, ended.stop.stopped_at, null)
      }
      return toChargeView(charge, undefined, now, meter)
    },

    async stop(caller: Caller, id: string) {
      const charge = await visibleCharge(caller, id)
      const { charge: ended, stop } = await stopCharge(charge, new Date(), 'stopped', caller.userId)
      return await stopAnswer(ended, stop)
    },

    async getCharge(caller: Caller, id: string): Promise<ChargeView> {
      return (await chargeViews([await visibleCharge(caller, id)]))[0] as ChargeView
    },

    /** Customers see their own charges; staff every one, filtered. */
    async listCharges(
      caller: Caller,
      query: Page & { station_id?: string | undefined; status?: ChargeRecord['status'] | undefined },
    ) {
      const rows = await repo.listCharges({
        userId: caller.role === 'customer' ? caller.userId : undefined,
        stationId: query.station_id,
        status: query.status,
        after: query.cursor === undefined ? undefined : decodeCursor(query.cursor),
        limit: query.limit + 1,
      })
      const page = pageOf(rows, query.limit, (row) => row)
      return { data: await chargeViews(page.data), next_cursor: page.next_cursor }
    },

    /**
     * The sweep (an agenda job): finishes stops that did not finish (a stop fact whose charge still
     * says charging or holds its claims), and stops charges whose parking session closed without
     * the exit stopping them. Idempotent: running it twice is running it once.
     */
    async sweep(): Promise<{ finished: number; stopped: number }> {
      let finished = 0
      let stopped = 0
      let after: string | undefined
      for (;;) {
        const rows = await repo.listCharges({ status: 'charging', after, limit: 100 })
        for (const charge of rows) {
          try {
            if (await repo.findStop(charge._id)) {
              await stopCharge(charge, new Date(), 'exit', 'system')
              finished++
              continue
            }
            const session = await deps.sessions().facts(charge.parking_session_id)
            if (session.status !== 'active') {
              await stopCharge(charge, session.exit_at ?? new Date(), 'exit', 'system')
              stopped++
            }
          } catch (error) {
            logger.warn({ err: error, charge: charge._id }, 'ev sweep: charge not settled')
          }
        }
        if (rows.length < 100) return { finished, stopped }
        after = rows.at(-1)?._id
      }
    },
  }
}

export type EvService = ReturnType<typeof createEvService>

/** A completed charge's cached end, as its stop fact. */
function stopOfCache(charge: ChargeRecord): ChargeStopRecord {
  return {
    _id: charge._id,
    stopped_at: charge.stopped_at ?? charge.started_at,
    energy_wh: charge.energy_wh ?? 0,
    energy_source: charge.energy_source,
    meter_end_wh: charge.meter_end_wh,
    cost: charge.cost ?? 0,
    reason: charge.stop_reason ?? 'stopped',
    created_by: '',
  }
}

function stationFields(input: StationInput) {
  return {
    charger_type: input.charger_type.toUpperCase() as ChargerType,
    connector_type: input.connector_type.toUpperCase(),
    power_kw: input.power_kw,
    price_per_kwh: input.price_per_kwh,
    idle_fee_per_minute: input.idle_fee_per_minute ?? 0,
    idle_grace_minutes: input.idle_grace_minutes ?? 10,
    status: input.status ?? ('available' as const),
  }
}
