import { readFileSync } from 'node:fs'
import type { RedisClient } from '../../shared/redis.ts'
import type {
  DeviceHealth,
  OccupancyIndex,
  Overlay,
  SensedState,
  SpacePlacement,
  SpaceStatus,
  SpaceType,
} from './occupancy.contract.ts'
import { spaceTypes } from './occupancy.contract.ts'

const script = readFileSync(new URL('./occupancy.lua', import.meta.url), 'utf8')

/** Counts of one lot, level or zone by the status that counts. */
export type Counts = Record<'total' | SpaceStatus, number>

/** A change as the Redis step records it in the change stream. */
export type ChangeEvent = {
  /** The stream entry's id: live feeds resume after it. */
  id: string
  space: string
  lot: string
  level: string
  zone: string
  number: string
  type: SpaceType
  /**
   * Within a space, status_from -> status_to: sensor (a reading), stale (the sensor went silent),
   * bound/unbound (its sensor changed), overlay (an operator), held/released (a parking session
   * took or let go of it; `session` names it). Counting a space in or out:
   * placed (+1 to total and to status_to) and removed (-1 to total and to status_from); a space
   * moved to another zone or type is removed from the old place and placed in the new one.
   */
  kind: ChangeKind
  sensed_from: SensedState
  sensed_to: SensedState
  status_from: SpaceStatus
  status_to: SpaceStatus
  overlay: Overlay | ''
  /** Epoch ms: when the change happened (the first reading of it, for a debounced one). */
  at: string
  device: string
  boot: string
  seq: string
  /** The parking session holding the space ('' for none). */
  session: string
}

export const changeKinds = [
  'sensor',
  'stale',
  'bound',
  'unbound',
  'overlay',
  'placed',
  'removed',
  'held',
  'released',
] as const
export type ChangeKind = (typeof changeKinds)[number]

/** A space as an allocation answers it. */
export type HeldSpace = Pick<SpacePlacement, 'spaceId' | 'lotId' | 'levelId' | 'zoneId' | 'number' | 'type'>

export type SpaceState = Omit<SpacePlacement, 'overlay'> & {
  sensed: SensedState
  overlay: Overlay | null
  status: SpaceStatus
  changedAt: Date
  deviceId: string | null
  /** A sensed change waiting for its dwell time. */
  pending: SensedState | null
  /** The parking session holding the space. */
  sessionId: string | null
}

export type ApplyResult = {
  accepted: number
  duplicates: number
  stale: number
  changes: number
  unknown: number[]
}

type ScriptRunner = { occupancy(...args: (string | number)[]): Promise<unknown> }

export const emptyCounts = (): Counts => ({
  total: 0,
  free: 0,
  occupied: 0,
  unknown: 0,
  reserved: 0,
  maintenance: 0,
  closed: 0,
})

/**
 * The occupancy hot state in Redis. Every state change is one call of occupancy.lua, atomic;
 * reads are plain hash and set reads.
 */
