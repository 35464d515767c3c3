import { randomBytes } from 'node:crypto'
import { inject } from 'vitest'
import { loadConfig } from '../../src/config.ts'
import type { DependencyUrls } from '../../src/embedded/embedded-stack.ts'
import { type Platform, startPlatform } from '../../src/platform.ts'
import { createLogger } from '../../src/shared/logger.ts'

export type TestPlatform = Platform & {
  /** In-process request against the app; no socket involved. */
  request(path: string, init?: RequestInit): Promise<Response>
  urls: DependencyUrls
}

/** A database name of its own for each test platform, so that test files never share data. */
export function isolatedDatabase(mongodbUrl: string): string {
  const url = new URL(mongodbUrl)
  url.pathname = `/t_${randomBytes(6).toString('hex')}`
  return url.toString()
}

/**
 * The real platform (connections, migrations, HTTP server on a free port) on the shared test
 * services or on the URLs given.
 */
export async function startTestPlatform(
  env: Record<string, string> = {},
  urls: Partial<DependencyUrls> = {},
): Promise<TestPlatform> {
  const services = inject('services')
  const resolved: DependencyUrls = {
    mongodb: urls.mongodb ?? isolatedDatabase(services.mongodb),
    redis: urls.redis ?? services.redis,
    mqtt: urls.mqtt ?? services.mqtt,
  }
  const config = loadConfig({
    PORT: '0',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    // Test files share one Redis: each platform keeps to its own keys.
    REDIS_KEY_PREFIX: `t_${randomBytes(4).toString('hex')}:`,
    // Test files share one broker: a platform that ingests takes sensor messages in a share group
    // of its own, and only test files about ingestion turn it on.
    INGEST_ENABLED: 'false',
    INGEST_SHARE_GROUP: `t_${randomBytes(4).toString('hex')}`,
    INGEST_CLIENT_ID: `t_${randomBytes(6).toString('hex')}`,
    ...env,
  })
  const platform = await startPlatform(config, resolved, createLogger(config.LOG_LEVEL))
  return {
    ...platform,
    urls: resolved,
    request: async (path, init) => await platform.app.request(path, init),
  }
}
