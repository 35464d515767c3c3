import type { MembershipsService } from '../modules/memberships/memberships.service.ts'
import type { JobDefinition } from './scheduler.ts'

/**
 * Memberships over time, every 10 minutes: Stripe payments never made are canceled, automatic
 * renewals are made and paid shortly before a period ends, ended memberships release their
 * claims. Idempotent: running it twice is running it once.
 */
export function membershipsRenewalsJob(memberships: MembershipsService): JobDefinition {
  return { name: 'memberships.renewals', every: '10 minutes', run: () => memberships.runRenewals() }
}
