import { randomUUID } from 'node:crypto'
import type { mongo } from 'mongoose'
import type { Logger } from '../shared/logger.ts'
import type { Database } from '../shared/mongo.ts'

/**
 * A versioned data migration. It runs once, in id order, and is recorded in the `migrations`
 * collection. It works on raw collections (never on today's models, which move on), and it must
 * be safe to run again: a crash between its work and its record means it will.
 */
export type Migration = {
  id: string
  description: string
  up(context: { db: Database; logger: Logger }): Promise<void>
}

export type MigrationReport = { applied: string[]; pending: string[]; alreadyApplied: string[] }

const LOCK_ID = 'migrations'
const LOCK_TTL_MS = 10 * 60_000

type MigrationRecord = { _id: string; description: string; applied_at: Date; duration_ms: number }
type LockRecord = { _id: string; owner: string; expires_at: Date }

/** Of all waiters that saw the same expired lock, exactly one gets to remove it. */
async function claimTakeover(locks: mongo.Collection<LockRecord>, held: LockRecord): Promise<boolean> {
  try {
    await locks.insertOne({ _id: `takeover:${held.owner}`, owner: held.owner, expires_at: held.expires_at })
    return true
  } catch (error) {
    if ((error as { code?: number }).code !== 11000) throw error
    return false
  }
}

export function assertWellFormed(migrations: readonly Migration[]): void {
  const ids = migrations.map((m) => m.id)
  for (const id of ids) {
    if (!/^\d{4}_[a-z0-9_]+$/.test(id)) throw new Error(`migration id "${id}" must look like 0001_short_name`)
  }
  const sorted = [...ids].sort()
  if (new Set(ids).size !== ids.length || sorted.some((id, i) => id !== ids[i])) {
    throw new Error(`migrations must be listed once each, in id order: ${ids.join(', ')}`)
  }
}

export async function runMigrations(
  db: Database,
  migrations: readonly Migration[],
  options: { logger: Logger; dryRun?: boolean; lockWaitMs?: number },
): Promise<MigrationReport> {
  assertWellFormed(migrations)
  const records = db.collection<MigrationRecord>('migrations')
  const appliedIds = async () =>
    new Set((await records.find({}, { projection: { _id: 1 } }).toArray()).map((r) => r._id))

  let done = await appliedIds()
  const pendingBefore = migrations.filter((m) => !done.has(m.id)).map((m) => m.id)
  if (options.dryRun || pendingBefore.length === 0) {
    return { applied: [], pending: pendingBefore, alreadyApplied: [...done].sort() }
  }

  const release = await acquireLock(db, options.lockWaitMs ?? 60_000, options.logger)
  const applied: string[] = []
  try {
    // Another instance may have applied some while we waited for the lock.
    done = await appliedIds()
    for (const migration of migrations) {
      if (done.has(migration.id)) continue
      const begin = Date.now()
      options.logger.info({ migration: migration.id }, `migrating: ${migration.description}`)
      await migration.up({ db, logger: options.logger })
      try {
        await records.insertOne({
          _id: migration.id,
          description: migration.description,
          applied_at: new Date(),
          duration_ms: Date.now() - begin,
        })
        applied.push(migration.id)
      } catch (error) {
        // Only possible if a lock was wrongly taken over; the migration is idempotent anyway.
        if ((error as { code?: number }).code !== 11000) throw error
      }
    }
  } finally {
    await release()
  }
  return { applied, pending: [], alreadyApplied: [...done].sort() }
}

/**
 * The lock is the insert of one document with a fixed `_id`: on MongoDB and FerretDB alike only
 * one insert of a key succeeds. A lock left by a crashed process expires.
 */
async function acquireLock(db: Database, waitMs: number, logger: Logger): Promise<() => Promise<void>> {
  const locks = db.collection<LockRecord>('migration_locks')
  const owner = randomUUID()
  const deadline = Date.now() + waitMs
  for (;;) {
    try {
      await locks.insertOne({ _id: LOCK_ID, owner, expires_at: new Date(Date.now() + LOCK_TTL_MS) })
      return async () => {
        await locks.deleteOne({ _id: LOCK_ID, owner })
      }
    } catch (error) {
      if ((error as { code?: number }).code !== 11000) throw error
    }
    const held = await locks.findOne({ _id: LOCK_ID })
    if (held && held.expires_at.getTime() < Date.now() && (await claimTakeover(locks, held))) {
      // A conditional delete is no arbiter on FerretDB; the takeover claim (an insert) was.
      logger.warn({ owner: held.owner }, 'taking over an expired migration lock')
      await locks.deleteOne({ _id: LOCK_ID, owner: held.owner })
      continue
    }
    if (Date.now() > deadline)
      throw new Error('timed out waiting for the migration lock held by another instance')
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
}
