import { Counter, Histogram } from 'prom-client'
import { DependencyDown, isDependencyFailure } from '../../shared/errors.ts'
import type { Logger } from '../../shared/logger.ts'
import type { Metrics } from '../../shared/metrics.ts'
import type { RedisClient } from '../../shared/redis.ts'
import type { WorkerPool } from '../../shared/worker-pool.ts'
import type { IngestOutcome, ReadingSink } from './occupancy.contract.ts'
import type { OccupancyState } from './occupancy.state.ts'
import { type NormalisedBatch, type ObjectBatch, packRaw, type RawBatch } from './readings.ts'

export const sensorTask = new URL('../../../workers/sensor-batch.ts', import.meta.url).href

export type IngestSettings = {
  dwellMs: number
  /** How out of date the silent-sensor index may be: a tenth of the stale time. */
  seenEveryMs: number
  batchMax: number
  flushMs: number
  deadLetterRetain: number
}

type Pending = { topic: string; payload: Buffer; ack: () => void }

/**
 * The path of one sensor message (DESIGN.md section 2): messages gather in a micro-batch, the
 * worker pool parses, validates and normalises it, rejects go to the dead letters, and one Redis
 * step applies the rest. Only then are the messages acknowledged. A batch whose Redis step fails
 * is retried until it succeeds: nothing is acknowledged, so nothing is lost.
 */
