import { mkdirSync } from 'node:fs'
import type { TestProject } from 'vitest/node'
import { allServices, artifactsDir, type ServiceUrls, scratchDir, startServices } from './services.ts'

declare module 'vitest' {
  export interface ProvidedContext {
    services: ServiceUrls
  }
}

/**
 * Starts the shared services once per run, unless test/run.ts already did and passed their URLs
 * in TEST_SERVICES. Tests reach them with inject('services').
 */
export default async function setup(project: TestProject) {
  const given = process.env.TEST_SERVICES
  if (given) {
    project.provide('services', JSON.parse(given) as ServiceUrls)
    return
  }
  mkdirSync(artifactsDir, { recursive: true })
  const set = await startServices(scratchDir('services'), allServices)
  project.provide('services', set.urls)
  return () => set.stop()
}