export function createOccupancyState(redis: RedisClient) {
  if (!('occupancy' in redis)) redis.defineCommand('occupancy', { numberOfKeys: 0, lua: script })
  const prefix = redis.options.keyPrefix ?? ''
  const run = (op: string, args: (string | number)[]) =>
    (redis as unknown as ScriptRunner).occupancy(op, prefix, ...args)
  const key = {
    space: (id: string) => `occ:sp:${id}`,
    device: (id: string) => `occ:dev:${id}`,
    counts: (scope: string) => `occ:cnt:${scope}`,
    free: (zone: string, type: SpaceType) => `occ:free:${zone}:${type}`,
    zones: (lotOrLevel: string) => `occ:zones:${lotOrLevel}`,
  }

  const index: OccupancyIndex = {
    async upsertSpaces(spaces: readonly SpacePlacement[]) {
      for (let i = 0; i < spaces.length; i += 500) {
        const args = spaces
          .slice(i, i + 500)
          .flatMap((s) => [s.spaceId, s.lotId, s.levelId, s.zoneId, s.number, s.type, s.overlay ?? ''])
        await run('upsert', args)
      }
    },
    async removeSpaces(spaceIds: readonly string[]) {
      for (let i = 0; i < spaceIds.length; i += 500) await run('remove', spaceIds.slice(i, i + 500))
    },
    async bindDevice(deviceId: string, spaceId: string | null) {
      await run('bind', [deviceId, spaceId ?? ''])
    },
    async removeDevice(deviceId: string) {
      await run('bind', [deviceId, '-'])
    },
    async deviceHealth(deviceIds: readonly string[]): Promise<DeviceHealth[]> {
      if (deviceIds.length === 0) return []
      const pipeline = redis.pipeline()
      for (const id of deviceIds)
        pipeline.hmget(
          key.device(id),
          ...['space', 'boot', 'seq', 'at', 'seen', 'battery', 'signal', 'stale', 'meter_wh', 'meter_at'],
        )
      const rows = (await pipeline.exec()) ?? []
      return deviceIds.map((deviceId, i) => {
        const [space, boot, seq, at, seen, battery, signal, stale, meterWh, meterAt] = (rows[i]?.[1] ??
          []) as (string | null)[]
        const ms = (value: string | null | undefined) =>
          value && value !== '0' ? new Date(Number(value)) : null
        const num = (value: string | null | undefined) => (value ? Number(value) : null)
        return {
          deviceId,
          spaceId: space || null,
          lastSeenAt: ms(seen),
          lastMeasuredAt: ms(at),
          boot: boot || null,
          seq: seq && seq !== '-1' ? Number(seq) : null,
          battery: num(battery),
          signal: num(signal),
          stale: stale === '1',
          meterWh: num(meterWh),
          meterAt: ms(meterAt),
        }
      })
    },
  }

  return {
    index,

    /** Binds many devices in one round trip per 500 (the rebuild from MongoDB). */
    async bindDevices(bindings: readonly { deviceId: string; spaceId: string | null }[]): Promise<void> {
      for (let i = 0; i < bindings.length; i += 500) {
        const pipeline = redis.pipeline() as unknown as ScriptRunner & {
          exec(): Promise<[Error | null, unknown][] | null>
        }
        for (const { deviceId, spaceId } of bindings.slice(i, i + 500))
          pipeline.occupancy('bind', prefix, deviceId, spaceId ?? '')
        const failed = ((await pipeline.exec()) ?? []).find(([error]) => error)
        if (failed?.[0]) throw failed[0]
      }
    },

    /**
     * Applies one normalised batch (7 strings per reading, see readings.ts) atomically.
     * `seenEveryMs`: how out of date the silent-sensor index may be (a fraction of the stale time).
     */
    async apply(args: readonly string[], dwellMs: number, seenEveryMs = 1_000): Promise<ApplyResult> {
      const [accepted, duplicates, stale, changes, unknown] = (await run('apply', [
        dwellMs,
        seenEveryMs,
        ...args,
      ])) as [number, number, number, number, number[]]
      return { accepted, duplicates, stale, changes, unknown }
    },

    /**
     * Gives a parking session a free space of the lot (in `zoneId` if given), of the first type in
     * `types` that has one, atomically: two sessions never get one space. A session that holds a
     * space already gets it back. null: none is free.
     */
    async allocate(
      sessionId: string,
      lotId: string,
      zoneId: string | null,
      types: readonly SpaceType[],
    ): Promise<HeldSpace | null> {
      const reply = (await run('allocate', [sessionId, lotId, zoneId ?? '', ...types])) as string[] | null
      return reply ? heldSpaceOf(reply) : null
    },

    /**
     * Gives a session this space (an operator's choice): it must be free or sensed unknown, with no
     * overlay and no other session; the session's previous space is let go. null when it is taken.
     * `takeOverFrom`: a holder (a reservation, `rsv:<id>`) whose space is handed over to the
     * session, whatever its sensor says (the booked car may be on it already).
     */
    async hold(
      sessionId: string,
      spaceId: string,
      options: { rebuilding?: boolean; takeOverFrom?: string } = {},
    ): Promise<HeldSpace | null | 'unknown-space'> {
      try {
        const reply = await run('hold', [
          sessionId,
          spaceId,
          options.rebuilding ? 'rebuild' : '',
          options.takeOverFrom ?? '',
        ])
        return heldSpaceOf(reply as string[])
      } catch (error) {
        const message = String((error as Error).message)
        if (message.startsWith('TAKEN')) return null
        if (message.startsWith('NOSPACE')) return 'unknown-space'
        throw error
      }
    },

    /** Lets go of the session's space; answers its id, or null when it held none. */
    async release(sessionId: string): Promise<string | null> {
      return (await run('release', [sessionId])) as string | null
    },

    /** Commits debounced changes that are due and turns silent sensors' spaces to unknown. */
    async sweep(staleAfterMs: number, limit = 1000): Promise<{ committed: number; silenced: number }> {
      const [committed, silenced] = (await run('sweep', [staleAfterMs, limit])) as [number, number]
      return { committed, silenced }
    },

    /**
     * Trims the change stream below `unwritten` (the oldest entry not yet in MongoDB) and the
     * retention, by the Redis clock; `occ:trimmed-to` only moves forward.
     */
    async trim(unwritten: string, retainMs: number): Promise<void> {
      await run('trim', [unwritten, retainMs])
    },

    /** Counts of a lot, level or zone; null when no space was ever placed in it. */
    async counts(scopeId: string): Promise<Counts | null> {
      return countsOf(await redis.hgetall(key.counts(scopeId)))
    },

    /** A lot's counts and the change stream's newest id, read in one transaction: a consistent snapshot. */
    async lotSnapshot(lotId: string): Promise<{ counts: Counts | null; head: string }> {
      const [counts, head] = (await redis
        .multi()
        .hgetall(key.counts(lotId))
        .xrevrange(CHANGES, '+', '-', 'COUNT', 1)
        .exec()) ?? [
        [null, {}],
        [null, []],
      ]
      if (counts?.[0]) throw counts[0]
      const last = (head?.[1] as [string, string[]][] | undefined)?.[0]?.[0]
      return { counts: countsOf(counts?.[1] as Record<string, string>), head: last ?? '0-0' }
    },

    async space(spaceId: string): Promise<SpaceState | null> {
      const raw = await redis.hgetall(key.space(spaceId))
      return raw.lot ? spaceStateOf(spaceId, raw) : null
    },

    /** Many spaces in one round trip, in the order given; those the hot state does not know are left out. */
    async spaces(spaceIds: readonly string[]): Promise<SpaceState[]> {
      if (spaceIds.length === 0) return []
      const pipeline = redis.pipeline()
      for (const id of spaceIds) pipeline.hgetall(key.space(id))
      const rows = (await pipeline.exec()) ?? []
      return spaceIds.flatMap((id, i) => {
        const raw = (rows[i]?.[1] ?? {}) as Record<string, string>
        return raw.lot ? [spaceStateOf(id, raw)] : []
      })
    },

    /**
     * Free spaces (status free: sensed free and no overlay) in the given zones, of the given types.
     * Answers the total and up to `limit` of them, ordered by number.
     */
    async freeSpaces(filter: {
      lotId?: string | undefined
      levelId?: string | undefined
      zoneId?: string | undefined
      types?: readonly SpaceType[] | undefined
      limit: number
    }): Promise<{ total: number; spaces: SpaceState[] }> {
      let zones: string[]
      if (filter.zoneId) zones = [filter.zoneId]
      else if (filter.levelId) zones = await redis.smembers(key.zones(filter.levelId))
      else if (filter.lotId) zones = await redis.smembers(key.zones(filter.lotId))
      else {
        const lots = await redis.smembers('occ:lots')
        const pipeline = redis.pipeline()
        for (const lot of lots) pipeline.smembers(key.zones(lot))
        zones = ((await pipeline.exec()) ?? []).flatMap(([, members]) => members as string[])
      }
      const types = filter.types?.length ? filter.types : spaceTypes
      const pipeline = redis.pipeline()
      for (const zone of zones) for (const type of types) pipeline.smembers(key.free(zone, type))
      const ids = ((await pipeline.exec()) ?? []).flatMap(([, members]) => members as string[])
      const reads = redis.pipeline()
      // Numbers are needed to order; a zone has hundreds of spaces, so reading them all is cheap.
      for (const id of ids) reads.hgetall(key.space(id))
      const rows = (await reads.exec()) ?? []
      const spaces = ids
        .map((id, i) => spaceStateOf(id, (rows[i]?.[1] ?? {}) as Record<string, string>))
        .filter(
          (s) =>
            s.status === 'free' &&
            (!filter.lotId || s.lotId === filter.lotId) &&
            (!filter.levelId || s.levelId === filter.levelId),
        )
        .sort((a, b) => a.number.localeCompare(b.number, 'en', { numeric: true }))
      return { total: spaces.length, spaces: spaces.slice(0, filter.limit) }
    },

    /** Changes after `afterId`, oldest first, at most `count` read (of every lot). */
    async changesSince(afterId: string, count: number): Promise<ChangeEvent[]> {
      const entries = await redis.xrange(CHANGES, `(${afterId}`, '+', 'COUNT', count)
      return entries.map(([id, fields]) => changeOf(id, fields))
    },

    /**
     * Whether the stream still holds every change after `afterId`: false when the persister's
     * trimming (past FEED_RETAIN_SECONDS) removed some (the client must re-read the availability).
     */
    async feedCovers(afterId: string): Promise<boolean> {
      const trimmedTo = await redis.get(TRIMMED_TO)
      return !trimmedTo || compareIds(afterId, trimmedTo) >= 0
    },

    /** The newest change's id, where a fresh listener starts. */
    async feedHead(): Promise<string> {
      const [last] = await redis.xrevrange(CHANGES, '+', '-', 'COUNT', 1)
      return last?.[0] ?? '0-0'
    },

    /** Whether the hot state has been built (see the rebuild at start). */
    async isBuilt(): Promise<boolean> {
      return (await redis.exists('occ:built')) === 1
    },
    /** A rebuilt state has no change stream behind it: a feed resuming from before gets a reset. */
    async markBuilt(): Promise<void> {
      await redis.multi().set(TRIMMED_TO, `${Date.now()}-0`).set('occ:built', new Date().toISOString()).exec()
    },
  }
}

