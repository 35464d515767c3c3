import { Registry } from 'prom-client'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { eventId, type LotAvailability } from '../../src/modules/webhooks/webhooks.contract.ts'
import { webhookModels } from '../../src/modules/webhooks/webhooks.model.ts'
import { createWebhooksRepository } from '../../src/modules/webhooks/webhooks.repository.ts'
import { createWebhooksService, type WebhooksService } from '../../src/modules/webhooks/webhooks.service.ts'
import { createLogger } from '../../src/shared/logger.ts'
import { connectDatabase, type Database, initModels, type ModelRegistration } from '../../src/shared/mongo.ts'
import { connectRedis, type RedisClient } from '../../src/shared/redis.ts'
import { isolatedDatabase } from '../harness/platform.ts'

// The webhooks service on the real databases, with failures put where a real outage would hit:
// recording events after the threshold sides were swapped in Redis, and scheduling deliveries
// after they were written to MongoDB. Dispatch is off: what is checked is what gets recorded and
// scheduled, not sent.

const THRESHOLD = 'lot.availability_threshold_crossed'
const TIMEOUT_MS = 1_000
/** Longer than a dispatcher's lease (twice the timeout and 30 s). */
const PAST_A_LEASE_MS = TIMEOUT_MS * 2 + 30_000 + 1

