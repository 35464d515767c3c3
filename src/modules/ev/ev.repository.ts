import type { QueryFilter } from 'mongoose'
import { type Database, insertOnce, readNumbered, trusted } from '../../shared/mongo.ts'
import {
  type ChargeClaimRecord,
  type ChargeRecord,
  type ChargerType,
  type ChargeStopRecord,
  evModels,
  type SessionChargeRecord,
  type StationRecord,
  type StationSpaceClaimRecord,
} from './ev.model.ts'

export type EvRepository = ReturnType<typeof createEvRepository>

export function createEvRepository(db: Database) {
  const { stations, stationSpaces, stationClaims, sessionClaims, charges, chargeStops, sessionCharges } =
    evModels(db)
  const claimModel = (kind: 'station' | 'session') => (kind === 'station' ? stationClaims : sessionClaims)
  const sessionChargeEntries = (parkingSessionId: string) =>
    readNumbered((id) => sessionCharges.findById(id).lean<SessionChargeRecord>(), parkingSessionId)

  return {
    insertStation: (station: StationRecord) => insertOnce(stations, station),

    async findStation(id: string): Promise<StationRecord | undefined> {
      return (await stations.findById(id).lean<StationRecord>()) ?? undefined
    },

    /** Written by admins only: last writer wins; the space's uniqueness is its claim's business. */
    async updateStation(
      id: string,
      fields: Omit<StationRecord, '_id' | 'created_at' | 'updated_at'>,
    ): Promise<StationRecord | undefined> {
      await stations.updateOne({ _id: id }, { $set: { ...fields, updated_at: new Date() } })
      return await this.findStation(id)
    },

    async deleteStation(id: string): Promise<void> {
      await stations.deleteOne({ _id: id })
    },

    async listStations(filter: {
      lotId?: string | undefined
      chargerType?: ChargerType | undefined
      after?: string | undefined
      limit: number
    }): Promise<StationRecord[]> {
      const query: QueryFilter<StationRecord> = {}
      if (filter.lotId) query.lot_id = filter.lotId
      if (filter.chargerType) query.charger_type = filter.chargerType
      if (filter.after) query._id = trusted({ $gt: filter.after })
      return await stations.find(query).sort({ _id: 1 }).limit(filter.limit).lean<StationRecord[]>()
    },

    claimSpace: (spaceId: string, stationId: string) =>
      insertOnce(stationSpaces, { _id: spaceId, station_id: stationId, created_at: new Date() }),

    async findSpaceClaim(spaceId: string): Promise<StationSpaceClaimRecord | undefined> {
      return (await stationSpaces.findById(spaceId).lean<StationSpaceClaimRecord>()) ?? undefined
    },

    /** Only the holder's claim goes. */
    async releaseSpace(spaceId: string, stationId: string): Promise<void> {
      await stationSpaces.deleteOne({ _id: spaceId, station_id: stationId })
    },

    /** A running charge's hold of a station or of a parking session; false when taken. */
    claim: (kind: 'station' | 'session', id: string, chargeId: string) =>
      insertOnce(claimModel(kind), { _id: id, charge_id: chargeId, created_at: new Date() }),

    async findClaim(kind: 'station' | 'session', id: string): Promise<ChargeClaimRecord | undefined> {
      return (await claimModel(kind).findById(id).lean<ChargeClaimRecord>()) ?? undefined
    },

    async findClaims(kind: 'station' | 'session', ids: readonly string[]): Promise<Map<string, string>> {
      const found = await Promise.all(
        ids.map((id) => claimModel(kind).findById(id).lean<ChargeClaimRecord>()),
      )
      return new Map(found.flatMap((claim) => (claim ? [[claim._id, claim.charge_id] as const] : [])))
    },

    /** Only the claim of that charge goes: a station claimed by a later charge stays claimed. */
    async releaseClaim(kind: 'station' | 'session', id: string, chargeId: string): Promise<void> {
      await claimModel(kind).deleteOne({ _id: id, charge_id: chargeId })
    },

    insertCharge: (charge: ChargeRecord) => insertOnce(charges, charge),

    async findCharge(id: string): Promise<ChargeRecord | undefined> {
      return (await charges.findById(id).lean<ChargeRecord>()) ?? undefined
    },

    async updateCharge(id: string, fields: Partial<Omit<ChargeRecord, '_id'>>): Promise<void> {
      await charges.updateOne({ _id: id }, { $set: { ...fields, updated_at: new Date() } })
    },

    async listCharges(filter: {
      userId?: string | undefined
      stationId?: string | undefined
      status?: ChargeRecord['status'] | undefined
      after?: string | undefined
      limit: number
    }): Promise<ChargeRecord[]> {
      const query: QueryFilter<ChargeRecord> = {}
      if (filter.userId) query.user_id = filter.userId
      if (filter.stationId) query.station_id = filter.stationId
      if (filter.status) query.status = filter.status
      if (filter.after) query._id = trusted({ $gt: filter.after })
      return await charges.find(query).sort({ _id: 1 }).limit(filter.limit).lean<ChargeRecord[]>()
    },

    insertStop: (stop: ChargeStopRecord) => insertOnce(chargeStops, stop),

    async findStop(chargeId: string): Promise<ChargeStopRecord | undefined> {
      return (await chargeStops.findById(chargeId).lean<ChargeStopRecord>()) ?? undefined
    },

    /** Adds a charge to its parking session's index, once: a number is taken by an insert. */
    async indexCharge(parkingSessionId: string, chargeId: string): Promise<void> {
      const entries = await sessionChargeEntries(parkingSessionId)
      if (entries.some((e) => e.fact.charge_id === chargeId)) return
      for (let n = Math.max(-1, ...entries.map((e) => e.index)) + 1; ; n++) {
        const entry = { _id: `${parkingSessionId}:${n}`, charge_id: chargeId, created_at: new Date() }
        if (await insertOnce(sessionCharges, entry)) return
      }
    },

    /** A parking session's charges, oldest first, through its index: by `_id` only. */
    async chargesOfSession(parkingSessionId: string): Promise<ChargeRecord[]> {
      const ids = [...new Set((await sessionChargeEntries(parkingSessionId)).map((e) => e.fact.charge_id))]
      const found = await Promise.all(ids.map((id) => charges.findById(id).lean<ChargeRecord>()))
      return found
        .filter((c): c is ChargeRecord => c !== null)
        .sort((a, b) => a.started_at.getTime() - b.started_at.getTime())
    },

    async findStops(chargeIds: readonly string[]): Promise<Map<string, ChargeStopRecord>> {
      const found = await Promise.all(
        chargeIds.map((id) => chargeStops.findById(id).lean<ChargeStopRecord>()),
      )
      return new Map(found.flatMap((stop) => (stop ? [[stop._id, stop] as const] : [])))
    },
  }
}
