import { AppError } from '../../shared/errors.ts'
import { uuidv7 } from '../../shared/ids.ts'
import type { Logger } from '../../shared/logger.ts'
import type { Mailer } from '../../shared/mailer.ts'
import type { DocumentStorage } from '../../shared/storage.ts'
import { type HistoryRow, historyHeader, historyLine } from './exports.csv.ts'
import type { ExportRecord } from './exports.model.ts'
import type { ExportsRepository } from './exports.repository.ts'

export const EXPORT_RUN_JOB = 'exports.run'
/** A run that has not finished after this long died with its process: the sweep fails it. */
const DEAD_RUN_MS = 15 * 60_000
/** A ready export whose e-mail was not sent this long after is told again by the sweep. */
const NOTICE_RETRY_AFTER_MS = 60_000
/** A notice claim this old without `notified` was left by a sender that died: taken over. */
const NOTICE_STALE_MS = 5 * 60_000
const SWEEP_PAGE = 50
/** The most ready exports one sweep looks at for e-mails not sent (pages of SWEEP_PAGE). */
const NOTICE_SWEEP_MAX = 1_000
/** The most sessions one export reads (pages of 100). */
const MAX_ROWS = 100_000

/** A session of the history, as the sessions capability shows it. */
export type HistorySession = {
  id: string
  ticket_number: string
  lot_id: string
  license_plate: string
  status: string
  entry_time: string
  exit_time: string | null
  fee_total: number | null
  currency: string
}

/** A payment of the history, as the payments capability shows it. */
export type HistoryPayment = {
  session_id: string
  payment_method: string
  amount: number
  refunded_amount: number
  status: string
  receipt_number: string | null
}

type Page<T> = { data: T[]; next_cursor: string | null }

/** What an export reads: the customer's own sessions and payments, paged, and lot names. */
export type HistorySource = {
  sessions(userId: string, cursor: string | undefined): Promise<Page<HistorySession>>
  payments(userId: string, cursor: string | undefined): Promise<Page<HistoryPayment>>
  lotName(lotId: string): Promise<string | null>
  /** The account's address, undefined when the account is gone. */
  contact(userId: string): Promise<{ email: string; full_name: string } | undefined>
}

export type ExportView = {
  id: string
  kind: 'parking_history'
  status: ExportRecord['status']
  from: string | null
  to: string | null
  rows: number | null
  size: number | null
  error: string | null
  created_at: string
  ready_at: string | null
  expires_at: string
  download_path: string | null
}

const downloadPath = (id: string) => `/api/v1/exports/${id}/download`
const iso = (d: Date | null) => (d ? d.toISOString() : null)

export function toExportView(r: ExportRecord): ExportView {
  return {
    id: r._id,
    kind: r.kind,
    status: r.status,
    from: iso(r.from),
    to: iso(r.to),
    rows: r.rows,
    size: r.size,
    error: r.error,
    created_at: r.created_at.toISOString(),
    ready_at: iso(r.ready_at),
    expires_at: r.expires_at.toISOString(),
    download_path: r.status === 'ready' ? downloadPath(r._id) : null,
  }
}

export type ExportsService = ReturnType<typeof createExportsService>

