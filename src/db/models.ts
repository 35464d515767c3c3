import { accountModels } from '../modules/accounts/accounts.model.ts'
import { tokenModels } from '../modules/accounts/tokens.model.ts'
import { analyticsModels } from '../modules/analytics/analytics.model.ts'
import { auditModels } from '../modules/audit/audit.model.ts'
import { discountModels } from '../modules/discounts/discounts.model.ts'
import { evModels } from '../modules/ev/ev.model.ts'
import { exportModels } from '../modules/exports/exports.model.ts'
import { facilityModels } from '../modules/facilities/facilities.model.ts'
import { jobModels } from '../modules/jobs/jobs.model.ts'
import { membershipModels } from '../modules/memberships/memberships.model.ts'
import { occupancyModels } from '../modules/occupancy/occupancy.model.ts'
import { paymentModels } from '../modules/payments/payments.model.ts'
import { pricingModels } from '../modules/pricing/pricing.model.ts'
import { registrationModels } from '../modules/registrations/registrations.model.ts'
import { reservationModels } from '../modules/reservations/reservations.model.ts'
import { sensorModels } from '../modules/sensors/sensors.model.ts'
import { sessionModels } from '../modules/sessions/sessions.model.ts'
import { vehicleModels } from '../modules/vehicles/vehicles.model.ts'
import { webhookModels } from '../modules/webhooks/webhooks.model.ts'
import { idempotencyModels } from '../shared/idempotency.ts'
import type { ModelRegistration } from '../shared/mongo.ts'

/**
 * Every capability's models, created with their indexes at start before traffic. Each
 * capability adds its registration here as it lands.
 */
export const modelRegistrations = [
  accountModels,
  tokenModels,
  vehicleModels,
  registrationModels,
  facilityModels,
  sensorModels,
  occupancyModels,
  pricingModels,
  sessionModels,
  discountModels,
  idempotencyModels,
  paymentModels,
  reservationModels,
  membershipModels,
  evModels,
  exportModels,
  jobModels,
  analyticsModels,
  auditModels,
  webhookModels,
] as unknown as readonly ModelRegistration[]
