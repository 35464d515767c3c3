import { AppError } from '../../shared/errors.ts'
import { keyedCreate as keyedRequest } from '../../shared/idempotency.ts'
import { decodeCursor, encodeCursor, pageOf, uuidv7 } from '../../shared/ids.ts'
import type { OccupancyIndex, Overlay, SpacePlacement, SpaceType } from '../occupancy/occupancy.contract.ts'
import {
  type LevelRecord,
  type LotRecord,
  type OpeningInterval,
  type SpaceNumberClaimRecord,
  type SpaceRecord,
  type Weekday,
  weekdays,
  type ZoneRecord,
} from './facilities.model.ts'
import type { FacilitiesRepository } from './facilities.repository.ts'

type Timestamps = { created_at: string; updated_at: string }
export type LotView = Omit<LotRecord, '_id' | 'name_key' | 'created_at' | 'updated_at'> & {
  id: string
} & Timestamps
export type LevelView = Omit<LevelRecord, '_id' | 'created_at' | 'updated_at'> & { id: string } & Timestamps
export type ZoneView = Omit<ZoneRecord, '_id' | 'created_at' | 'updated_at'> & { id: string } & Timestamps
export type SpaceView = Omit<SpaceRecord, '_id' | 'overlay_set_at' | 'created_at' | 'updated_at'> & {
  id: string
} & Timestamps

export type LotInput = {
  name: string
  address: string
  latitude: number
  longitude: number
  time_zone: string
  currency: string
  opening_hours: { day: number | Weekday; opens: string; closes: string }[] | null
}
export type LevelInput = { lot_id: string; name: string; floor: number }
export type ZoneInput = { level_id: string; name: string; description?: string | undefined }
export type SpaceInput = { zone_id: string; number: string; type: SpaceType; flags: string[] }
export type SpaceBulkInput = {
  zone_id: string
  prefix: string
  from: number
  to: number
  pad: number
  type: SpaceType
  flags: string[]
}

/** Who creates, and the Idempotency-Key that makes a retry of the create safe. */
export type Creator = { callerId: string; idempotencyKey?: string | undefined }

type Page = { limit: number; cursor?: string | undefined }

export type FacilitiesService = ReturnType<typeof createFacilitiesService>

export const MAX_BULK_SPACES = 2_000
const PLACEMENT_PAGE = 1_000

/**
 * A number claim whose space is gone, or has another lot or number, this long after it was made
 * was left by a write that did not finish; it may go.
 */
const STALE_CLAIM_MS = 60_000

const iso = (date: Date) => date.toISOString()

export function toLotView(lot: LotRecord): LotView {
  return {
    id: lot._id,
    name: lot.name,
    address: lot.address,
    latitude: lot.latitude,
    longitude: lot.longitude,
    time_zone: lot.time_zone,
    currency: lot.currency,
    opening_hours: lot.opening_hours?.map(({ day, opens, closes }) => ({ day, opens, closes })) ?? null,
    created_at: iso(lot.created_at),
    updated_at: iso(lot.updated_at),
  }
}

export function toLevelView(level: LevelRecord): LevelView {
  return {
    id: level._id,
    lot_id: level.lot_id,
    name: level.name,
    floor: level.floor,
    created_at: iso(level.created_at),
    updated_at: iso(level.updated_at),
  }
}

export function toZoneView(zone: ZoneRecord): ZoneView {
  return {
    id: zone._id,
    lot_id: zone.lot_id,
    level_id: zone.level_id,
    name: zone.name,
    description: zone.description,
    created_at: iso(zone.created_at),
    updated_at: iso(zone.updated_at),
  }
}

export function toSpaceView(space: SpaceRecord): SpaceView {
  return {
    id: space._id,
    lot_id: space.lot_id,
    level_id: space.level_id,
    zone_id: space.zone_id,
    number: space.number,
    type: space.type,
    flags: space.flags,
    overlay: space.overlay,
    overlay_reason: space.overlay_reason,
    created_at: iso(space.created_at),
    updated_at: iso(space.updated_at),
  }
}

/** The part of a space the hot state keeps. */
export function placementOf(
  space: Pick<SpaceRecord, '_id' | 'lot_id' | 'level_id' | 'zone_id' | 'number' | 'type' | 'overlay'>,
): SpacePlacement {
  return {
    spaceId: space._id,
    lotId: space.lot_id,
    levelId: space.level_id,
    zoneId: space.zone_id,
    number: space.number,
    type: space.type,
    overlay: space.overlay ?? null,
  }
}

