import { mkdtempSync } from 'node:fs'
import { join } from 'node:path'
import {
  ferretDb,
  type LocalService,
  mosquitto,
  redis,
  stripeMock,
  versitygw,
} from '../../src/embedded/local-services.ts'
import { freePort } from '../../src/embedded/service-process.ts'

export type ServiceUrls = { mongodb: string; redis: string; mqtt: string; stripe: string; s3: string }

export const artifactsDir = new URL('../../.test-artifacts/', import.meta.url).pathname

/** A fresh directory under .test-artifacts/ (ignored by git), kept after the run for inspection. */
export function scratchDir(prefix: string): string {
  return mkdtempSync(join(artifactsDir, `${prefix}-`))
}

export type ServiceSet<K extends string> = {
  urls: Record<K, string>
  services: Record<K, LocalService>
  stop(): Promise<void>
}

const makers = {
  mongodb: async (dir: string) => ferretDb(join(dir, 'ferretdb'), await freePort(), 'test'),
  redis: async (dir: string) => redis(join(dir, 'redis'), await freePort()),
  mqtt: async (dir: string) => mosquitto(join(dir, 'mosquitto'), await freePort()),
  stripe: async (dir: string) => stripeMock(join(dir, 'stripe-mock'), await freePort(), await freePort()),
  s3: async (dir: string) => versitygw(join(dir, 'versitygw'), await freePort()),
}

/** Starts the named services on free ports, each with its data under `dir`. */
export async function startServices<K extends keyof typeof makers>(
  dir: string,
  names: readonly K[],
): Promise<ServiceSet<K>> {
  const entries = await Promise.all(names.map(async (name) => [name, await makers[name](dir)] as const))
  const services = Object.fromEntries(entries) as Record<K, LocalService>
  const stop = async () => {
    await Promise.all(Object.values<LocalService>(services).map((s) => s.process.stop()))
  }
  try {
    await Promise.all(Object.values<LocalService>(services).map((s) => s.process.start()))
  } catch (error) {
    await stop()
    throw error
  }
  const urls = Object.fromEntries(entries.map(([name, s]) => [name, s.url])) as Record<K, string>
  return { urls, services, stop }
}

export const allServices = ['mongodb', 'redis', 'mqtt', 'stripe', 's3'] as const