export type OccupancyState = ReturnType<typeof createOccupancyState>

function countsOf(raw: Record<string, string>): Counts | null {
  if (Object.keys(raw).length === 0) return null
  const counts = emptyCounts()
  for (const field of Object.keys(counts) as (keyof Counts)[]) counts[field] = Number(raw[field] ?? 0)
  return counts
}

/** The change stream (see occupancy.lua) and where the persister last trimmed it. */
export const CHANGES = 'occ:changes'
export const TRIMMED_TO = 'occ:trimmed-to'

const packedFields = [
  'space',
  'lot',
  'level',
  'zone',
  'number',
  'type',
  'kind',
  'sensed_from',
  'sensed_to',
  'status_from',
  'status_to',
  'overlay',
  'at',
  'device',
  'boot',
  'seq',
  'session',
] as const

/** A Redis reply of alternating names and values (stream fields, XINFO) as a record. */
export function recordOf(list: readonly unknown[]): Record<string, unknown> {
  const record: Record<string, unknown> = {}
  for (let i = 0; i + 1 < list.length; i += 2) record[String(list[i])] = list[i + 1]
  return record
}

/** A stream entry (one packed field `c`, parts joined with '|') as a change. */
export function changeOf(id: string, fields: string[]): ChangeEvent {
  const parts = (fields[1] ?? '').split('|')
  const event: Record<string, string> = { id }
  packedFields.forEach((name, i) => {
    event[name] = parts[i] ?? ''
  })
  return event as unknown as ChangeEvent
}