const text = (value: string | undefined): string | null => value?.trim() || null

const fieldProblem = (field: string, reason: string, detail: string) =>
  new AppError('VALIDATION_FAILED', detail, {
    errors: [{ in: 'body', field, pointer: `/${field}`, reason }],
  })

/** The canonical IANA name (`europe/paris` is `Europe/Paris`), or a field problem. */
function canonicalTimeZone(name: string): string {
  try {
    return new Intl.DateTimeFormat('en-US', { timeZone: name }).resolvedOptions().timeZone
  } catch {
    throw fieldProblem(
      'time_zone',
      'not a known IANA time zone, such as Europe/Paris or America/New_York',
      `Unknown time zone ${name}`,
    )
  }
}

function lotFields(input: LotInput): Omit<LotRecord, '_id' | 'created_at' | 'updated_at'> {
  const name = input.name.trim()
  return {
    name,
    name_key: name.toLowerCase(),
    address: input.address.trim(),
    latitude: input.latitude,
    longitude: input.longitude,
    time_zone: canonicalTimeZone(input.time_zone),
    currency: input.currency,
    opening_hours:
      input.opening_hours?.map(
        (interval): OpeningInterval => ({
          day: typeof interval.day === 'number' ? (weekdays[interval.day] ?? 'sun') : interval.day,
          opens: interval.opens,
          closes: interval.closes,
        }),
      ) ?? null,
  }
}

const flagSet = (flags: readonly string[]) => [...new Set(flags)].sort()
const numberKey = (lotId: string, number: string) => `${lotId}:${number}`
/** Levels page in floor order: their cursor is the last row's floor and id. */
function levelCursor(cursor: string | undefined): { floor: number; id: string } | undefined {
  if (cursor === undefined) return undefined
  const match = /^(-?\d{1,4}):(.+)$/.exec(decodeCursor(cursor))
  // Not one of ours: the first page, as any other cursor that is not a real position.
  return match ? { floor: Number(match[1]), id: match[2] ?? '' } : undefined
}

const noLot = (id: string) => new AppError('NOT_FOUND', `No lot ${id}`)
const noLevel = (id: string) => new AppError('NOT_FOUND', `No level ${id}`)
const noZone = (id: string) => new AppError('NOT_FOUND', `No zone ${id}`)
const noSpace = (id: string) => new AppError('NOT_FOUND', `No space ${id}`)

/**
 * Lots, levels, zones and spaces. MongoDB holds them; the hot state (the occupancy index) is told
 * after every space write, MongoDB first. If that second step fails the error propagates (503) and
 * the same request, sent again, completes it: every write here is safe to repeat.
 *
 * Without transactions, a child created while its parent is deleted is caught from both sides:
 * the create checks the parent again after inserting the child, and the delete checks for children
 * again after deleting the parent (and puts the parent back if one appeared).
 */
