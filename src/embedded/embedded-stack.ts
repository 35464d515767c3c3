import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Config } from '../config.ts'
import type { Logger } from '../shared/logger.ts'
import { lockDataDir } from './data-dir-lock.ts'
import { ferretDb, type LocalService, mosquitto, redis, stripeMock } from './local-services.ts'
import type { Exit } from './service-process.ts'

export type DependencyUrls = {
  mongodb: string
  redis: string
  mqtt: string
  /** The embedded stripe-mock, when neither STRIPE_API_URL nor STRIPE_SECRET_KEY is set. */
  stripe?: string
}

export type EmbeddedStack = {
  urls: DependencyUrls
  /** Which dependencies run as our child processes. */
  embedded: string[]
  stop(): Promise<void>
  /** Synchronous last resort, for an exit that skipped the graceful path. */
  killSync(): void
}

/**
 * Starts a local FerretDB, Redis and Mosquitto for each URL the configuration leaves unset, with
 * their data under DATA_DIR, so that `npm start` runs with no setup. They stop in reverse order.
 */
export async function startEmbeddedStack(config: Config, logger: Logger): Promise<EmbeddedStack> {
  const data = config.paths.data
  const wanted: { key: keyof DependencyUrls; make: () => LocalService | Promise<LocalService> }[] = []
  if (!config.MONGODB_URI)
    wanted.push({
      key: 'mongodb',
      make: () => ferretDb(join(data, 'ferretdb'), config.EMBEDDED_MONGODB_PORT),
    })
  if (!config.REDIS_URL)
    wanted.push({ key: 'redis', make: () => redis(join(data, 'redis'), config.EMBEDDED_REDIS_PORT) })
  if (!config.MQTT_URL)
    wanted.push({ key: 'mqtt', make: () => mosquitto(join(data, 'mosquitto'), config.EMBEDDED_MQTT_PORT) })
  // Payments work out of the box: a stripe-mock (stateless, test mode) unless a Stripe is configured.
  if (!config.STRIPE_API_URL && !config.STRIPE_SECRET_KEY)
    wanted.push({
      key: 'stripe',
      make: () => stripeMock(join(data, 'stripe-mock'), config.EMBEDDED_STRIPE_PORT, 0),
    })

  const unlock = wanted.length > 0 ? await lockDataDir(data) : () => {}
  const started: LocalService[] = []
  let stopping = false
  const stop = async () => {
    stopping = true
    for (const service of started.reverse()) {
      logger.info({ service: service.process.name }, 'stopping embedded service')
      await service.process.stop()
    }
    started.length = 0
    unlock()
  }
  const urls: DependencyUrls = {
    mongodb: config.MONGODB_URI ?? '',
    redis: config.REDIS_URL ?? '',
    mqtt: config.MQTT_URL ?? '',
  }
  const services = await Promise.all(wanted.map(async ({ key, make }) => ({ key, service: await make() })))
  // Every created service is stopped on failure, including those whose start did succeed.
  started.push(...services.map(({ service }) => service))
  const results = await Promise.allSettled(services.map(({ service }) => service.process.start()))
  const failure = results.find((result) => result.status === 'rejected')
  if (failure) {
    await stop()
    throw failure.reason
  }
  for (const { key, service } of services) {
    service.process.onCrash = (exit) => void restart(service, exit)
    urls[key] = service.url
    logger.info({ service: service.process.name, pid: service.process.pid }, 'embedded service started')
  }

  async function restart(service: LocalService, exit: Exit) {
    const name = service.process.name
    logger.error({ service: name, ...exit }, 'embedded service exited unexpectedly; restarting it')
    for (let attempt = 1; !stopping; attempt++) {
      await sleep(Math.min(500 * 2 ** attempt, 30_000))
      if (stopping) return
      try {
        await service.process.start()
        logger.info({ service: name, pid: service.process.pid }, 'embedded service restarted')
        return
      } catch (error) {
        logger.error(
          { service: name, attempt, reason: (error as Error).message },
          'embedded service restart failed',
        )
      }
    }
  }

  return {
    urls,
    embedded: wanted.map((w) => w.key),
    stop,
    killSync: () => {
      for (const service of started) service.process.killSync()
      unlock()
    },
  }
}