/** Stream ids `ms-seq` in order. */
export function compareIds(a: string, b: string): number {
  const [am = 0, as = 0] = a.split('-').map(Number)
  const [bm = 0, bs = 0] = b.split('-').map(Number)
  return am === bm ? as - bs : am - bm
}

function heldSpaceOf([
  spaceId = '',
  lotId = '',
  levelId = '',
  zoneId = '',
  number = '',
  type = '',
]: string[]): HeldSpace {
  return { spaceId, lotId, levelId, zoneId, number, type: type as SpaceType }
}

function spaceStateOf(spaceId: string, raw: Record<string, string>): SpaceState {
  const sensed = (raw.sensed ?? 'unknown') as SensedState
  const overlay = (raw.overlay || null) as Overlay | null
  return {
    spaceId,
    lotId: raw.lot ?? '',
    levelId: raw.level ?? '',
    zoneId: raw.zone ?? '',
    number: raw.number ?? '',
    type: (raw.type ?? 'STANDARD') as SpaceType,
    sensed,
    overlay,
    status: (raw.status || (overlay ?? sensed)) as SpaceStatus,
    changedAt: new Date(Number(raw.changed_at ?? 0)),
    deviceId: raw.device || null,
    pending: (raw.pend || null) as SensedState | null,
    sessionId: raw.held || null,
  }
}