export function createFacilitiesService(deps: {
  repo: FacilitiesRepository
  occupancy: OccupancyIndex
  /** Called after a space is gone (the sensors capability frees its sensor's binding). */
  onSpaceDeleted?: (spaceId: string) => Promise<void>
}) {
  const { repo, occupancy } = deps

  async function requireLot(id: string): Promise<LotRecord> {
    const lot = await repo.findLot(id)
    if (!lot) throw noLot(id)
    return lot
  }

  async function requireLevel(id: string): Promise<LevelRecord> {
    const level = await repo.findLevel(id)
    if (!level) throw noLevel(id)
    return level
  }

  async function requireZone(id: string): Promise<ZoneRecord> {
    const zone = await repo.findZone(id)
    if (!zone) throw noZone(id)
    return zone
  }

  /** A create made safe to retry by an Idempotency-Key (src/shared/idempotency.ts). */
  async function keyedCreate<V>(
    kind: string,
    creator: Creator,
    input: unknown,
    create: (id: string) => Promise<V>,
    replay: (id: string) => Promise<V | undefined>,
  ): Promise<V> {
    const request = { kind, callerId: creator.callerId, key: creator.idempotencyKey }
    return await keyedRequest(repo.idempotency, request, input, create, replay)
  }

  async function isStaleClaim(claim: SpaceNumberClaimRecord, holder: SpaceRecord | undefined) {
    if (Date.now() - claim.created_at.getTime() <= STALE_CLAIM_MS) return false
    return !holder || numberKey(holder.lot_id, holder.number) !== claim._id
  }

  /**
   * The claim's insert decides: of concurrent creations of one number in a lot exactly one gets
   * through. A claim this space holds already is a retry of the same write. A stale claim is
   * removed by whoever wins its takeover mark, and the insert tried once more, which stays the
   * arbiter.
   */
  async function claimNumber(lotId: string, number: string, spaceId: string): Promise<void> {
    const key = numberKey(lotId, number)
    if (await repo.claimNumber(key, spaceId)) return
    const [claim] = await repo.findClaims([key])
    if (!claim) {
      if (await repo.claimNumber(key, spaceId)) return
    } else if (claim.space_id === spaceId) {
      return
    } else if (
      (await isStaleClaim(claim, await repo.findSpace(claim.space_id))) &&
      (await repo.winTakeover(claim, spaceId))
    ) {
      await repo.releaseNumber(key, claim.space_id)
      if (await repo.claimNumber(key, spaceId)) return
    }
    throw new AppError('CONFLICT', `A space numbered ${number} exists already in this lot`)
  }

  /**
   * Deletes a lot, level or zone only while it has no children. Without transactions: check,
   * delete, check again, and put it back if a child appeared meanwhile (a child's insert checks
   * its parent afterwards too, so one of the two always notices the other).
   */
  async function deleteChildless(steps: {
    hasChildren: () => Promise<boolean>
    remove: () => Promise<unknown>
    restore: () => Promise<unknown>
    refusal: string
  }): Promise<void> {
    if (await steps.hasChildren()) throw new AppError('CONFLICT', steps.refusal)
    await steps.remove()
    if (await steps.hasChildren()) {
      await steps.restore()
      throw new AppError('CONFLICT', steps.refusal)
    }
  }

  /** Of the keys refused in a bulk claim, the stale ones, freed for another try. */
  async function freeStaleClaims(keys: readonly string[]): Promise<string[]> {
    const claims = (await repo.findClaims(keys)).filter(
      (claim) => Date.now() - claim.created_at.getTime() > STALE_CLAIM_MS,
    )
    if (claims.length === 0) return []
    const holders = new Map((await repo.findSpaces(claims.map((c) => c.space_id))).map((s) => [s._id, s]))
    const stale: SpaceNumberClaimRecord[] = []
    for (const claim of claims)
      if (
        (await isStaleClaim(claim, holders.get(claim.space_id))) &&
        (await repo.winTakeover(claim, claim.space_id))
      )
        stale.push(claim)
    await repo.releaseNumbers(stale.map((claim) => ({ key: claim._id, spaceId: claim.space_id })))
    return stale.map((claim) => claim._id)
  }

  return {
    // Lots

    async listLots(query: Page & { name_prefix?: string | undefined }) {
      const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor)
      const rows = await repo.listLots({
        after,
        limit: query.limit + 1,
        namePrefix: query.name_prefix?.toLowerCase(),
      })
      return pageOf(rows, query.limit, toLotView)
    },

    async createLot(input: LotInput, creator: Creator): Promise<LotView> {
      const fields = lotFields(input)
      return await keyedCreate(
        'lot',
        creator,
        input,
        async (id) => {
          const now = new Date()
          const lot: LotRecord = { _id: id, ...fields, created_at: now, updated_at: now }
          if (await repo.insertLot(lot)) return toLotView(lot)
          return toLotView(await requireLot(id))
        },
        async (id) => {
          const lot = await repo.findLot(id)
          return lot && toLotView(lot)
        },
      )
    },

    async getLot(id: string): Promise<LotView> {
      return toLotView(await requireLot(id))
    },

    async replaceLot(id: string, input: LotInput): Promise<LotView> {
      const fields = lotFields(input)
      const lot = await repo.replaceLot(id, fields)
      if (!lot) throw noLot(id)
      return toLotView(lot)
    },

    async deleteLot(id: string): Promise<void> {
      const lot = await requireLot(id)
      await deleteChildless({
        hasChildren: () => repo.lotHasLevels(id),
        remove: () => repo.deleteLot(id),
        restore: () => repo.insertLot(lot),
        refusal: 'The lot still has levels: delete them first',
      })
    },

    // Levels

    async listLevels(query: Page & { lot_id?: string | undefined }) {
      const rows = await repo.listLevels({
        lotId: query.lot_id,
        after: levelCursor(query.cursor),
        limit: query.limit + 1,
      })
      const data = rows.slice(0, query.limit)
      const last = data.at(-1)
      return {
        data: data.map(toLevelView),
        next_cursor: rows.length > query.limit && last ? encodeCursor(`${last.floor}:${last._id}`) : null,
      }
    },

    async createLevel(input: LevelInput, creator: Creator): Promise<LevelView> {
      return await keyedCreate(
        'level',
        creator,
        input,
        async (id) => {
          await requireLot(input.lot_id)
          const now = new Date()
          const level: LevelRecord = {
            _id: id,
            lot_id: input.lot_id,
            name: input.name.trim(),
            floor: input.floor,
            created_at: now,
            updated_at: now,
          }
          if (!(await repo.insertLevel(level))) return toLevelView(await requireLevel(id))
          if (!(await repo.findLot(input.lot_id))) {
            await repo.deleteLevel(id)
            throw noLot(input.lot_id)
          }
          return toLevelView(level)
        },
        async (id) => {
          const level = await repo.findLevel(id)
          return level && toLevelView(level)
        },
      )
    },

    async getLevel(id: string): Promise<LevelView> {
      return toLevelView(await requireLevel(id))
    },

    async updateLevel(id: string, input: { name: string; floor: number }): Promise<LevelView> {
      const level = await repo.updateLevel(id, { name: input.name.trim(), floor: input.floor })
      if (!level) throw noLevel(id)
      return toLevelView(level)
    },

    async deleteLevel(id: string): Promise<void> {
      const level = await requireLevel(id)
      await deleteChildless({
        hasChildren: () => repo.levelHasZones(id),
        remove: () => repo.deleteLevel(id),
        restore: () => repo.insertLevel(level),
        refusal: 'The level still has zones: delete them first',
      })
    },

    // Zones

    async listZones(query: Page & { level_id?: string | undefined; lot_id?: string | undefined }) {
      const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor)
      const rows = await repo.listZones({
        after,
        limit: query.limit + 1,
        levelId: query.level_id,
        lotId: query.lot_id,
      })
      return pageOf(rows, query.limit, toZoneView)
    },

    async createZone(input: ZoneInput, creator: Creator): Promise<ZoneView> {
      return await keyedCreate(
        'zone',
        creator,
        input,
        async (id) => {
          const level = await requireLevel(input.level_id)
          const now = new Date()
          const zone: ZoneRecord = {
            _id: id,
            lot_id: level.lot_id,
            level_id: level._id,
            name: input.name.trim(),
            description: text(input.description),
            created_at: now,
            updated_at: now,
          }
          if (!(await repo.insertZone(zone))) return toZoneView(await requireZone(id))
          if (!(await repo.findLevel(level._id))) {
            await repo.deleteZone(id)
            throw noLevel(level._id)
          }
          return toZoneView(zone)
        },
        async (id) => {
          const zone = await repo.findZone(id)
          return zone && toZoneView(zone)
        },
      )
    },

    async getZone(id: string): Promise<ZoneView> {
      return toZoneView(await requireZone(id))
    },

    async updateZone(
      id: string,
      input: { name: string; description?: string | undefined },
    ): Promise<ZoneView> {
      const zone = await repo.updateZone(id, {
        name: input.name.trim(),
        description: text(input.description),
      })
      if (!zone) throw noZone(id)
      return toZoneView(zone)
    },

    async deleteZone(id: string): Promise<void> {
      const zone = await requireZone(id)
      await deleteChildless({
        hasChildren: () => repo.zoneHasSpaces(id),
        remove: () => repo.deleteZone(id),
        restore: () => repo.insertZone(zone),
        refusal: 'The zone still has spaces: delete them first',
      })
    },

    // Spaces

    async listSpaces(
      query: Page & {
        lot_id?: string | undefined
        level_id?: string | undefined
        zone_id?: string | undefined
        type?: SpaceType | undefined
        overlay?: Overlay | 'none' | undefined
        number_prefix?: string | undefined
      },
    ) {
      const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor)
      const rows = await repo.listSpaces({
        after,
        limit: query.limit + 1,
        lotId: query.lot_id,
        levelId: query.level_id,
        zoneId: query.zone_id,
        type: query.type,
        overlay: query.overlay,
        numberPrefix: query.number_prefix?.toUpperCase(),
      })
      return pageOf(rows, query.limit, toSpaceView)
    },

    /**
     * Claim the number, write the space, tell the hot state. A retry with the same
     * Idempotency-Key goes on with the same space id: its claim and its record are found as its
     * own, and the hot state is told again.
     */
    async createSpace(input: SpaceInput, creator: Creator): Promise<SpaceView> {
      const number = input.number.toUpperCase()
      return await keyedCreate(
        'space',
        creator,
        input,
        async (id) => {
          const zone = await requireZone(input.zone_id)
          const key = numberKey(zone.lot_id, number)
          await claimNumber(zone.lot_id, number, id)
          const now = new Date()
          const fresh: SpaceRecord = {
            _id: id,
            lot_id: zone.lot_id,
            level_id: zone.level_id,
            zone_id: zone._id,
            number,
            type: input.type,
            flags: flagSet(input.flags),
            overlay: null,
            overlay_reason: null,
            overlay_set_at: null,
            created_at: now,
            updated_at: now,
          }
          let space: SpaceRecord | undefined
          try {
            space = (await repo.insertSpace(fresh)) ? fresh : await repo.findSpace(id)
          } catch (error) {
            await repo.releaseNumber(key, id).catch(() => undefined)
            throw error
          }
          if (!space) throw noSpace(id)
          if (!(await repo.findZone(zone._id))) {
            await repo.deleteSpace(id)
            await repo.releaseNumber(key, id)
            throw noZone(zone._id)
          }
          await occupancy.upsertSpaces([placementOf(space)])
          return toSpaceView(space)
        },
        async (id) => {
          const space = await repo.findSpace(id)
          if (!space) return undefined
          await occupancy.upsertSpaces([placementOf(space)])
          return toSpaceView(space)
        },
      )
    },

    /**
     * Numbers `from`..`to` in one zone. Numbers taken in the lot are skipped, so the same call
     * again creates nothing twice; it also tells the hot state again about the zone's spaces
     * among them, which repairs it after a call whose last step failed.
     */
    async createSpaces(
      input: SpaceBulkInput,
    ): Promise<{ zone_id: string; created: number; skipped: string[] }> {
      if (input.to < input.from) {
        throw fieldProblem('to', 'must be at least `from`', 'The range ends before it starts')
      }
      if (input.to - input.from + 1 > MAX_BULK_SPACES) {
        throw fieldProblem(
          'to',
          `at most ${MAX_BULK_SPACES} numbers per call: \`to\` at most \`from\` + ${MAX_BULK_SPACES - 1}`,
          `At most ${MAX_BULK_SPACES} spaces per call`,
        )
      }
      const zone = await requireZone(input.zone_id)
      const prefix = input.prefix.toUpperCase()
      const numbers: string[] = []
      for (let n = input.from; n <= input.to; n++) numbers.push(prefix + String(n).padStart(input.pad, '0'))
      // Sorted ids in number order: a zone's spaces list in number order.
      const ids = numbers.map(() => uuidv7()).sort()
      const wanted = numbers.map((number, i) => ({
        key: numberKey(zone.lot_id, number),
        spaceId: ids[i] ?? '',
        number,
      }))

      const refused = await repo.claimNumbers(wanted)
      const freed = new Set(refused.size > 0 ? await freeStaleClaims([...refused]) : [])
      if (freed.size > 0) {
        const retaken = await repo.claimNumbers(wanted.filter((claim) => freed.has(claim.key)))
        for (const key of freed) if (!retaken.has(key)) refused.delete(key)
      }
      const ours = wanted.filter((claim) => !refused.has(claim.key))

      const now = new Date()
      const created: SpaceRecord[] = ours.map((claim) => ({
        _id: claim.spaceId,
        lot_id: zone.lot_id,
        level_id: zone.level_id,
        zone_id: zone._id,
        number: claim.number,
        type: input.type,
        flags: flagSet(input.flags),
        overlay: null,
        overlay_reason: null,
        overlay_set_at: null,
        created_at: now,
        updated_at: now,
      }))
      try {
        await repo.insertSpaces(created)
      } catch (error) {
        await repo.releaseNumbers(ours).catch(() => undefined)
        throw error
      }
      if (!(await repo.findZone(zone._id))) {
        await repo.deleteSpaces(ours.map((claim) => claim.spaceId))
        await repo.releaseNumbers(ours)
        throw noZone(zone._id)
      }

      const skipped = wanted.filter((claim) => refused.has(claim.key))
      const holders = await repo.findSpaces(
        (await repo.findClaims(skipped.map((claim) => claim.key))).map((claim) => claim.space_id),
      )
      const skippedNumbers = new Set(skipped.map((claim) => claim.number))
      const alreadyHere = holders.filter((s) => s.zone_id === zone._id && skippedNumbers.has(s.number))
      const placements = [...created, ...alreadyHere].map(placementOf)
      if (placements.length > 0) await occupancy.upsertSpaces(placements)
      return { zone_id: zone._id, created: created.length, skipped: skipped.map((claim) => claim.number) }
    },

    async getSpace(id: string): Promise<SpaceView> {
      const space = await repo.findSpace(id)
      if (!space) throw noSpace(id)
      return toSpaceView(space)
    },

    /** For the sensors capability: a space by id, or undefined. */
    async findSpace(id: string): Promise<SpaceView | undefined> {
      const space = await repo.findSpace(id)
      return space && toSpaceView(space)
    },

    /**
     * Full replacement of zone, number, type and flags; the overlay stays. A move to a zone in
     * another lot, or a new number, claims the new number before the old one goes. Sent again,
     * it finds the new claim as its own and tells the hot state again.
     */
    async replaceSpace(id: string, input: SpaceInput): Promise<SpaceView> {
      const current = await repo.findSpace(id)
      if (!current) throw noSpace(id)
      const zone = await requireZone(input.zone_id)
      const number = input.number.toUpperCase()
      const oldKey = numberKey(current.lot_id, current.number)
      const newKey = numberKey(zone.lot_id, number)
      const renumbered = oldKey !== newKey
      if (renumbered) await claimNumber(zone.lot_id, number, id)
      let updated: SpaceRecord | undefined
      try {
        updated = await repo.replaceSpace(id, {
          lot_id: zone.lot_id,
          level_id: zone.level_id,
          zone_id: zone._id,
          number,
          type: input.type,
          flags: flagSet(input.flags),
        })
      } catch (error) {
        if (renumbered) await repo.releaseNumber(newKey, id).catch(() => undefined)
        throw error
      }
      if (!updated) {
        if (renumbered) await repo.releaseNumber(newKey, id)
        throw noSpace(id)
      }
      if (renumbered) await repo.releaseNumber(oldKey, id)
      await occupancy.upsertSpaces([placementOf(updated)])
      return toSpaceView(updated)
    },

    async setOverlay(
      id: string,
      input: { overlay: Overlay | null; reason?: string | undefined },
    ): Promise<SpaceView> {
      const space = await repo.setOverlay(id, input.overlay, input.overlay ? text(input.reason) : null)
      if (!space) throw noSpace(id)
      await occupancy.upsertSpaces([placementOf(space)])
      return toSpaceView(space)
    },

    /**
     * The record, then its number claim, then the hot state, then its sensor's binding. A delete
     * of a space that is not there still does the last two: that is the retry of a delete whose
     * last steps failed.
     */
    async deleteSpace(id: string): Promise<void> {
      const space = await repo.findSpace(id)
      if (!space) {
        await occupancy.removeSpaces([id])
        await deps.onSpaceDeleted?.(id)
        throw noSpace(id)
      }
      await repo.deleteSpace(id)
      await repo.releaseNumber(numberKey(space.lot_id, space.number), id)
      await occupancy.removeSpaces([id])
      await deps.onSpaceDeleted?.(id)
    },

    /** Whether a lot, level, zone or space exists, by `_id`: for scopes the hot state has no counts of. */
    async exists(kind: 'lot' | 'level' | 'zone' | 'space', id: string): Promise<boolean> {
      switch (kind) {
        case 'lot':
          return (await repo.findLot(id)) !== undefined
        case 'level':
          return (await repo.findLevel(id)) !== undefined
        case 'zone':
          return (await repo.findZone(id)) !== undefined
        case 'space':
          return (await repo.findSpace(id)) !== undefined
      }
    },

    /** Every space's placement, in pages by `_id`: what the occupancy capability rebuilds from. */
    async *placements(): AsyncIterable<SpacePlacement[]> {
      let after: string | undefined
      for (;;) {
        const rows = await repo.spacesAfter(after, PLACEMENT_PAGE)
        if (rows.length > 0) yield rows.map(placementOf)
        const last = rows.at(-1)
        if (rows.length < PLACEMENT_PAGE || !last) return
        after = last._id
      }
    },
  }
}
