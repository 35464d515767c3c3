import type { EvService } from '../modules/ev/ev.service.ts'
import type { JobDefinition } from './scheduler.ts'

/**
 * Charges left running by an exit whose listener did not get through, and stops that did not
 * finish (a stop fact whose charge still holds its station): every minute, settled as the exit or
 * the stop would have. Idempotent.
 */
export function evChargingSweepJob(ev: EvService): JobDefinition {
  return { name: 'ev.charging-sweep', every: '1 minute', run: () => ev.sweep() }
}
