import type { ReservationsService } from '../modules/reservations/reservations.service.ts'
import type { JobDefinition } from './scheduler.ts'

/**
 * Every minute: `rsv:` holds that are due (check-in opened) are placed in the hot state, and holds
 * of reservations that ended are let go; prepaid reservations unpaid past the timeout expire.
 * Idempotent: a hold is placed once per holder, an outcome is one insert.
 */
export function reservationsTickJob(reservations: ReservationsService): JobDefinition {
  return {
    name: 'reservations.tick',
    every: '1 minute',
    run: async () => ({ ...(await reservations.tick()), ...(await reservations.expireUnpaid()) }),
  }
}

/** Every minute: reservations past start + grace without check-in become no-shows (once). */
export function reservationsNoShowJob(reservations: ReservationsService): JobDefinition {
  return { name: 'reservations.no-show', every: '1 minute', run: () => reservations.noShows() }
}
