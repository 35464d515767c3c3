import { Counter, Histogram } from 'prom-client'
import type { Logger } from '../../shared/logger.ts'
import type { Metrics } from '../../shared/metrics.ts'
import type { RedisClient } from '../../shared/redis.ts'
import type { SpaceHistoryRecord } from './occupancy.model.ts'
import type { OccupancyRepository } from './occupancy.repository.ts'
import {
  type ChangeEvent,
  changeOf,
  type OccupancyState,
  recordOf,
  CHANGES as STREAM,
} from './occupancy.state.ts'

const GROUP = 'persister'
const TRIM_EVERY_MS = 5_000
const UNDELIVERED_COUNT_MAX = 10_000

export type PersisterSettings = {
  /** This instance's consumer name in the group. */
  consumer: string
  batch: number
  blockMs: number
  /** Entries another consumer read but did not acknowledge for this long are taken over. */
  claimIdleMs: number
  /** Written entries stay this long in the stream, for live feeds to resume from. */
  retainMs: number
}

/**
 * Moves committed changes from the Redis stream to MongoDB as history rows, in unordered
 * batches, then XACK. An entry is acknowledged only after its write, so with MongoDB
 * down entries wait in the stream (and in this consumer's pending list) and nothing is lost. The
 * stream is trimmed only below what the group has written and past the retention time.
 */
