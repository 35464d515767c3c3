import type { QueryFilter } from 'mongoose'
import { createIdempotencyStore } from '../../shared/idempotency.ts'
import { type Database, insertManyOnce, insertOnce, trusted } from '../../shared/mongo.ts'
import type { Overlay } from '../occupancy/occupancy.contract.ts'
import {
  facilityModels,
  type LevelRecord,
  type LotRecord,
  type SpaceNumberClaimRecord,
  type SpaceRecord,
  type ZoneRecord,
} from './facilities.model.ts'

export type FacilitiesRepository = ReturnType<typeof createFacilitiesRepository>

type Paged = { after?: string | undefined; limit: number }

/** Fields a replacement rewrites: everything but the identity and the creation time. */
type Editable<T> = Omit<T, '_id' | 'created_at' | 'updated_at'>

const afterId = <T>(query: QueryFilter<T>, after: string | undefined): QueryFilter<T> => {
  if (after !== undefined) (query as { _id?: unknown })._id = trusted({ $gt: after })
  return query
}

/** Strings that start with `prefix`, as a range (FerretDB has no collation; a regex scans). */
const startsWith = (prefix: string) => trusted({ $gte: prefix, $lt: `${prefix}\uffff` })

export function createFacilitiesRepository(db: Database) {
  const { lots, levels, zones, spaces, spaceNumberClaims } = facilityModels(db)

  return {
    // Lots

    insertLot: (lot: LotRecord) => insertOnce(lots, lot),

    async findLot(id: string): Promise<LotRecord | undefined> {
      return (await lots.findById(id).lean<LotRecord>()) ?? undefined
    },

    async replaceLot(id: string, fields: Editable<LotRecord>): Promise<LotRecord | undefined> {
      await lots.updateOne({ _id: id }, { $set: { ...fields, updated_at: new Date() } })
      return (await lots.findById(id).lean<LotRecord>()) ?? undefined
    },

    async deleteLot(id: string): Promise<void> {
      await lots.deleteOne({ _id: id })
    },

    async listLots(filter: Paged & { namePrefix?: string | undefined }): Promise<LotRecord[]> {
      const query: QueryFilter<LotRecord> = {}
      if (filter.namePrefix) query.name_key = startsWith(filter.namePrefix)
      return await lots
        .find(afterId(query, filter.after))
        .sort({ _id: 1 })
        .limit(filter.limit)
        .lean<LotRecord[]>()
    },

    // Levels

    insertLevel: (level: LevelRecord) => insertOnce(levels, level),

    async findLevel(id: string): Promise<LevelRecord | undefined> {
      return (await levels.findById(id).lean<LevelRecord>()) ?? undefined
    },

    async updateLevel(id: string, fields: { name: string; floor: number }): Promise<LevelRecord | undefined> {
      await levels.updateOne({ _id: id }, { $set: { ...fields, updated_at: new Date() } })
      return (await levels.findById(id).lean<LevelRecord>()) ?? undefined
    },

    async deleteLevel(id: string): Promise<void> {
      await levels.deleteOne({ _id: id })
    },

    async lotHasLevels(lotId: string): Promise<boolean> {
      return (await levels.findOne({ lot_id: lotId }, { _id: 1 }).lean()) !== null
    },

    /** In floor order, then by `_id`; `after` is the last row of the previous page. */
    async listLevels(filter: {
      lotId?: string | undefined
      after?: { floor: number; id: string } | undefined
      limit: number
    }): Promise<LevelRecord[]> {
      const query: QueryFilter<LevelRecord> = {}
      if (filter.lotId) query.lot_id = filter.lotId
      if (filter.after) {
        const { floor, id } = filter.after
        query.$or = [{ floor: trusted({ $gt: floor }) }, { floor, _id: trusted({ $gt: id }) }]
      }
      return await levels.find(query).sort({ floor: 1, _id: 1 }).limit(filter.limit).lean<LevelRecord[]>()
    },

    // Zones

    insertZone: (zone: ZoneRecord) => insertOnce(zones, zone),

    async findZone(id: string): Promise<ZoneRecord | undefined> {
      return (await zones.findById(id).lean<ZoneRecord>()) ?? undefined
    },

    async updateZone(
      id: string,
      fields: { name: string; description: string | null },
    ): Promise<ZoneRecord | undefined> {
      await zones.updateOne({ _id: id }, { $set: { ...fields, updated_at: new Date() } })
      return (await zones.findById(id).lean<ZoneRecord>()) ?? undefined
    },

    async deleteZone(id: string): Promise<void> {
      await zones.deleteOne({ _id: id })
    },

    async levelHasZones(levelId: string): Promise<boolean> {
      return (await zones.findOne({ level_id: levelId }, { _id: 1 }).lean()) !== null
    },

    async listZones(filter: Paged & { levelId?: string | undefined; lotId?: string | undefined }) {
      const query: QueryFilter<ZoneRecord> = {}
      if (filter.levelId) query.level_id = filter.levelId
      if (filter.lotId) query.lot_id = filter.lotId
      return await zones
        .find(afterId(query, filter.after))
        .sort({ _id: 1 })
        .limit(filter.limit)
        .lean<ZoneRecord[]>()
    },

    // Spaces

    insertSpace: (space: SpaceRecord) => insertOnce(spaces, space),

    /** Answers the indexes that existed already. */
    insertSpaces: (docs: SpaceRecord[]) => insertManyOnce(spaces, docs),

    async findSpace(id: string): Promise<SpaceRecord | undefined> {
      return (await spaces.findById(id).lean<SpaceRecord>()) ?? undefined
    },

    async findSpaces(ids: readonly string[]): Promise<SpaceRecord[]> {
      if (ids.length === 0) return []
      return await spaces.find({ _id: trusted({ $in: [...ids] }) }).lean<SpaceRecord[]>()
    },

    async replaceSpace(
      id: string,
      fields: Omit<Editable<SpaceRecord>, 'overlay' | 'overlay_reason' | 'overlay_set_at'>,
    ): Promise<SpaceRecord | undefined> {
      await spaces.updateOne({ _id: id }, { $set: { ...fields, updated_at: new Date() } })
      return (await spaces.findById(id).lean<SpaceRecord>()) ?? undefined
    },

    async setOverlay(
      id: string,
      overlay: Overlay | null,
      reason: string | null,
    ): Promise<SpaceRecord | undefined> {
      const now = new Date()
      await spaces.updateOne(
        { _id: id },
        { $set: { overlay, overlay_reason: reason, overlay_set_at: overlay ? now : null, updated_at: now } },
      )
      return (await spaces.findById(id).lean<SpaceRecord>()) ?? undefined
    },

    async deleteSpace(id: string): Promise<void> {
      await spaces.deleteOne({ _id: id })
    },

    async deleteSpaces(ids: readonly string[]): Promise<void> {
      if (ids.length > 0) await spaces.deleteMany({ _id: trusted({ $in: [...ids] }) })
    },

    async zoneHasSpaces(zoneId: string): Promise<boolean> {
      return (await spaces.findOne({ zone_id: zoneId }, { _id: 1 }).lean()) !== null
    },

    async listSpaces(
      filter: Paged & {
        lotId?: string | undefined
        levelId?: string | undefined
        zoneId?: string | undefined
        type?: string | undefined
        /** `none`: spaces without an overlay. */
        overlay?: Overlay | 'none' | undefined
        numberPrefix?: string | undefined
      },
    ): Promise<SpaceRecord[]> {
      const query: QueryFilter<SpaceRecord> = {}
      if (filter.lotId) query.lot_id = filter.lotId
      if (filter.levelId) query.level_id = filter.levelId
      if (filter.zoneId) query.zone_id = filter.zoneId
      if (filter.type) query.type = filter.type as SpaceRecord['type']
      if (filter.overlay) query.overlay = filter.overlay === 'none' ? null : filter.overlay
      if (filter.numberPrefix) query.number = startsWith(filter.numberPrefix)
      return await spaces
        .find(afterId(query, filter.after))
        .sort({ _id: 1 })
        .limit(filter.limit)
        .lean<SpaceRecord[]>()
    },

    /** A page of every space by `_id`, only what the hot state needs. */
    async spacesAfter(after: string | undefined, limit: number): Promise<SpaceRecord[]> {
      return await spaces
        .find(afterId({}, after), { lot_id: 1, level_id: 1, zone_id: 1, number: 1, type: 1, overlay: 1 })
        .sort({ _id: 1 })
        .limit(limit)
        .lean<SpaceRecord[]>()
    },

    // Number claims

    claimNumber: (key: string, spaceId: string) =>
      insertOnce(spaceNumberClaims, { _id: key, space_id: spaceId, created_at: new Date() }),

    /**
     * Of those who found one stale claim, the one whose insert of a takeover mark succeeds may
     * remove it (a conditional delete is no arbiter on FerretDB: two could each delete, one of them
     * the other's fresh claim). The mark names the claim by its key and creation time.
     */
    winTakeover: (claim: SpaceNumberClaimRecord, spaceId: string) =>
      insertOnce(spaceNumberClaims, {
        _id: `takeover:${claim._id}:${claim.created_at.getTime()}`,
        space_id: spaceId,
        created_at: new Date(),
      }),

    /** Answers the keys another space holds already. */
    async claimNumbers(claims: { key: string; spaceId: string }[]): Promise<Set<string>> {
      const now = new Date()
      const refused = await insertManyOnce(
        spaceNumberClaims,
        claims.map((claim) => ({ _id: claim.key, space_id: claim.spaceId, created_at: now })),
      )
      return new Set([...refused].map((index) => claims[index]?.key ?? ''))
    },

    async findClaims(keys: readonly string[]): Promise<SpaceNumberClaimRecord[]> {
      if (keys.length === 0) return []
      return await spaceNumberClaims
        .find({ _id: trusted({ $in: [...keys] }) })
        .lean<SpaceNumberClaimRecord[]>()
    },

    /** Only the holder's claim goes: a claim taken over by another space stays. */
    async releaseNumber(key: string, spaceId: string): Promise<void> {
      await spaceNumberClaims.deleteOne({ _id: key, space_id: spaceId })
    },

    async releaseNumbers(claims: readonly { key: string; spaceId: string }[]): Promise<void> {
      if (claims.length === 0) return
      await spaceNumberClaims.deleteMany({
        $or: claims.map((claim) => ({ _id: claim.key, space_id: claim.spaceId })),
      })
    },

    /** Creates sent with an Idempotency-Key (the platform's shared record of keys). */
    idempotency: createIdempotencyStore(db),
  }
}
