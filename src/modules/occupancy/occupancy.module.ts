import { Gauge } from 'prom-client'
import type { Config } from '../../config.ts'
import { DependencyDown } from '../../shared/errors.ts'
import type { Logger } from '../../shared/logger.ts'
import type { Metrics } from '../../shared/metrics.ts'
import type { Database } from '../../shared/mongo.ts'
import type { RedisClient } from '../../shared/redis.ts'
import type { WorkerPool } from '../../shared/worker-pool.ts'
import { createFeedHub } from './feeds.ts'
import { defaultIngestClientId, openIngestDoor } from './ingest.door.ts'
import { createIngestPipeline } from './ingest.pipeline.ts'
import type { DeviceHealth, SpacePlacement } from './occupancy.contract.ts'
import { createOccupancyRepository } from './occupancy.repository.ts'
import { createOccupancyService, type FacilityLookup } from './occupancy.service.ts'
import { type ChangeEvent, type Counts, createOccupancyState } from './occupancy.state.ts'
import { createPersister } from './persister.ts'

/** What a listener of written changes may read after a batch: the touched lots' counts, devices' health. */
export type ChangeReads = {
  lotCounts(lotIds: readonly string[]): Promise<(Counts | null)[]>
  deviceHealth(deviceIds: readonly string[]): Promise<DeviceHealth[]>
}

const SWEEP_EVERY_MS = 200
const DRAIN_TIMEOUT_MS = 5_000

/**
 * The occupancy capability put together: hot state, reads and feeds, the ingest pipeline with its
 * MQTT door, the sweeper (debounce commits, silent sensors) and the persister to MongoDB.
 */
