import { Redis } from 'ioredis'
import { DependencyDown } from './errors.ts'
import { withTimeout } from './timeout.ts'

export type RedisClient = Redis

/**
 * ioredis reconnects by itself; with the offline queue off, a command issued while Redis is down
 * fails at once (answered as 503) instead of piling up in memory.
 */
export async function connectRedis(
  url: string,
  onError: (error: Error) => void,
  keyPrefix = '',
): Promise<RedisClient> {
  const client = new Redis(url, {
    keyPrefix,
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2_000,
    retryStrategy: (attempt) => Math.min(attempt * 100, 1_000),
    // A client that reconnects while a restarted Redis loads its append-only file asks again
    // after Redis's loading estimate: at least 1 s, up to this (ioredis' default: 10 s), so that
    // the platform stayed off Redis for seconds after it was back. Ask every 100 ms instead.
    maxLoadingRetryTime: 100,
    noDelay: true,
  })
  client.on('error', onError)
  try {
    await client.connect()
  } catch (error) {
    client.disconnect()
    throw error
  }
  return client
}

export async function pingRedis(client: RedisClient, timeoutMs: number): Promise<void> {
  if (client.status !== 'ready') throw new DependencyDown(`connection ${client.status}`)
  await withTimeout(client.ping(), timeoutMs, 'redis ping')
}
