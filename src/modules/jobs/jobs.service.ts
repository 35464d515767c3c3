import type { JobStatus, Scheduler } from '../../jobs/scheduler.ts'
import { AppError } from '../../shared/errors.ts'

const iso = (d: Date | null) => (d ? d.toISOString() : null)

/** One line for the jobs of earlier capabilities, which define none themselves. */
const knownDescriptions: Record<string, string> = {
  'payments.reconcile': 'Settles or fails Stripe payments whose webhook never came; retries refunds in doubt',
  'reservations.tick': 'Places due reservation holds, releases ended ones, expires unpaid prepayments',
  'reservations.no-show': 'Turns reservations past start + grace without check-in into no-shows',
  'memberships.renewals': 'Cancels unpaid memberships, renews and charges auto-renewals, ends expired ones',
  'ev.charging-sweep': 'Finishes EV charges left running by an exit, and stops that did not finish',
}

export function toJobView(job: JobStatus) {
  return {
    name: job.name,
    description: job.description ?? knownDescriptions[job.name] ?? null,
    schedule: job.schedule,
    last_run_at: iso(job.last_run_at),
    last_finished_at: iso(job.last_finished_at),
    next_run_at: iso(job.next_run_at),
    fail_count: job.fail_count,
    last_failure: job.last_failure ? { at: iso(job.last_failure.at), reason: job.last_failure.reason } : null,
    running: job.running,
    last_manual_run: job.last_manual_run
      ? {
          started_at: job.last_manual_run.started_at.toISOString(),
          finished_at: iso(job.last_manual_run.finished_at),
          error: job.last_manual_run.error,
        }
      : null,
  }
}

export type JobsService = ReturnType<typeof createJobsService>

/** The admins' view of the jobs door: every defined job and its runs, and a run on demand. */
export function createJobsService(deps: { scheduler: () => Scheduler }) {
  return {
    async list() {
      return { data: (await deps.scheduler().list()).map(toJobView) }
    },

    /** Runs a job now in this process and answers how it went (a failure is an answer, not a 500). */
    async run(name: string) {
      const scheduler = deps.scheduler()
      if (!scheduler.has(name)) throw new AppError('NOT_FOUND', `No job ${name}`)
      const started = new Date()
      try {
        const result = await scheduler.runNow(name)
        return {
          name,
          status: 'succeeded' as const,
          started_at: started.toISOString(),
          finished_at: new Date().toISOString(),
          result: JSON.parse(JSON.stringify(result ?? null)) as unknown,
          error: null,
        }
      } catch (error) {
        return {
          name,
          status: 'failed' as const,
          started_at: started.toISOString(),
          finished_at: new Date().toISOString(),
          result: null,
          error: (error as Error).message,
        }
      }
    },
  }
}