export function createIngestPipeline(deps: {
  state: OccupancyState
  pool: WorkerPool
  redis: RedisClient
  metrics: Metrics
  logger: Logger
  settings: IngestSettings
}) {
  const { state, pool, redis, logger, settings } = deps
  const registers = [deps.metrics.registry]
  const messages = new Counter({
    name: 'ingest_messages_total',
    help: 'Sensor messages through the pipeline, by outcome.',
    labelNames: ['outcome'] as const,
    registers,
  })
  const changes = new Counter({
    name: 'occupancy_changes_total',
    help: 'Committed sensed-state changes written by the ingest step.',
    registers,
  })
  const batchSeconds = new Histogram({
    name: 'ingest_batch_duration_seconds',
    help: 'From a batch leaving the buffer to its acknowledgement (pool and Redis step).',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers,
  })
  const batchSize = new Histogram({
    name: 'ingest_batch_size',
    help: 'Messages per micro-batch.',
    buckets: [1, 10, 50, 100, 250, 500, 1000, 2500, 5000],
    registers,
  })

  let notBuilt: () => void = () => {}
  let buffer: Pending[] = []
  let timer: NodeJS.Timeout | undefined
  let closing = false
  const running = new Set<Promise<void>>()

  const deadLetter = async (
    rejects: { index: number; reason: string }[],
    describe: (index: number) => { topic: string; payload: string },
  ) => {
    if (rejects.length === 0) return
    messages.inc({ outcome: 'rejected' }, rejects.length)
    const pipeline = redis.pipeline()
    const now = String(Date.now())
    for (const reject of rejects) {
      const { topic, payload } = describe(reject.index)
      pipeline.xadd(
        'occ:deadletters',
        'MAXLEN',
        '~',
        settings.deadLetterRetain,
        '*',
        'reason',
        reject.reason,
        'topic',
        topic,
        'payload',
        payload.slice(0, 1024),
        'at',
        now,
      )
    }
    const results = (await pipeline.exec()) ?? []
    const failed = results.find(([error]) => error)
    if (failed?.[0]) throw failed[0]
  }

  // Batches are parsed in parallel but applied in the order they left the buffer: the pool
  // finishes tasks in any order, and a batch applied before an older one would make the older
  // one's readings stale.
  let applyTail: Promise<unknown> = Promise.resolve()
  const inOrder = <T>(step: () => Promise<T>): Promise<T> => {
    const result = applyTail.then(step, step)
    applyTail = result.catch(() => {})
    return result
  }

  /** Pool, dead letters, Redis step: one batch through the pipeline. */
  const process = (
    batch: RawBatch | ObjectBatch,
    describe: (index: number) => { topic: string; payload: string },
  ): Promise<IngestOutcome> => {
    const parsed = pool.run(batch, { filename: sensorTask }) as Promise<NormalisedBatch>
    return inOrder(async () => apply(await parsed, describe))
  }

  const apply = async (
    normalised: NormalisedBatch,
    describe: (index: number) => { topic: string; payload: string },
  ): Promise<IngestOutcome> => {
    const applied =
      normalised.indexes.length > 0
        ? await state.apply(normalised.args, settings.dwellMs, settings.seenEveryMs)
        : { accepted: 0, duplicates: 0, stale: 0, changes: 0, unknown: [] as number[] }
    const rejects = [
      ...normalised.rejects,
      ...applied.unknown.map((i) => ({ index: normalised.indexes[i] ?? -1, reason: 'unknown device' })),
    ].sort((a, b) => a.index - b.index)
    await deadLetter(rejects, describe)
    messages.inc({ outcome: 'accepted' }, applied.accepted)
    messages.inc({ outcome: 'duplicate' }, applied.duplicates)
    messages.inc({ outcome: 'stale' }, applied.stale)
    changes.inc(applied.changes)
    return {
      accepted: applied.accepted,
      duplicates: applied.duplicates,
      stale: applied.stale,
      rejected: rejects,
    }
  }

  const runMqttBatch = async (batch: Pending[]) => {
    const began = performance.now()
    batchSize.observe(batch.length)
    const raw = packRaw(Date.now(), batch)
    const describe = (i: number) => ({
      topic: batch[i]?.topic ?? '',
      payload: batch[i]?.payload.toString('utf8') ?? '',
    })
    const parsed = pool.run(raw, { filename: sensorTask }) as Promise<NormalisedBatch>
    parsed.catch(() => {}) // awaited below, in order
    // Retried in place until it succeeds, holding back later batches: nothing is acknowledged
    // meanwhile, and order is kept.
    const applied = await inOrder(async () => {
      for (let attempt = 0; ; attempt++) {
        try {
          const normalised = attempt === 0 ? await parsed : await pool.run(raw, { filename: sensorTask })
          await apply(normalised as NormalisedBatch, describe)
          return true
        } catch (error) {
          if (closing) return false // not acknowledged: the broker resends them to the next session
          if (String((error as Error).message).startsWith('NOTBUILT')) notBuilt()
          if (attempt === 0 || attempt % 50 === 0)
            logger.warn(
              { reason: (error as Error).message, messages: batch.length },
              'ingest batch waiting to be applied',
            )
          await new Promise((resolve) => setTimeout(resolve, Math.min(100 * 2 ** attempt, 2_000)))
        }
      }
    })
    if (!applied) return
    for (const message of batch) message.ack()
    batchSeconds.observe((performance.now() - began) / 1000)
  }

  const flush = () => {
    clearTimeout(timer)
    timer = undefined
    if (buffer.length === 0) return
    const batch = buffer
    buffer = []
    const job = runMqttBatch(batch).finally(() => running.delete(job))
    running.add(job)
  }

  const sink: ReadingSink = {
    async submit(items, onlyDevice) {
      const batch: ObjectBatch = { now: Date.now(), objects: items, onlyDevice }
      try {
        return await process(batch, (i) => ({ topic: 'http', payload: JSON.stringify(items[i] ?? null) }))
      } catch (error) {
        if (String((error as Error).message).startsWith('NOTBUILT')) notBuilt()
        if (isDependencyFailure(error)) throw error
        throw new DependencyDown(`ingest step failed: ${(error as Error).message}`)
      }
    },
  }

  return {
    sink,

    /** The MQTT door hands each message here; `ack` is called after its batch's Redis step. */
    accept(topic: string, payload: Buffer, ack: () => void) {
      if (closing) return
      buffer.push({ topic, payload, ack })
      if (buffer.length >= settings.batchMax) flush()
      else timer ??= setTimeout(flush, settings.flushMs)
    },

    /** Called when the Redis step refuses a batch because the hot state is not built. */
    onNotBuilt(handler: () => void) {
      notBuilt = handler
    },

    /** Stops taking messages and waits for the batches under way. */
    async drain() {
      flush()
      await Promise.allSettled([...running])
      closing = true
    },

    /** Gives up on batches still waiting for Redis; their messages stay unacknowledged. */
    abandon() {
      closing = true
      clearTimeout(timer)
    },
  }
}

export type IngestPipeline = ReturnType<typeof createIngestPipeline>