export function createPersister(deps: {
  redis: RedisClient
  state: Pick<OccupancyState, 'trim'>
  repo: OccupancyRepository
  metrics: Metrics
  logger: Logger
  settings: PersisterSettings
  /**
   * Told each batch after its write and before its acknowledgement (webhook events): when it
   * throws, the batch is not acknowledged and comes again, with the same stream ids.
   */
  afterWrite?: (changes: readonly ChangeEvent[]) => Promise<void>
}) {
  const { redis, repo, logger, settings } = deps
  const registers = [deps.metrics.registry]
  const persisted = new Counter({
    name: 'persister_changes_total',
    help: 'Space changes written to MongoDB by the persister.',
    registers,
  })
  const lag = new Histogram({
    name: 'persister_lag_seconds',
    help: 'From a change entering the Redis stream to its MongoDB write being acknowledged.',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers,
  })
  let stopped = false
  let reader: RedisClient | undefined
  let loop: Promise<void> | undefined
  let idle: (() => void) | undefined

  const ensureGroup = async () => {
    try {
      await redis.xgroup('CREATE', STREAM, GROUP, '0', 'MKSTREAM')
    } catch (error) {
      if (!String((error as Error).message).includes('BUSYGROUP')) throw error
    }
  }

  type Entries = [id: string, fields: string[]][]
  let wakeOnStop: () => void = () => {}
  /** Resolves (no entries) when stop() is called. */
  const stopping = new Promise<Entries>((resolve) => {
    wakeOnStop = () => resolve([])
  })
  const read = async (client: RedisClient, from: '0' | '>'): Promise<Entries> => {
    const args: (string | number)[] = ['GROUP', GROUP, settings.consumer, 'COUNT', settings.batch]
    if (from === '>') args.push('BLOCK', settings.blockMs)
    args.push('STREAMS', STREAM, from)
    const reply = (await (client.xreadgroup as (...a: (string | number)[]) => Promise<unknown>)(...args)) as
      | [string, Entries][]
      | null
    return reply?.[0]?.[1] ?? []
  }

  const write = async (entries: Entries) => {
    // A pending entry deleted meanwhile comes back without fields: nothing to write.
    const events = entries
      .filter(([, fields]) => fields && fields.length > 0)
      .map(([id, f]) => changeOf(id, f))
    const now = new Date()
    const rows = events.map((e) => historyRow(e, now))
    await repo.persist(rows)
    if (deps.afterWrite) await deps.afterWrite(events)
    const ids = entries.map(([id]) => id)
    await redis.xack(STREAM, GROUP, ...ids)
    persisted.inc(rows.length)
    const nowMs = Date.now()
    for (const id of ids) lag.observe((nowMs - Number(id.split('-')[0])) / 1000)
  }

  /** Trims below the oldest entry not yet written (pending or undelivered) and the retention. */
  const trim = async () => {
    const info = await groupInfo()
    if (!info) return
    const pending = (await redis.xpending(STREAM, GROUP)) as [number, string | null, ...unknown[]]
    const unwritten = pending[0] > 0 && pending[1] ? pending[1] : nextId(String(info['last-delivered-id']))
    await deps.state.trim(unwritten, settings.retainMs)
  }

  /** Entries after `lastDelivered`, counted by reading them, up to UNDELIVERED_COUNT_MAX. */
  const undelivered = async (lastDelivered: string) => {
    let count = 0
    let after = lastDelivered
    while (count < UNDELIVERED_COUNT_MAX) {
      const page = await redis.xrange(STREAM, `(${after}`, '+', 'COUNT', 1000)
      count += page.length
      const last = page.at(-1)
      if (page.length < 1000 || !last) break
      after = last[0]
    }
    return count
  }

  const groupInfo = async () => {
    const groups = (await redis.xinfo('GROUPS', STREAM)) as unknown[][]
    return groups.map((group) => recordOf(group)).find((group) => group.name === GROUP)
  }

  const run = async (client: RedisClient) => {
    let failures = 0
    let lastClaim = 0
    let lastTrim = 0
    let backlog = true // our own pending entries first (a restart, or a failed write)
    while (!stopped) {
      try {
        if (Date.now() - lastClaim > settings.claimIdleMs) {
          lastClaim = Date.now()
          await ensureGroup()
          // Entries a vanished consumer read and never acknowledged.
          await redis.xautoclaim(STREAM, GROUP, settings.consumer, settings.claimIdleMs, '0', 'COUNT', 1000)
          backlog = true
        }
        if (Date.now() - lastTrim > TRIM_EVERY_MS) {
          lastTrim = Date.now()
          await trim()
        }
        // ioredis never settles the command of a client told to disconnect while it waits to
        // reconnect (a stop while Redis is away): stop() must not wait for the read.
        const entries = await Promise.race([read(client, backlog ? '0' : '>'), stopping])
        if (backlog && entries.length === 0) backlog = false
        if (entries.length > 0) await write(entries)
        if (failures > 0) logger.info({ after: failures }, 'persister writing again')
        failures = 0
      } catch (error) {
        if (stopped) break
        backlog = true
        if (failures++ % 30 === 0)
          logger.warn({ reason: (error as Error).message }, 'persister waiting: changes stay in the stream')
        await new Promise<void>((resolve) => {
          idle = resolve
          setTimeout(resolve, Math.min(200 * 2 ** Math.min(failures, 4), 2_000))
        })
      }
    }
  }

  return {
    async start() {
      await ensureGroup()
      // Blocking reads need a connection of their own.
      reader = redis.duplicate({ lazyConnect: false, enableOfflineQueue: true })
      reader.on('error', () => {})
      loop = run(reader)
    },
    async stop() {
      stopped = true
      wakeOnStop()
      idle?.()
      reader?.disconnect()
      await loop
    },
    /**
     * Entries not yet written to MongoDB: read and not acknowledged, or not read yet (counted up to
     * UNDELIVERED_COUNT_MAX while Redis cannot tell, see below; at least that many beyond).
     */
    async backlog(): Promise<number> {
      const info = await groupInfo()
      if (!info) return await redis.xlen(STREAM)
      // `pending`: delivered and not acknowledged. `lag` (Redis 7): not delivered yet, or null when
      // Redis cannot tell, which is not 0: a restarted Redis rebuilds the group without its read
      // counter, and gets it back only once the group has read up to the stream's end. Taking null
      // for 0 said "caught up" while the persister was still catching up after a restart.
      const pending = Number(info.pending ?? 0)
      if (info.lag !== null && info.lag !== undefined) return pending + Number(info.lag)
      return pending + (await undelivered(String(info['last-delivered-id'])))
    },
  }
}

export type Persister = ReturnType<typeof createPersister>

/** The smallest stream id after `id`. */
function nextId(id: string): string {
  const [ms = '0', seq = '0'] = id.split('-')
  return `${ms}-${Number(seq) + 1}`
}

/**
 * `<space>/<ms>-<seq>` with the sequence part padded, so that the string order is the stream order
 * (two changes of one space in one millisecond: `-9` before `-10`).
 */
export function historyId(space: string, entryId: string): string {
  const [ms = '0', seq = '0'] = entryId.split('-')
  return `${space}/${ms}-${seq.padStart(6, '0')}`
}

function historyRow(e: ChangeEvent, now: Date): SpaceHistoryRecord {
  return {
    _id: historyId(e.space, e.id),
    space_id: e.space,
    lot_id: e.lot,
    level_id: e.level,
    zone_id: e.zone,
    number: e.number,
    type: e.type,
    kind: e.kind,
    sensed_from: e.sensed_from,
    sensed_to: e.sensed_to,
    status_from: e.status_from,
    status_to: e.status_to,
    overlay: e.overlay || null,
    at: new Date(Number(e.at)),
    device_id: e.device || null,
    boot: e.boot || null,
    seq: e.seq === '' ? null : Number(e.seq),
    session_id: e.session || null,
    recorded_at: now,
  }
}
