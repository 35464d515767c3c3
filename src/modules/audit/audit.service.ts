import { Counter, type Registry } from 'prom-client'
import { AppError } from '../../shared/errors.ts'
import { decodeCursor, pageOf, uuidv7 } from '../../shared/ids.ts'
import type { Logger } from '../../shared/logger.ts'
import type { AuditedMethod, AuditOutcome, AuditRecord, SnapshotName } from './audit.model.ts'
import type { AuditRepository } from './audit.repository.ts'
import { fromSnapshot, snapshot } from './audit.snapshot.ts'

const DAY_MS = 86_400_000
/** An actor's e-mail is read again after this long (the log shows the address of the time). */
const EMAIL_TTL_MS = 60_000
const EMAIL_CACHE_MAX = 1_000
/** Records written in one insertMany at most. */
const WRITE_BATCH = 100

/** What the HTTP door knows of one request of an operator or admin. */
export type AuditEntry = {
  at: Date
  actor: { userId: string; role: 'operator' | 'admin' }
  action: string
  method: AuditedMethod
  path: string
  route: string
  target: { type: string; id: string | null } | null
  status: number
  errorCode: string | null
  requestId: string
  ip: string
  userAgent: string | null
  /** Parsed JSON; undefined or null when there was none (or it was not JSON). */
  requestBody: unknown
  before: unknown
  after: unknown
}

export type AuditView = {
  id: string
  at: string
  actor: { user_id: string; role: 'operator' | 'admin'; email: string | null }
  action: string
  method: AuditedMethod
  path: string
  route: string
  target: { type: string; id: string | null } | null
  status: number
  outcome: AuditOutcome
  error_code: string | null
  request_id: string
  ip: string
  user_agent: string | null
  request_body: unknown
  before: unknown
  after: unknown
  truncated: SnapshotName[]
}

export function outcomeOf(status: number): AuditOutcome {
  if (status >= 500) return 'failed'
  if (status >= 400) return 'refused'
  return 'succeeded'
}

/**
 * The smallest id string of a UUIDv7 made at `ms` or later: `_id < timeBound(t)` is "recorded
 * before t" (the id starts with its 48-bit millisecond time in hex; '-' sorts before hex digits).
 */
