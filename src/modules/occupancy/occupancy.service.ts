import { AppError } from '../../shared/errors.ts'
import { decodeCursor, encodeCursor } from '../../shared/ids.ts'
import type { RedisClient } from '../../shared/redis.ts'
import type { FeedHub, FeedMessage } from './feeds.ts'
import type { SpaceType } from './occupancy.contract.ts'
import type { SpaceHistoryRecord } from './occupancy.model.ts'
import type { OccupancyRepository } from './occupancy.repository.ts'
import {
  type ChangeKind,
  type Counts,
  emptyCounts,
  type OccupancyState,
  recordOf,
  type SpaceState,
} from './occupancy.state.ts'

export type ScopeKind = 'lot' | 'level' | 'zone' | 'space'

/** Whether a lot, level, zone or space exists (facilities); asked only when Redis knows nothing of it. */
export type FacilityLookup = (kind: ScopeKind, id: string) => Promise<boolean>

const DAY_MS = 24 * 3600_000

export function availabilityView(counts: Counts) {
  // Of the spaces whose state is known, the share not available (so all-unknown is 0, not 100).
  const known = counts.total - counts.unknown
  const rate = known === 0 ? 0 : Math.round(((known - counts.free) / known) * 1000) / 10
  return {
    total: counts.total,
    available: counts.free,
    occupied: counts.occupied,
    unknown: counts.unknown,
    reserved: counts.reserved,
    maintenance: counts.maintenance,
    closed: counts.closed,
    occupancy_rate: rate,
    as_of: new Date().toISOString(),
  }
}

export function spaceStateView(s: SpaceState) {
  return {
    space_id: s.spaceId,
    number: s.number,
    type: s.type,
    lot_id: s.lotId,
    level_id: s.levelId,
    zone_id: s.zoneId,
    sensed: s.sensed,
    overlay: s.overlay,
    status: s.status,
    changed_at: s.changedAt.toISOString(),
    device_id: s.deviceId,
    pending: s.pending,
    session_id: s.sessionId,
  }
}

function historyView(row: SpaceHistoryRecord) {
  return {
    id: row._id.slice(row._id.indexOf('/') + 1).replace(/-0+(?=\d)/, '-'),
    space_id: row.space_id,
    kind: row.kind as ChangeKind,
    sensed_from: row.sensed_from,
    sensed_to: row.sensed_to,
    status_from: row.status_from,
    status_to: row.status_to,
    overlay: row.overlay,
    at: row.at.toISOString(),
    recorded_at: row.recorded_at.toISOString(),
    device_id: row.device_id,
    boot: row.boot,
    seq: row.seq,
    session_id: row.session_id ?? null,
  }
}

