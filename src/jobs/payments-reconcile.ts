import type { PaymentsService } from '../modules/payments/payments.service.ts'
import type { JobDefinition } from './scheduler.ts'

/**
 * Stripe payments whose webhook never came: every minute, all those pending longer than the
 * configured age are asked about at Stripe and settled or failed as the webhook would have;
 * intents never confirmed for 30 minutes are canceled, and refunds whose answer was lost are
 * asked about again.
 */
export function paymentsReconcileJob(payments: PaymentsService, olderThanMs: number): JobDefinition {
  return { name: 'payments.reconcile', every: '1 minute', run: () => payments.reconcile(olderThanMs) }
}
