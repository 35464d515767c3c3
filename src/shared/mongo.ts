import mongoose from 'mongoose'
import { DependencyDown } from './errors.ts'
import { withTimeout } from './timeout.ts'

// One mongoose connection per platform instance (not the global default), so that tests can run
// several platforms in one process. Filters are sanitised: a `{ $ne: ... }` in user input is data.
mongoose.set('sanitizeFilter', true)
mongoose.set('strictQuery', true)

export type Database = mongoose.Connection

export async function connectDatabase(uri: string): Promise<Database> {
  const connection = mongoose.createConnection(uri, {
    serverSelectionTimeoutMS: 5_000,
    // The driver notices a database that came back within this time; /ready relies on it.
    heartbeatFrequencyMS: 2_000,
    // Fail at once while the database is down (answered as 503) instead of queueing for 10 s.
    bufferCommands: false,
  })
  try {
    await connection.asPromise()
  } catch (error) {
    await connection.close(true).catch(() => {})
    throw error
  }
  return connection
}

export async function pingDatabase(connection: Database, timeoutMs: number): Promise<void> {
  const db = connection.db
  if (!db) throw new DependencyDown('not connected')
  await withTimeout(db.command({ ping: 1 }), timeoutMs, 'database ping')
}

/** Registers a capability's models on a connection; the composition root lists them all. */
export type ModelRegistration = (connection: Database) => Record<string, mongoose.Model<never>>

/**
 * Creates every collection and index up front, before traffic: parallel first writes would
 * otherwise race to create them, and FerretDB builds an index only when asked.
 */
export async function initModels(
  connection: Database,
  registrations: readonly ModelRegistration[],
): Promise<void> {
  const models = registrations.flatMap((register) => Object.values(register(connection)))
  for (const model of models) {
    await model.createCollection().catch((error: { codeName?: string }) => {
      if (error.codeName !== 'NamespaceExists') throw error
    })
    await model.init()
  }
}

/** The connection's model of that name, compiled once per connection. */
export function modelOn<T>(
  connection: Database,
  name: string,
  schema: mongoose.Schema<T>,
): mongoose.Model<T> {
  return (connection.models[name] as mongoose.Model<T> | undefined) ?? connection.model<T>(name, schema)
}

/**
 * Marks an operator object built by our own code (never from input) so that sanitizeFilter
 * lets it through; anything else with a `$` key is taken as a plain value.
 */
export function trusted<T extends object>(filter: T): T {
  return mongoose.trusted(filter) as T
}

export const isDuplicateKey = (error: unknown): boolean => (error as { code?: number }).code === 11000

/** Inserts one document; false when its `_id` exists already (the arbiter of every claim). */
export async function insertOnce<T>(model: mongoose.Model<T>, doc: T): Promise<boolean> {
  try {
    await model.create(doc)
    return true
  } catch (error) {
    if (isDuplicateKey(error)) return false
    throw error
  }
}

/**
 * Unordered insert of many documents; answers the indexes refused as duplicates (recorded
 * already). Any other failure is thrown: which documents made it is then unknown, and the
 * caller's retry finds out.
 */
export async function insertManyOnce<T extends { _id: string }>(
  model: mongoose.Model<T>,
  docs: readonly T[],
): Promise<Set<number>> {
  const duplicates = new Set<number>()
  if (docs.length === 0) return duplicates
  try {
    await model.collection.insertMany(docs as never[], { ordered: false })
  } catch (error) {
    const writeErrors = (error as { writeErrors?: unknown }).writeErrors
    if (!writeErrors) throw error
    for (const failure of [writeErrors].flat() as { index: number; code?: number }[]) {
      if (failure.code !== 11000) throw error
      duplicates.add(failure.index)
    }
  }
  return duplicates
}

/**
 * Facts numbered `${prefix}:0`, `:1` ..., read by `_id` only (FerretDB uses no index for other
 * filters, and not even for an `_id` range or `$in`), in parallel windows of `window`: a hole left
 * by a compensation (a deleted fact) shorter than a window does not hide the facts after it.
 */
export async function readNumbered<T>(
  find: (id: string) => Promise<T | null>,
  prefix: string,
  window = 4,
): Promise<{ index: number; fact: T }[]> {
  const found: { index: number; fact: T }[] = []
  for (let start = 0; ; start += window) {
    const facts = await Promise.all(Array.from({ length: window }, (_, i) => find(`${prefix}:${start + i}`)))
    facts.forEach((fact, i) => {
      if (fact) found.push({ index: start + i, fact })
    })
    if (facts.every((fact) => fact === null)) return found
  }
}