export function createExportsService(deps: {
  repo: ExportsRepository
  storage: DocumentStorage
  mailer: Mailer
  history: HistorySource
  /** Queues `exports.run` (the scheduler, bound late). */
  enqueue: (name: string, data: unknown) => Promise<void>
  /** Base URL for links in e-mails, e.g. https://parking.example.com (bound late: the port). */
  publicUrl: () => string
  logger: Logger
  settings: { retentionDays: number }
}) {
  const { repo, logger } = deps

  async function ownExport(userId: string, id: string): Promise<ExportRecord> {
    const record = await repo.findExport(id)
    // Another customer's export is a 404: its existence is not theirs to learn.
    if (!record || record.user_id !== userId) throw new AppError('NOT_FOUND', `No export ${id}`)
    return record
  }

  async function buildCsv(record: ExportRecord): Promise<{ body: Uint8Array; rows: number }> {
    const paid = new Map<
      string,
      { paid: number; refunded: number; methods: Set<string>; receipts: string[] }
    >()
    let cursor: string | undefined
    do {
      const page = await deps.history.payments(record.user_id, cursor)
      for (const p of page.data) {
        const entry = paid.get(p.session_id) ?? { paid: 0, refunded: 0, methods: new Set(), receipts: [] }
        if (['succeeded', 'partially_refunded', 'refunded'].includes(p.status)) {
          entry.paid += p.amount
          entry.refunded += p.refunded_amount
          entry.methods.add(p.payment_method)
          if (p.receipt_number) entry.receipts.push(p.receipt_number)
        }
        paid.set(p.session_id, entry)
      }
      cursor = page.next_cursor ?? undefined
    } while (cursor)

    const lots = new Map<string, string | null>()
    const parts = [historyHeader()]
    let rows = 0
    cursor = undefined
    do {
      const page = await deps.history.sessions(record.user_id, cursor)
      for (const s of page.data) {
        const entered = Date.parse(s.entry_time)
        if (record.from && entered < record.from.getTime()) continue
        if (record.to && entered >= record.to.getTime()) continue
        if (!lots.has(s.lot_id)) lots.set(s.lot_id, await deps.history.lotName(s.lot_id))
        const money = paid.get(s.id)
        const row: HistoryRow = {
          session_id: s.id,
          ticket_number: s.ticket_number,
          lot_id: s.lot_id,
          lot_name: lots.get(s.lot_id) ?? null,
          license_plate: s.license_plate,
          entry_time: s.entry_time,
          exit_time: s.exit_time,
          duration_minutes: s.exit_time ? Math.round((Date.parse(s.exit_time) - entered) / 60_000) : null,
          status: s.status,
          fee_total: s.fee_total,
          amount_paid: money?.paid ?? 0,
          amount_refunded: money?.refunded ?? 0,
          currency: s.currency,
          payment_methods: money ? [...money.methods].sort().join(' ') : '',
          receipt_numbers: money ? money.receipts.join(' ') : '',
        }
        parts.push(historyLine(row))
        rows += 1
      }
      cursor = rows < MAX_ROWS ? (page.next_cursor ?? undefined) : undefined
    } while (cursor)
    return { body: new TextEncoder().encode(parts.join('')), rows }
  }

  /** Tells the owner that the export is ready, once (the notice claim decides who sends). */
  async function notify(record: ExportRecord, now = new Date()): Promise<boolean> {
    if (!(await repo.claimNotice(record._id))) {
      // Held by a send at work, or left by one that died before it could send or free it.
      const claim = await repo.findNotice(record._id)
      if (!claim || now.getTime() - claim.created_at.getTime() < NOTICE_STALE_MS) return false
      await repo.dropStaleNotice(claim)
      if (!(await repo.claimNotice(record._id))) return false
    }
    try {
      const contact = await deps.history.contact(record.user_id)
      if (contact) {
        const link = `${deps.publicUrl()}${downloadPath(record._id)}`
        const until = record.expires_at.toISOString().slice(0, 10)
        await deps.mailer.send({
          to: contact.email,
          subject: 'Your parking history export is ready',
          text: [
            `Hello ${contact.full_name},`,
            '',
            `Your parking history export (${record.rows ?? 0} sessions) is ready.`,
            `Download it, signed in to your account, until ${until}:`,
            link,
            '',
            `Export id: ${record._id}`,
          ].join('\n'),
        })
      }
      await repo.updateExport(record._id, { notified: true })
      return true
    } catch (error) {
      // Free the claim: the sweep tries again.
      await repo.releaseNotice(record._id)
      logger.warn({ err: error, export: record._id }, 'export e-mail not sent; the sweep retries')
      return false
    }
  }

  /** Runs an export once: the insert of its run claim decides who runs it. */
  async function run(exportId: string): Promise<{ ran: boolean; status?: ExportRecord['status'] }> {
    const record = await repo.findExport(exportId)
    if (record?.status !== 'queued') return { ran: false }
    if (!(await repo.claimRun(exportId))) return { ran: false }
    try {
      // In the try: a failed write here fails the export instead of leaving it queued.
      await repo.updateExport(exportId, { status: 'running', started_at: new Date() })
      const { body, rows } = await buildCsv(record)
      const key = `exports/${record.user_id}/${exportId}.csv`
      await deps.storage.put(key, body, 'text/csv; charset=utf-8')
      const ready: Partial<ExportRecord> = {
        status: 'ready',
        rows,
        size: body.byteLength,
        storage_key: key,
        ready_at: new Date(),
      }
      await repo.updateExport(exportId, ready)
      await notify({ ...record, ...ready } as ExportRecord)
      return { ran: true, status: 'ready' }
    } catch (error) {
      logger.warn({ err: error, export: exportId }, 'export failed')
      await repo.updateExport(exportId, {
        status: 'failed',
        error: 'The export could not be made; request a new one',
      })
      return { ran: true, status: 'failed' }
    }
  }

  return {
    run,

    async request(userId: string, input: { from?: string | undefined; to?: string | undefined }) {
      const from = input.from ? new Date(input.from) : null
      const to = input.to ? new Date(input.to) : null
      if (from && to && from.getTime() >= to.getTime()) {
        // A rule across two fields that the schema cannot state: 422, not a schema violation.
        throw new AppError('UNPROCESSABLE', '`from` must be before `to`', {
          extensions: { reason: 'empty_range' },
        })
      }
      const now = new Date()
      const record: ExportRecord = {
        _id: uuidv7(now.getTime()),
        user_id: userId,
        kind: 'parking_history',
        from,
        to,
        status: 'queued',
        rows: null,
        size: null,
        storage_key: null,
        error: null,
        notified: false,
        created_at: now,
        started_at: null,
        ready_at: null,
        expires_at: new Date(now.getTime() + deps.settings.retentionDays * 86_400_000),
      }
      await repo.insertExport(record)
      try {
        await deps.enqueue(EXPORT_RUN_JOB, { export_id: record._id })
      } catch (error) {
        // Still queued: the sweep (every minute) picks it up.
        logger.warn({ err: error, export: record._id }, 'export not enqueued; left to the sweep')
      }
      return toExportView(record)
    },

    async get(userId: string, id: string): Promise<ExportView> {
      return toExportView(await ownExport(userId, id))
    },

    async download(userId: string, id: string): Promise<{ body: Uint8Array; filename: string }> {
      const record = await ownExport(userId, id)
      if (record.status !== 'ready' || !record.storage_key) {
        throw new AppError('CONFLICT', `The export ${id} is ${record.status}, not ready`, {
          extensions: { reason: 'not_ready', export_status: record.status },
        })
      }
      const stored = await deps.storage.get(record.storage_key)
      if (!stored) throw new AppError('NOT_FOUND', `The file of export ${id} is gone`)
      return {
        body: stored.body,
        filename: `parking-history-${record.created_at.toISOString().slice(0, 10)}.csv`,
      }
    },

    /**
     * The `exports.sweep` job: runs queued exports left behind (an enqueue lost, a process that
     * stopped first), fails runs that died, and sends e-mails that failed. Bounded pages.
     */
    async sweep(now = new Date()) {
      const result = { ran: 0, rerun_dead: 0, failed_dead: 0, notified: 0 }
      for (const record of await repo.listByStatus('queued', SWEEP_PAGE)) {
        if ((await run(record._id)).ran) {
          result.ran += 1
          continue
        }
        // Still queued under a run claim older than a run may take: its holder died between the
        // claim and its first write. Drop that claim (the one seen) and run it; the insert decides.
        const claim = await repo.findRun(record._id)
        if (!claim || now.getTime() - claim.created_at.getTime() <= DEAD_RUN_MS) continue
        await repo.dropStaleRun(claim)
        if ((await run(record._id)).ran) {
          result.ran += 1
          result.rerun_dead += 1
        }
      }
      for (const record of await repo.listByStatus('running', SWEEP_PAGE)) {
        if (record.started_at && now.getTime() - record.started_at.getTime() > DEAD_RUN_MS) {
          // The sweep is the only writer left: the claim holder is gone.
          await repo.updateExport(record._id, {
            status: 'failed',
            error: 'The export stopped; request a new one',
          })
          result.failed_dead += 1
        }
      }
      // Only the ready exports not told yet, paged: those told before never crowd them out.
      let after: string | undefined
      for (let seen = 0; seen < NOTICE_SWEEP_MAX; ) {
        const page = await repo.listUnnotified(SWEEP_PAGE, after)
        for (const record of page) {
          if (!record.ready_at || now.getTime() - record.ready_at.getTime() < NOTICE_RETRY_AFTER_MS) continue
          if (await notify(record, now)) result.notified += 1
        }
        seen += page.length
        if (page.length < SWEEP_PAGE) break
        after = page[page.length - 1]?._id
      }
      return result
    },

    /** Expired exports: file first, then the record and its claims; safe to repeat. */
    async purgeExpired(now = new Date(), limit = 500) {
      let purged = 0
      for (const record of await repo.listExpired(now, limit)) {
        if (record.storage_key) await deps.storage.delete(record.storage_key)
        await repo.deleteExport(record._id)
        await repo.deleteRun(record._id)
        await repo.releaseNotice(record._id)
        purged += 1
      }
      return purged
    },
  }
}
