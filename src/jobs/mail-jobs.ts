import type { MailJobsService } from '../modules/jobs/mail-jobs.service.ts'
import type { JobDefinition } from './scheduler.ts'

/** Daily: one reminder per period to customers without a session (`reminders_sent/<user>:<period>`). */
export function remindersInactiveJob(jobs: MailJobsService): JobDefinition {
  return {
    name: 'reminders.inactive',
    every: '1 day',
    description: 'E-mails customers who have not parked for INACTIVE_REMINDER_DAYS, once per period',
    run: () => jobs.remindInactive(),
  }
}

/** Daily check: the previous month's HTML report to every admin, once each (`monthly_reports/YYYY-MM:<admin>`). */
export function reportsMonthlyJob(jobs: MailJobsService): JobDefinition {
  return {
    name: 'reports.monthly',
    every: '1 day',
    description: "E-mails the previous month's activity report to admins, once per month",
    run: () => jobs.sendMonthlyReport(),
  }
}

/** Daily: idempotency records, expired exports, past reservation slots, old webhook events. */
export function dataPurgeJob(jobs: MailJobsService): JobDefinition {
  return {
    name: 'data.purge',
    every: '1 day',
    description: 'Deletes expired data: idempotency keys, exports, past reservation slots, webhook events',
    run: () => jobs.purge(),
  }
}
