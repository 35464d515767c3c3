import type { AccountsService } from '../modules/accounts/accounts.service.ts'
import type { TokenService } from '../modules/accounts/tokens.service.ts'
import type { AnalyticsService } from '../modules/analytics/analytics.service.ts'
import type { PredictionsService } from '../modules/analytics/predictions.service.ts'
import type { AuditService } from '../modules/audit/audit.service.ts'
import type { DiscountsService } from '../modules/discounts/discounts.service.ts'
import type { EvService } from '../modules/ev/ev.service.ts'
import type { ExportsService } from '../modules/exports/exports.service.ts'
import type { FacilitiesService } from '../modules/facilities/facilities.service.ts'
import type { HealthService } from '../modules/health/health.service.ts'
import type { JobsService } from '../modules/jobs/jobs.service.ts'
import type { MailJobsService } from '../modules/jobs/mail-jobs.service.ts'
import type { MembershipsService } from '../modules/memberships/memberships.service.ts'
import type { OccupancyService } from '../modules/occupancy/occupancy.service.ts'
import type { PaymentsService } from '../modules/payments/payments.service.ts'
import type { PricingService } from '../modules/pricing/pricing.service.ts'
import type { RegistrationsService } from '../modules/registrations/registrations.service.ts'
import type { ReportsService } from '../modules/reports/reports.service.ts'
import type { ReservationsService } from '../modules/reservations/reservations.service.ts'
import type { DeviceCaller, SensorsService } from '../modules/sensors/sensors.service.ts'
import type { SessionsService } from '../modules/sessions/sessions.service.ts'
import type { VehiclesService } from '../modules/vehicles/vehicles.service.ts'
import type { WebhooksService } from '../modules/webhooks/webhooks.service.ts'
import type { Logger } from '../shared/logger.ts'
import type { Metrics } from '../shared/metrics.ts'
import type { DocumentStorage } from '../shared/storage.ts'
import type { Principal } from './access.ts'

/** What handlers reach through `c.var`: wired once in the composition root. */
export type Services = {
  health: HealthService
  metrics: Metrics
  storage: DocumentStorage
  tokens: TokenService
  accounts: AccountsService
  vehicles: VehiclesService
  registrations: RegistrationsService
  facilities: FacilitiesService
  sensors: SensorsService
  occupancy: OccupancyService
  pricing: PricingService
  sessions: SessionsService
  discounts: DiscountsService
  payments: PaymentsService
  reservations: ReservationsService
  memberships: MembershipsService
  ev: EvService
  analytics: AnalyticsService
  reports: ReportsService
  predictions: PredictionsService
  exports: ExportsService
  jobs: JobsService
  mailJobs: MailJobsService
  audit: AuditService
  webhooks: WebhooksService
}

export type AppEnv = {
  Variables: {
    requestId: string
    logger: Logger
    services: Services
    /** Set by the access guard on routes that need a signed-in caller. */
    principal?: Principal
    /** Set by the device guard of the ingest route (HTTP Basic with a device id and secret). */
    device?: DeviceCaller
  }
}