describe('webhooks service under failures', () => {
  let db: Database
  let redis: RedisClient
  let service: WebhooksService
  let repo: ReturnType<typeof createWebhooksRepository>
  let clock = Date.parse('2031-01-02T03:04:05.000Z')
  const faults = { recordEvents: false, zadd: false }
  const prefix = `t_${Math.random().toString(16).slice(2, 10)}:`

  beforeAll(async () => {
    const services = inject('services')
    db = await connectDatabase(isolatedDatabase(services.mongodb))
    await initModels(db, [webhookModels] as unknown as ModelRegistration[])
    redis = await connectRedis(services.redis, () => {}, prefix)
    repo = createWebhooksRepository(db)
    const flaky: typeof repo = {
      ...repo,
      async recordEvents(records) {
        if (faults.recordEvents) throw new Error('MongoDB went away')
        return await repo.recordEvents(records)
      },
    }
    // The same client, but ZADD (scheduling) fails while asked to.
    const flakyRedis = new Proxy(redis, {
      get(target, property, receiver) {
        if (property === 'zadd' && faults.zadd)
          return async () => Promise.reject(new Error('Redis went away'))
        const value = Reflect.get(target, property, receiver)
        return typeof value === 'function' ? value.bind(target) : value
      },
    })
    service = createWebhooksService({
      repo: flaky,
      redis: flakyRedis,
      lotExists: async () => true,
      registry: new Registry(),
      logger: createLogger('silent'),
      now: () => new Date(clock),
      settings: {
        dispatch: false,
        concurrency: 2,
        timeoutMs: TIMEOUT_MS,
        retryBaseMs: 1_000,
        retryMaxMs: 10_000,
        maxAttempts: 3,
        disableAfterFailures: 5,
        disableAfterMs: 60_000,
        pollMs: 1_000,
        refreshMs: 60_000,
        secretOverlapMs: 60_000,
        allowHttp: true,
        allowPrivateHosts: true,
        userAgent: 'test',
      },
    })
    await service.start()
  }, 60_000)

  afterAll(async () => {
    await service?.stop()
    if (redis) {
      const keys = await redis.keys(`${prefix}*`)
      if (keys.length > 0) await redis.del(...keys.map((key) => key.slice(prefix.length)))
      redis.disconnect()
    }
    await db?.close()
  })

  const scheduled = async (deliveryId: string) => (await redis.zscore('wh:schedule', deliveryId)) !== null

  /**
   * A subscription (to a port nothing answers on) and an event for it published while ZADD fails:
   * the publish fails after its delivery was written to MongoDB, so that delivery is not scheduled.
   */
  const publishWhileScheduleDown = async (path: string, type: 'session.started' | 'session.closed') => {
    const subscription = await service.create({ url: `http://127.0.0.1:9/${path}`, event_types: [type] })
    const event = {
      id: eventId(type, `ses_${clock}`),
      type,
      occurred_at: new Date(clock),
      lot_id: 'lot-s',
      data: { session_id: `ses_${clock}` },
    }
    faults.zadd = true
    try {
      await expect(service.publish([event])).rejects.toThrow('Redis went away')
    } finally {
      faults.zadd = false
    }
    return subscription
  }

  it('makes a threshold crossing on the second run when recording it failed after the sides were swapped', async () => {
    const subscription = await service.create({
      url: 'http://127.0.0.1:9/thresholds',
      event_types: [THRESHOLD],
      lot_id: 'lot-t',
      threshold_free_spaces: 2,
    })
    const lot = (after_change: string, free: number): LotAvailability => ({
      lot_id: 'lot-t',
      after_change,
      at: new Date(clock),
      total: 3,
      free,
    })
    const crossings = async () =>
      (await repo.listDeliveries({ subscriptionId: subscription.id, limit: 10 })).map((d) => d.event_id)
    const directionOf = async (change: string) =>
      (await repo.findEvent(eventId(THRESHOLD, subscription.id, 'lot-t', change)))?.data.direction

    // The first observation: 3 free, at or above 2. Nothing crossed.
    await service.availability([lot('100-0', 3)])
    expect(await crossings()).toEqual([])

    // 1 free: below. Recording fails after Redis holds the new side; the batch comes again.
    faults.recordEvents = true
    await expect(service.availability([lot('101-0', 1)])).rejects.toThrow('MongoDB went away')
    faults.recordEvents = false
    await service.availability([lot('101-0', 1)])
    expect(await crossings()).toEqual([eventId(THRESHOLD, subscription.id, 'lot-t', '101-0')])
    expect(await directionOf('101-0')).toBe('below')

    // Back to 2 free: above. That batch told twice (recorded the first time) stays one crossing.
    await service.availability([lot('102-0', 2)])
    await service.availability([lot('102-0', 2)])
    // An older change told late changes nothing.
    await service.availability([lot('101-0', 1)])
    expect((await crossings()).sort()).toEqual(
      [
        eventId(THRESHOLD, subscription.id, 'lot-t', '101-0'),
        eventId(THRESHOLD, subscription.id, 'lot-t', '102-0'),
      ].sort(),
    )
    expect(await directionOf('102-0')).toBe('above')

    // Still above at a later change: no crossing.
    await service.availability([lot('103-0', 3)])
    expect(await crossings()).toHaveLength(2)
  })

  it('puts a delivery written while the schedule could not be back in it at the next sweep', async () => {
    const subscription = await publishWhileScheduleDown('sessions', 'session.started')
    const [delivery] = await repo.listDeliveries({ subscriptionId: subscription.id, limit: 10 })
    if (!delivery) throw new Error('the delivery was not written')
    expect(delivery.status).toBe('pending')
    expect(await scheduled(delivery._id)).toBe(false)

    // Not yet: it may be on its way into the schedule.
    await service.sweep()
    expect(await scheduled(delivery._id)).toBe(false)

    clock += PAST_A_LEASE_MS
    expect(await service.sweep()).toBeGreaterThanOrEqual(1)
    expect(await scheduled(delivery._id)).toBe(true)
  })

  it("leaves a disabled subscription's pending deliveries out of the schedule", async () => {
    const subscription = await publishWhileScheduleDown('disabled', 'session.closed')
    await service.update(subscription.id, { enabled: false })
    const [delivery] = await repo.listDeliveries({ subscriptionId: subscription.id, limit: 10 })
    if (!delivery) throw new Error('the delivery was not written')

    clock += PAST_A_LEASE_MS
    await service.sweep()
    expect(await scheduled(delivery._id)).toBe(false)
  })
})
