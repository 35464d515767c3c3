import { Schema } from 'mongoose'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { migrations as shipped } from '../../src/db/migrations/index.ts'
import { assertWellFormed, type Migration, runMigrations } from '../../src/db/migrator.ts'
import { createLogger } from '../../src/shared/logger.ts'
import { connectDatabase, type Database, initModels } from '../../src/shared/mongo.ts'
import { isolatedDatabase } from '../harness/platform.ts'

const logger = createLogger('silent')
let db: Database

beforeAll(async () => {
  db = await connectDatabase(isolatedDatabase(inject('services').mongodb))
})
afterAll(async () => {
  await db?.close()
})

function counting(
  id: string,
  calls: string[],
  work: (db: Database) => Promise<void> = async () => {},
): Migration {
  return {
    id,
    description: `test ${id}`,
    async up({ db }) {
      calls.push(id)
      await work(db)
    },
  }
}

describe('migrations', () => {
  it('runs each pending migration once, in order, and records it', async () => {
    const calls: string[] = []
    const list = [counting('0001_a', calls), counting('0002_b', calls)]
    const first = await runMigrations(db, list, { logger })
    expect(first.applied).toEqual(['0001_a', '0002_b'])
    expect(calls).toEqual(['0001_a', '0002_b'])

    const withThird = [...list, counting('0003_c', calls)]
    const second = await runMigrations(db, withThird, { logger })
    expect(second.applied).toEqual(['0003_c'])
    expect(calls).toEqual(['0001_a', '0002_b', '0003_c'])

    const records = await db.collection('migrations').find({}).sort({ _id: 1 }).toArray()
    expect(records.map((r) => r._id)).toEqual(['0001_a', '0002_b', '0003_c'])
    expect(records[0]?.applied_at).toBeInstanceOf(Date)
  })

  it('lists what would run on a dry run and changes nothing', async () => {
    const calls: string[] = []
    const report = await runMigrations(db, [counting('0001_a', calls), counting('0009_dry', calls)], {
      logger,
      dryRun: true,
    })
    expect(report.pending).toEqual(['0009_dry'])
    expect(report.alreadyApplied).toContain('0001_a')
    expect(calls).toEqual([])
    expect(await db.collection('migrations').countDocuments({ _id: '0009_dry' } as object)).toBe(0)
  })

  it('applies a migration exactly once when many instances start together', async () => {
    const calls: string[] = []
    const list = [
      counting('0010_race', calls, async (db) => {
        await db.collection('race').insertOne({ at: new Date() })
      }),
    ]
    const reports = await Promise.all(
      Array.from({ length: 8 }, async () => await runMigrations(db, list, { logger, lockWaitMs: 20_000 })),
    )
    expect(calls).toEqual(['0010_race'])
    expect(reports.filter((r) => r.applied.length === 1)).toHaveLength(1)
    expect(await db.collection('race').countDocuments()).toBe(1)
  })

  it('takes over a lock left by a crashed process once it expires', async () => {
    await db
      .collection('migration_locks')
      .insertOne({ _id: 'migrations', owner: 'crashed', expires_at: new Date(Date.now() - 1000) } as object)
    const calls: string[] = []
    const report = await runMigrations(db, [counting('0011_after_crash', calls)], {
      logger,
      lockWaitMs: 2_000,
    })
    expect(report.applied).toEqual(['0011_after_crash'])
    expect(await db.collection('migration_locks').countDocuments({ _id: 'migrations' } as object)).toBe(0)
  })

  it('lets exactly one of many waiters take over an expired lock', async () => {
    await db.collection('migration_locks').insertOne({
      _id: 'migrations',
      owner: 'crashed-too',
      expires_at: new Date(Date.now() - 1000),
    } as object)
    const calls: string[] = []
    const list = [counting('0013_after_crash_race', calls)]
    const reports = await Promise.all(
      Array.from({ length: 8 }, async () => await runMigrations(db, list, { logger, lockWaitMs: 20_000 })),
    )
    expect(calls).toEqual(['0013_after_crash_race'])
    expect(reports.filter((r) => r.applied.length === 1)).toHaveLength(1)
    expect(await db.collection('migration_locks').countDocuments({ _id: 'migrations' } as object)).toBe(0)
  })

  it('waits for a live lock and gives up with a clear error', async () => {
    await db
      .collection('migration_locks')
      .insertOne({ _id: 'migrations', owner: 'alive', expires_at: new Date(Date.now() + 60_000) } as object)
    await expect(
      runMigrations(db, [counting('0012_blocked', [])], { logger, lockWaitMs: 500 }),
    ).rejects.toThrow(/migration lock/)
    await db.collection('migration_locks').deleteOne({ _id: 'migrations' } as object)
  })

  it('refuses a list out of order or with malformed ids', () => {
    expect(() => assertWellFormed([counting('0002_b', []), counting('0001_a', [])])).toThrow(/in id order/)
    expect(() => assertWellFormed([counting('0001_a', []), counting('0001_a', [])])).toThrow(/once each/)
    expect(() => assertWellFormed([counting('1_bad', [])])).toThrow(/0001_short_name/)
    expect(() => assertWellFormed(shipped)).not.toThrow()
  })

  it('makes the shipped installation record once, even when run twice', async () => {
    const first = shipped[0]
    expect(first?.id).toBe('0001_installation_record')
    await first?.up({ db, logger })
    const before = await db.collection('platform').findOne({ _id: 'installation' } as object)
    await first?.up({ db, logger })
    const after = await db.collection('platform').findOne({ _id: 'installation' } as object)
    expect(after?.installation_id).toBe(before?.installation_id)
  })
})

describe('model initialisation', () => {
  it('creates collections and indexes before traffic', async () => {
    const schema = new Schema({ plate: { type: String, required: true, index: true } })
    await initModels(db, [
      (connection) => ({ probe: connection.model('InitProbe', schema, 'init_probe') as never }),
    ])
    const collections = (await db.db?.listCollections().toArray())?.map((c) => c.name)
    expect(collections).toContain('init_probe')
    const indexes = await db.collection('init_probe').indexes()
    expect(indexes.map((index) => Object.keys(index.key))).toContainEqual(['plate'])
    // Idempotent: a second start finds everything in place.
    await expect(
      initModels(db, [(connection) => ({ probe: connection.model('InitProbe') as never })]),
    ).resolves.toBeUndefined()
  })
})
