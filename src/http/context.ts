import type { HealthService } from '../modules/health/health.service.ts'
import type { Logger } from '../shared/logger.ts'
import type { Metrics } from '../shared/metrics.ts'
import type { DocumentStorage } from '../shared/storage.ts'

/** What handlers reach through `c.var`: wired once in the composition root. */
export type Services = {
  health: HealthService
  metrics: Metrics
  storage: DocumentStorage
}

export type AppEnv = {
  Variables: {
    requestId: string
    logger: Logger
    services: Services
  }
}