export function timeBound(ms: number): string {
  const hex = Math.max(0, Math.floor(ms)).toString(16).padStart(12, '0')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-`
}

export function toAuditView(r: AuditRecord): AuditView {
  const cut = new Set(r.truncated)
  return {
    id: r._id,
    at: r.at.toISOString(),
    actor: { user_id: r.actor_id, role: r.actor_role, email: r.actor_email },
    action: r.action,
    method: r.method,
    path: r.path,
    route: r.route,
    target: r.target_type ? { type: r.target_type, id: r.target_id } : null,
    status: r.status,
    outcome: r.outcome,
    error_code: r.error_code,
    request_id: r.request_id,
    ip: r.ip,
    user_agent: r.user_agent,
    request_body: fromSnapshot(r.request_body, cut.has('request_body')),
    before: fromSnapshot(r.before, cut.has('before')),
    after: fromSnapshot(r.after, cut.has('after')),
    truncated: r.truncated,
  }
}

export type AuditListQuery = {
  limit: number
  cursor?: string | undefined
  actor_id?: string | undefined
  action?: string | undefined
  target_type?: string | undefined
  target_id?: string | undefined
  since?: string | undefined
  until?: string | undefined
}

export type AuditService = ReturnType<typeof createAuditService>

export function createAuditService(deps: {
  repo: AuditRepository
  /** The account's e-mail address, null when it is gone. */
  actorEmail: (userId: string) => Promise<string | null>
  logger: Logger
  registry: Registry
  settings: { retentionDays: number }
}) {
  const { repo, logger } = deps
  const writeFailures = new Counter({
    name: 'audit_log_write_failures_total',
    help: 'Audit records that could not be written (the request itself was answered).',
    registers: [deps.registry],
  })

  // Actors are few and act often: their address is read once a minute, not once per action.
  const emails = new Map<string, { email: string | null; until: number }>()
  async function emailOf(userId: string): Promise<string | null> {
    const now = Date.now()
    const cached = emails.get(userId)
    if (cached && cached.until > now) return cached.email
    const email = await deps.actorEmail(userId).catch(() => null)
    if (emails.size >= EMAIL_CACHE_MAX) emails.clear()
    emails.set(userId, { email, until: now + EMAIL_TTL_MS })
    return email
  }

  // Group commit: while a write is in flight, the records of other requests queue and go together
  // in the next insertMany (one writer's turn on FerretDB instead of one each); an idle platform
  // writes each at once. Every request still waits for its own record to be written.
  const queue: { record: AuditRecord; done: (error?: unknown) => void }[] = []
  let writing = false
  async function drain(): Promise<void> {
    writing = true
    try {
      while (queue.length > 0) {
        const batch = queue.splice(0, WRITE_BATCH)
        try {
          if (batch.length === 1) await repo.insert(batch[0]?.record as AuditRecord)
          else await repo.insertMany(batch.map((item) => item.record))
          for (const item of batch) item.done()
        } catch (error) {
          if (batch.length === 1) {
            batch[0]?.done(error)
            continue
          }
          // Some may be in: each of the rest on its own, so that each request learns its fate.
          for (const item of batch) {
            try {
              if (!(await repo.find(item.record._id))) await repo.insert(item.record)
              item.done()
            } catch (single) {
              item.done(single)
            }
          }
        }
      }
    } finally {
      writing = false
    }
  }
  function write(record: AuditRecord): Promise<void> {
    return new Promise((resolve, reject) => {
      queue.push({ record, done: (error) => (error === undefined ? resolve() : reject(error)) })
      if (!writing) void drain()
    })
  }

  /** Logged with what identifies the action (the log keeps what the collection lost), and counted. */
  function reportFailure(error: unknown, action: Record<string, unknown>): void {
    writeFailures.inc()
    logger.error({ err: error, audit: action }, 'audit record not written')
  }

  return {
    /**
     * Writes one record. Never throws: a failed write is logged and counted (reportFailure), and the
     * caller's request goes on.
     */
    async record(entry: AuditEntry): Promise<string | undefined> {
      try {
        const email = await emailOf(entry.actor.userId)
        const truncated: SnapshotName[] = []
        const keep = (name: SnapshotName, value: unknown) => {
          const snap = snapshot(value)
          if (snap.truncated) truncated.push(name)
          return snap.text
        }
        const record: AuditRecord = {
          _id: uuidv7(entry.at.getTime()),
          at: entry.at,
          actor_id: entry.actor.userId,
          actor_role: entry.actor.role,
          actor_email: email,
          action: entry.action,
          method: entry.method,
          path: entry.path,
          route: entry.route,
          target_type: entry.target?.type ?? null,
          target_id: entry.target?.id ?? null,
          status: entry.status,
          outcome: outcomeOf(entry.status),
          error_code: entry.errorCode,
          request_id: entry.requestId,
          ip: entry.ip,
          user_agent: entry.userAgent,
          request_body: keep('request_body', entry.requestBody),
          before: keep('before', entry.before),
          after: keep('after', entry.after),
          truncated,
        }
        await write(record)
        return record._id
      } catch (error) {
        reportFailure(error, {
          actor: entry.actor,
          action: entry.action,
          path: entry.path,
          status: entry.status,
          requestId: entry.requestId,
        })
        return undefined
      }
    },

    reportFailure,

    async list(query: AuditListQuery) {
      const since = query.since ? Date.parse(query.since) : undefined
      const until = query.until ? Date.parse(query.until) : undefined
      if (since !== undefined && until !== undefined && since >= until) {
        throw new AppError('UNPROCESSABLE', '`since` must be before `until`', {
          extensions: { reason: 'empty_range' },
        })
      }
      // Newest first: the cursor (the last id seen) and `until` are both upper bounds.
      const uppers = [
        until !== undefined ? timeBound(until) : undefined,
        query.cursor ? decodeCursor(query.cursor) : undefined,
      ].filter((bound): bound is string => bound !== undefined)
      const rows = await repo.list(
        {
          actor_id: query.actor_id,
          action: query.action,
          target_type: query.target_type,
          target_id: query.target_id,
          idAtLeast: since !== undefined ? timeBound(since) : undefined,
          idBelow: uppers.length > 0 ? uppers.sort()[0] : undefined,
        },
        query.limit + 1,
      )
      return pageOf(rows, query.limit, toAuditView)
    },

    async get(id: string): Promise<AuditView> {
      const record = await repo.find(id)
      if (!record) throw new AppError('NOT_FOUND', `No audit record ${id}`)
      return toAuditView(record)
    },

    /** `data.purge`: records older than the retention, in bounded batches. */
    async purgeExpired(now = new Date()): Promise<number> {
      return await repo.purgeBelow(timeBound(now.getTime() - deps.settings.retentionDays * DAY_MS))
    },
  }
}
