import { AppError } from '../../shared/errors.ts'
import type { Logger } from '../../shared/logger.ts'
import type { Mailer } from '../../shared/mailer.ts'
import type { JobsRepository } from './jobs.repository.ts'
import {
  type LotFigures,
  type MonthlyReport,
  monthBounds,
  monthlyReportText,
  previousMonth,
  renderMonthlyReport,
} from './monthly-report.ts'

const DAY_MS = 86_400_000
/** Stays longer than this that left in a month are not counted in its exits (the scan's bound). */
const LONGEST_STAY_MS = 62 * DAY_MS
/** At most this many customers are looked at per reminders run (pages of 100). */
const MAX_CUSTOMERS_PER_RUN = 20_000
const REMINDERS_CURSOR = 'reminders.inactive'

type Contact = { id: string; email: string; full_name: string; created_at: string }
type Page<T> = { data: T[]; next_cursor: string | null }
type Lot = { id: string; name: string; time_zone: string; currency: string }

export type MailJobsService = ReturnType<typeof createMailJobsService>

export function createMailJobsService(deps: {
  repo: JobsRepository
  mailer: Mailer
  /** Active accounts of a role, paged (accounts.admin.list). */
  accounts: (role: 'customer' | 'admin', cursor: string | undefined) => Promise<Page<Contact>>
  lots: (cursor: string | undefined) => Promise<Page<Lot>>
  /** Expired exports: file and record (exports.purgeExpired). */
  purgeExports: (now: Date) => Promise<number>
  /** Audit log records past their retention (audit.purgeExpired). */
  purgeAuditLog?: (now: Date) => Promise<number>
  /** Finished webhook deliveries, their attempts and unreferenced events past their retention (webhooks.purgeExpired). */
  purgeWebhooks?: (now: Date) => Promise<{ deliveries: number; attempts: number; events: number }>
  publicUrl: () => string
  logger: Logger
  settings: {
    inactiveDays: number
    idempotencyRetentionHours: number
    reservationSlotMinutes: number
    /** Stripe webhook event records are kept this long. */
    webhookEventRetentionDays?: number
    /** Customers looked at per reminders run (whole pages); the next run goes on from there. */
    maxCustomersPerRun?: number
  }
}) {
  const { repo, mailer, logger, settings } = deps

  async function purgeWebhooks(now: Date) {
    const purged = (await deps.purgeWebhooks?.(now)) ?? { deliveries: 0, attempts: 0, events: 0 }
    return {
      webhook_deliveries: purged.deliveries,
      webhook_attempts: purged.attempts,
      webhook_events: purged.events,
    }
  }

  async function* all<T>(
    page: (cursor: string | undefined) => Promise<Page<T>>,
    max = Number.POSITIVE_INFINITY,
  ) {
    let cursor: string | undefined
    let seen = 0
    do {
      const { data, next_cursor } = await page(cursor)
      for (const item of data) {
        if (seen++ >= max) return
        yield item
      }
      cursor = next_cursor ?? undefined
    } while (cursor)
  }

  async function monthlyReport(month: string, now = new Date()): Promise<MonthlyReport> {
    const lots: (LotFigures & { start: Date; end: Date; stayMinutes: number })[] = []
    for await (const lot of all(deps.lots)) {
      lots.push({
        lot_id: lot.id,
        lot_name: lot.name,
        time_zone: lot.time_zone,
        currency: lot.currency,
        entries: 0,
        exits: 0,
        revenue_gross: 0,
        refunds: 0,
        reservations: 0,
        average_stay_minutes: null,
        stayMinutes: 0,
        ...monthBounds(month, lot.time_zone),
      })
    }
    const byId = new Map(lots.map((l) => [l.lot_id, l]))
    const inMonth = (lot: { start: Date; end: Date }, at: Date | null | undefined) =>
      at instanceof Date && at >= lot.start && at < lot.end
    if (lots.length > 0) {
      // The widest range over the lots' time zones; each row is then placed by its own lot's month.
      const from = new Date(Math.min(...lots.map((l) => l.start.getTime())))
      const to = new Date(Math.max(...lots.map((l) => l.end.getTime())))
      for await (const rows of repo.sessionsBetween(from, to, LONGEST_STAY_MS)) {
        for (const s of rows) {
          const lot = byId.get(s.lot_id)
          if (!lot) continue
          if (inMonth(lot, s.entry_at)) lot.entries += 1
          if (s.exit_at && inMonth(lot, s.exit_at)) {
            lot.exits += 1
            lot.stayMinutes += (s.exit_at.getTime() - s.entry_at.getTime()) / 60_000
          }
        }
      }
      for await (const rows of repo.paymentsSettledBetween(from, to)) {
        for (const p of rows) {
          const lot = byId.get(p.lot_id)
          if (!lot || !inMonth(lot, p.settled_at)) continue
          if (['succeeded', 'partially_refunded', 'refunded'].includes(p.status))
            lot.revenue_gross += p.amount
        }
      }
      const lotOfPayment = new Map<string, string | undefined>()
      for await (const rows of repo.refundsBetween(from, to)) {
        for (const r of rows) {
          if (!lotOfPayment.has(r.payment_id))
            lotOfPayment.set(r.payment_id, await repo.paymentLot(r.payment_id))
          const lot = byId.get(lotOfPayment.get(r.payment_id) ?? '')
          if (lot && inMonth(lot, r.created_at)) lot.refunds += r.amount
        }
      }
      // Reservation prepayments and their refunds, membership fees: revenue as the day counters count it.
      for (const m of await repo.otherMoneyBetween(from, to)) {
        const lot = byId.get(m.lot_id ?? '')
        if (!lot || !inMonth(lot, m.at)) continue
        lot.revenue_gross += m.amount
        lot.refunds += m.refunded
      }
      for await (const rows of repo.reservationsStartingBetween(from, to)) {
        for (const r of rows) {
          const lot = byId.get(r.lot_id)
          if (lot && inMonth(lot, r.start_at)) lot.reservations += 1
        }
      }
    }
    return {
      month,
      generated_at: now,
      lots: lots.map(({ start: _s, end: _e, stayMinutes, ...figures }) => ({
        ...figures,
        average_stay_minutes: figures.exits > 0 ? Math.round((stayMinutes / figures.exits) * 10) / 10 : null,
      })),
    }
  }

  return {
    monthlyReport,

    async monthlyReportHtml(month: string): Promise<string> {
      const [y = 0, m = 0] = month.split('-').map(Number)
      if (y < 2000 || m < 1 || m > 12) throw new AppError('NOT_FOUND', `No report for ${month}`)
      return renderMonthlyReport(await monthlyReport(month))
    },

    /**
     * `reminders.inactive` (daily): customers without a session for `inactiveDays` (and with
     * an account at least that old) get one e-mail per period of that length. The fact
     * `reminders_sent/<userId>:<period start>` makes a second run of the period send nothing.
     */
    async remindInactive(now = new Date()) {
      const periodMs = settings.inactiveDays * DAY_MS
      const since = new Date(now.getTime() - periodMs)
      const period = new Date(Math.floor(now.getTime() / periodMs) * periodMs).toISOString().slice(0, 10)
      const active = await repo.activeUsersSince(since)
      const result = { checked: 0, sent: 0, already: 0, failed: 0, wrapped: false }
      const max = settings.maxCustomersPerRun ?? MAX_CUSTOMERS_PER_RUN
      // Each run goes on from where the last one stopped, in whole pages, and starts over once it
      // has seen the last page: a run stopped at `max` would otherwise see the first pages only.
      const stored = await repo.readCursor(REMINDERS_CURSOR)
      let cursor: string | undefined = stored || undefined
      const customers: Contact[] = []
      while (customers.length < max) {
        let page: Page<Contact>
        try {
          page = await deps.accounts('customer', cursor)
        } catch (error) {
          // A stored cursor the accounts list no longer takes: from the start.
          if (cursor === undefined || cursor !== (stored || undefined)) throw error
          logger.warn({ err: error }, 'reminders cursor refused; starting from the first customer')
          cursor = undefined
          continue
        }
        customers.push(...page.data)
        cursor = page.next_cursor ?? undefined
        if (!cursor) {
          result.wrapped = true
          break
        }
      }
      for (const customer of customers) {
        result.checked += 1
        if (active.has(customer.id) || Date.parse(customer.created_at) > since.getTime()) continue
        const fact = `${customer.id}:${period}`
        if (!(await repo.claimReminder(fact, 1))) {
          result.already += 1
          continue
        }
        try {
          await mailer.send({
            to: customer.email,
            subject: 'We miss you at Smart Parking',
            text: [
              `Hello ${customer.full_name},`,
              '',
              `You have not parked with us for ${settings.inactiveDays} days.`,
              `Find a free space near you and book ahead: ${deps.publicUrl()}/docs`,
              '',
              'You get this reminder at most once a period.',
            ].join('\n'),
          })
          result.sent += 1
        } catch (error) {
          await repo.releaseReminder(fact)
          result.failed += 1
          logger.warn({ err: error, user: customer.id }, 'reminder not sent; the next run retries')
        }
      }
      // Moved on once these customers were seen (a run that failed before redoes them: the facts
      // make that send nothing twice).
      await repo.writeCursor(REMINDERS_CURSOR, cursor ?? '')
      return result
    },

    /**
     * `reports.monthly` (daily check): the previous month's report goes to every active admin,
     * once each: `monthly_reports/<YYYY-MM>:<adminId>` is inserted before that admin's e-mail and
     * deleted again when it fails, so the next run sends to those it failed for, and only them.
     */
    async sendMonthlyReport(now = new Date()) {
      const month = previousMonth(now)
      const admins: Contact[] = []
      for await (const admin of all((c) => deps.accounts('admin', c), 1_000)) admins.push(admin)
      if (admins.length === 0) return { month, sent: 0, already: 0, failed: 0, skipped: 'no admins' }
      // A month sent whole before the claims were per admin (`monthly_reports/<YYYY-MM>`) is done.
      if (await repo.monthlyReportSentWhole(month))
        return { month, sent: 0, already: admins.length, failed: 0 }
      let rendered: { html: string; text: string; lots: number } | undefined
      const result = { month, sent: 0, already: 0, failed: 0, lots: 0 }
      for (const admin of admins) {
        const fact = `${month}:${admin.id}`
        if (!(await repo.claimMonthlyReport(fact, 1))) {
          result.already += 1
          continue
        }
        try {
          if (!rendered) {
            const report = await monthlyReport(month, now)
            rendered = {
              html: renderMonthlyReport(report),
              text: monthlyReportText(report),
              lots: report.lots.length,
            }
            result.lots = rendered.lots
          }
          await mailer.send({
            to: admin.email,
            subject: `Parking activity report ${month}`,
            text: rendered.text,
            html: rendered.html,
          })
          result.sent += 1
        } catch (error) {
          await repo.releaseMonthlyReport(fact)
          result.failed += 1
          logger.warn(
            { err: error, admin: admin.id, month },
            'monthly report not sent to an admin; the next run retries',
          )
        }
      }
      return result
    },

    /**
     * `data.purge` (daily): what is past its retention goes, each kind in bounded batches; a
     * second run finds nothing more to delete.
     */
    async purge(now = new Date()) {
      const t = now.getTime()
      return {
        idempotency_keys: await repo.purgeIdempotencyKeys(
          new Date(t - settings.idempotencyRetentionHours * 3_600_000),
        ),
        exports: await deps.purgeExports(now),
        audit_log: (await deps.purgeAuditLog?.(now)) ?? 0,
        ...(await purgeWebhooks(now)),
        reservation_slots: (
          await repo.purgeSlots(new Date(t - DAY_MS), settings.reservationSlotMinutes * 60_000)
        ).deleted,
        stripe_events: await repo.purgeStripeEvents(
          new Date(t - (settings.webhookEventRetentionDays ?? 30) * DAY_MS),
        ),
      }
    },
  }
}