/** The reads of occupancy: availability, free spaces, a space's state and history, live feeds. */
export function createOccupancyService(deps: {
  state: OccupancyState
  repo: OccupancyRepository
  redis: RedisClient
  feeds: FeedHub
  exists: FacilityLookup
}) {
  const { state, exists } = deps

  /** Redis knows every scope that has spaces; one without any exists only in MongoDB. */
  const countsOf = async (kind: ScopeKind, id: string): Promise<Counts> => {
    const counts = await state.counts(id)
    if (counts) return counts
    if (await exists(kind, id)) return emptyCounts()
    throw new AppError('NOT_FOUND', `No ${kind} ${id}`)
  }

  return {
    async availability(kind: 'lot' | 'level' | 'zone', id: string) {
      return availabilityView(await countsOf(kind, id))
    },

    async freeSpaces(query: {
      lot_id?: string | undefined
      level_id?: string | undefined
      zone_id?: string | undefined
      type?: SpaceType | undefined
      ev?: boolean | undefined
      handicapped?: boolean | undefined
      limit: number
    }) {
      const types = new Set<SpaceType>()
      if (query.type) types.add(query.type)
      if (query.ev) types.add('EV')
      if (query.handicapped) types.add('HANDICAPPED')
      // Two different wishes (type=COMPACT&ev=true) match nothing rather than either.
      if (types.size > 1) return { total: 0, data: [] }
      const result = await state.freeSpaces({
        lotId: query.lot_id,
        levelId: query.level_id,
        zoneId: query.zone_id,
        types: [...types],
        limit: query.limit,
      })
      const data = result.spaces.map(spaceStateView)
      return { total: result.total, data }
    },

    async spaceState(id: string) {
      const found = await state.space(id)
      if (!found) throw new AppError('NOT_FOUND', `No space ${id}`)
      return spaceStateView(found)
    },

    /**
     * Spaces of a lot (ids from a page of the registry) with their live state and their sensor's
     * health, for a console's map: two round trips to the hot state. Spaces of other lots and
     * spaces the hot state does not know yet are left out.
     */
    async lotSpaceStates(lotId: string, spaceIds: readonly string[]) {
      await countsOf('lot', lotId)
      const spaces = (await state.spaces(spaceIds)).filter((s) => s.lotId === lotId)
      const devices = [...new Set(spaces.flatMap((s) => (s.deviceId ? [s.deviceId] : [])))]
      const health = new Map((await state.index.deviceHealth(devices)).map((d) => [d.deviceId, d]))
      return spaces.map((s) => {
        const device = s.deviceId ? health.get(s.deviceId) : undefined
        return {
          ...spaceStateView(s),
          device: device
            ? {
                id: device.deviceId,
                battery: device.battery,
                signal: device.signal,
                last_seen_at: device.lastSeenAt?.toISOString() ?? null,
                stale: device.stale,
              }
            : null,
        }
      })
    },

    async history(
      id: string,
      query: {
        from?: string | undefined
        to?: string | undefined
        limit: number
        cursor?: string | undefined
      },
    ) {
      if (!(await state.space(id)) && !(await exists('space', id)))
        throw new AppError('NOT_FOUND', `No space ${id}`)
      const to = query.to ? new Date(query.to) : new Date()
      const from = query.from ? new Date(query.from) : new Date(to.getTime() - DAY_MS)
      const rows = await deps.repo.history(id, {
        from,
        to,
        limit: query.limit + 1,
        ...(query.cursor ? { after: decodeCursor(query.cursor) } : {}),
      })
      const data = rows.slice(0, query.limit)
      const last = data.at(-1)
      return {
        data: data.map(historyView),
        next_cursor: rows.length > query.limit && last ? encodeCursor(last._id) : null,
      }
    },

    async deadLetters(limit: number) {
      const entries = await deps.redis.xrevrange('occ:deadletters', '+', '-', 'COUNT', limit)
      return {
        data: entries.map(([id, fields]) => {
          const f = recordOf(fields) as Record<string, string | undefined>
          return {
            id,
            at: new Date(Number(f.at ?? id.split('-')[0])).toISOString(),
            reason: f.reason ?? '',
            topic: f.topic ?? '',
            payload: f.payload ?? '',
          }
        }),
      }
    },

    /**
     * Starts following a lot: checks it exists, then calls `send` with the lot's availability
     * (fresh listeners) and every change after `since`. Returns the function that stops it.
     */
    async follow(
      lotId: string,
      since: string | null,
      send: (message: FeedMessage | AvailabilityMessage) => void,
    ) {
      const snapshot = await state.lotSnapshot(lotId)
      if (!snapshot.counts && !(await exists('lot', lotId)))
        throw new AppError('NOT_FOUND', `No lot ${lotId}`)
      if (since !== null) return await deps.feeds.follow(lotId, since, send)
      // The counts and the feed position are one snapshot: changes after it follow, none twice.
      const counts = snapshot.counts ?? emptyCounts()
      send({ type: 'availability', id: snapshot.head, lot_id: lotId, ...availabilityView(counts) })
      return await deps.feeds.follow(lotId, snapshot.head, send, true)
    },
  }
}

export type AvailabilityMessage = { type: 'availability'; id: string; lot_id: string } & ReturnType<
  typeof availabilityView
>

export type OccupancyService = ReturnType<typeof createOccupancyService>