export async function startOccupancy(deps: {
  config: Config
  db: Database
  redis: RedisClient
  brokerUrl: string
  pool: WorkerPool
  metrics: Metrics
  logger: Logger
  exists: FacilityLookup
  /**
   * Told each batch of changes the persister wrote, before it acknowledges them (see persister.ts),
   * with what it may read of the hot state after the batch.
   */
  changesWritten?: (changes: readonly ChangeEvent[], reads: ChangeReads) => Promise<void>
}) {
  const { config, redis, logger } = deps
  const state = createOccupancyState(redis)
  const repo = createOccupancyRepository(deps.db)
  const feeds = createFeedHub({ redis, state, logger })
  await feeds.start()
  const service = createOccupancyService({ state, repo, redis, feeds, exists: deps.exists })
  const pipeline = createIngestPipeline({
    state,
    pool: deps.pool,
    redis,
    metrics: deps.metrics,
    logger,
    settings: {
      dwellMs: config.OCCUPANCY_DWELL_MS,
      seenEveryMs: Math.min(60_000, config.SENSOR_STALE_AFTER_SECONDS * 100),
      batchMax: config.INGEST_BATCH_MAX,
      flushMs: config.INGEST_FLUSH_MS,
      deadLetterRetain: 10_000,
    },
  })
  const clientId = config.INGEST_CLIENT_ID ?? defaultIngestClientId(config.PORT)
  const { changesWritten } = deps
  const reads: ChangeReads = {
    // The commands go out together on one connection: one round trip.
    lotCounts: (lotIds) => Promise.all(lotIds.map((lotId) => state.counts(lotId))),
    deviceHealth: (deviceIds) => state.index.deviceHealth(deviceIds),
  }
  const persister = createPersister({
    redis,
    state,
    repo,
    metrics: deps.metrics,
    logger,
    ...(changesWritten
      ? { afterWrite: (changes: readonly ChangeEvent[]) => changesWritten(changes, reads) }
      : {}),
    settings: {
      consumer: clientId,
      batch: 1000,
      blockMs: 1000,
      claimIdleMs: 30_000,
      retainMs: config.FEED_RETAIN_SECONDS * 1000,
    },
  })
  await persister.start()

  let sweeping = false
  let sweepFailures = 0
  const sweeper = setInterval(() => {
    if (sweeping) return
    sweeping = true
    state
      .sweep(config.SENSOR_STALE_AFTER_SECONDS * 1000)
      .then(() => {
        sweepFailures = 0
      })
      .catch((error: Error) => {
        if (sweepFailures++ % 50 === 0)
          logger.warn({ reason: error.message }, 'occupancy sweep failed; retrying')
      })
      .finally(() => {
        sweeping = false
      })
  }, SWEEP_EVERY_MS)

  type RebuildSource = {
    placements(): AsyncIterable<SpacePlacement[]>
    bindings(): AsyncIterable<{ deviceId: string; spaceId: string | null }[]>
    /** The spaces that active parking sessions and reservations (`rsv:<id>`) hold. */
    holds?(): AsyncIterable<{ sessionId: string; spaceId: string }[]>
  }
  let source: RebuildSource | undefined
  let rebuilding: Promise<boolean> | undefined
  /**
   * Builds the hot state from MongoDB when Redis has none (a first start, or a Redis that lost
   * its data): every space at unknown until its sensor speaks again, every device bound again.
   * Until then the Redis step refuses batches (NOTBUILT) and they wait, unacknowledged.
   */
  const rebuildIfEmpty = (): Promise<boolean> => {
    rebuilding ??= (async () => {
      if (!source || (await state.isBuilt())) return false
      for await (const page of source.placements()) await state.index.upsertSpaces(page)
      for await (const page of source.bindings()) await state.bindDevices(page)
      if (source.holds)
        for await (const page of source.holds())
          for (const { sessionId, spaceId } of page) {
            const held = await state.hold(sessionId, spaceId, { rebuilding: true })
            if (!held || held === 'unknown-space')
              logger.warn(
                { sessionId, spaceId, reason: held ?? 'taken' },
                'rebuild: an active session lost its space',
              )
          }
      await state.markBuilt()
      logger.info('occupancy hot state built from MongoDB')
      return true
    })().finally(() => {
      rebuilding = undefined
    })
    return rebuilding
  }
  pipeline.onNotBuilt(() => {
    rebuildIfEmpty().catch((error: Error) =>
      logger.warn({ reason: error.message }, 'hot state rebuild failed'),
    )
  })

  let door: ReturnType<typeof openIngestDoor> | undefined
  new Gauge({
    name: 'feed_listeners',
    help: 'Live feed clients (SSE and WebSocket) connected to this instance.',
    registers: [deps.metrics.registry],
    collect() {
      this.set(feeds.listenerCount())
    },
  })
  new Gauge({
    name: 'ingest_connected',
    help: 'Whether the ingest door holds its broker session (1), or is reconnecting (0); 1 with ingest off.',
    registers: [deps.metrics.registry],
    collect() {
      this.set(door === undefined || door.connected ? 1 : 0)
    },
  })

  /**
   * The space arbiter of parking sessions: the hot state's allocate, hold and release. A Redis
   * that lost its data answers 503 and is rebuilt, instead of calling every lot full.
   */
  const refusedWhileEmpty = (error: unknown): never => {
    if (String((error as Error).message).startsWith('NOTBUILT')) {
      rebuildIfEmpty().catch((e: Error) => logger.warn({ reason: e.message }, 'hot state rebuild failed'))
      throw new DependencyDown('the occupancy hot state is being rebuilt from MongoDB; retry shortly')
    }
    throw error
  }
  const spaces = {
    allocate: (...args: Parameters<typeof state.allocate>) =>
      state.allocate(...args).catch(refusedWhileEmpty),
    hold: (sessionId: string, spaceId: string, options?: { takeOverFrom?: string }) =>
      state.hold(sessionId, spaceId, { ...options }).catch(refusedWhileEmpty),
    release: (sessionId: string) => state.release(sessionId),
  }

  return {
    index: state.index,
    service,
    spaces,
    sink: pipeline.sink,
    state,
    persister,
    /** Whether the ingest door holds its broker session (for readiness). */
    ingestConnected: () => door?.connected ?? true,

    /**
     * Rebuilds the hot state if Redis has none, then opens the MQTT door: a queued message must
     * find its device bound. Later losses of Redis data rebuild from the same source.
     */
    async open(rebuildSource: RebuildSource) {
      source = rebuildSource
      await rebuildIfEmpty()
      if (!config.INGEST_ENABLED) return
      door = openIngestDoor({
        pipeline,
        metrics: deps.metrics,
        logger,
        settings: {
          brokerUrl: deps.brokerUrl,
          shareGroup: config.INGEST_SHARE_GROUP,
          clientId,
          receiveMaximum: config.INGEST_IN_FLIGHT,
          sessionExpirySeconds: config.INGEST_SESSION_EXPIRY_SECONDS,
        },
      })
    },

    /** Stops taking messages, lets batches under way finish (unfinished ones stay with the broker). */
    async stop() {
      await Promise.race([pipeline.drain(), new Promise((resolve) => setTimeout(resolve, DRAIN_TIMEOUT_MS))])
      pipeline.abandon()
      // After the drain, so that the acknowledgements of finished batches go out first.
      await door?.close()
      clearInterval(sweeper)
      await persister.stop()
      await feeds.stop()
    },
  }
}

export type Occupancy = Awaited<ReturnType<typeof startOccupancy>>
