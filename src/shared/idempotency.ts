import { createHash } from 'node:crypto'
import { Schema } from 'mongoose'
import { AppError } from './errors.ts'
import { uuidv7 } from './ids.ts'
import { type Database, insertOnce, modelOn } from './mongo.ts'

// Writes a client may retry take an Idempotency-Key. The insert of the key's record (an `_id`
// that makes a second one impossible, DESIGN.md section 5) fixes the id of the resource once; a
// retry with the same key and body goes on with that id and answers what the first one did.

/** `_id` is `${kind}:${callerId}:${key}`: keys are scoped to a kind of write and to the caller. */
export type IdempotencyRecord = {
  _id: string
  resource_id: string
  /** sha256 of the validated input: the same key with another input is refused. */
  fingerprint: string
  /** Set once the resource was written; a replay that finds it gone knows it was deleted since. */
  done: boolean
  created_at: Date
}

const idempotencySchema = new Schema<IdempotencyRecord>(
  {
    _id: { type: String, required: true },
    resource_id: { type: String, required: true },
    fingerprint: { type: String, required: true },
    done: { type: Boolean, required: true },
    created_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'idempotency_keys' },
)

export function idempotencyModels(db: Database) {
  return { idempotencyKeys: modelOn(db, 'IdempotencyKey', idempotencySchema) }
}

export type IdempotencyStore = ReturnType<typeof createIdempotencyStore>

export function createIdempotencyStore(db: Database) {
  const { idempotencyKeys } = idempotencyModels(db)
  return {
    /** False when a record with this `_id` exists already. */
    claim: (record: IdempotencyRecord): Promise<boolean> => insertOnce(idempotencyKeys, record),
    async find(id: string): Promise<IdempotencyRecord | undefined> {
      return (await idempotencyKeys.findById(id).lean<IdempotencyRecord>()) ?? undefined
    },
    /** Written by the attempts of one request only, all with the same value. */
    async markDone(id: string): Promise<void> {
      await idempotencyKeys.updateOne({ _id: id }, { $set: { done: true } })
    },
    /** Only the record naming this resource goes. */
    async release(id: string, resourceId: string): Promise<void> {
      await idempotencyKeys.deleteOne({ _id: id, resource_id: resourceId })
    },
  }
}

export const fingerprintOf = (input: unknown): string =>
  createHash('sha256').update(JSON.stringify(input)).digest('hex')

export type KeyedRequest = {
  /** The kind of write (`lot`, `payment`): a key is scoped to it. */
  kind: string
  callerId: string
  key?: string | undefined
}

/**
 * A create made safe to retry by an Idempotency-Key. `create` must accept an id whose resource
 * exists already (a retry after a failed later step, or a concurrent attempt with the same key).
 * A create refused with an AppError (a 4xx) frees the key for a corrected request, when the
 * refused request is the one that wrote the key's record. The same key
 * with another input is a 422 UNPROCESSABLE; a key whose resource is gone since is a 409.
 */
export async function keyedCreate<V>(
  store: IdempotencyStore,
  request: KeyedRequest,
  input: unknown,
  create: (id: string) => Promise<V>,
  replay: (id: string) => Promise<V | undefined>,
): Promise<V> {
  if (request.key === undefined) return await create(uuidv7())
  const recordId = `${request.kind}:${request.callerId}:${request.key}`
  const fingerprint = fingerprintOf(input)
  let resourceId = uuidv7()
  const first = await store.claim({
    _id: recordId,
    resource_id: resourceId,
    fingerprint,
    done: false,
    created_at: new Date(),
  })
  if (!first) {
    const earlier = await store.find(recordId)
    if (!earlier) throw new AppError('CONFLICT', 'A request with this Idempotency-Key is in progress; retry')
    if (earlier.fingerprint !== fingerprint) {
      throw new AppError('UNPROCESSABLE', 'This Idempotency-Key was used with a different request', {
        extensions: { reason: 'idempotency_key_reused' },
      })
    }
    resourceId = earlier.resource_id
    if (earlier.done) {
      const view = await replay(resourceId)
      if (view === undefined) {
        throw new AppError(
          'CONFLICT',
          `The ${request.kind} this Idempotency-Key created has been deleted since`,
        )
      }
      return view
    }
  }
  try {
    const view = await create(resourceId)
    await store.markDone(recordId)
    return view
  } catch (error) {
    // Only the request that wrote the record frees it: a concurrent twin's refusal (a 409 while
    // the first is still at work) must not free the key the first one is completing.
    if (error instanceof AppError && first) await store.release(recordId, resourceId)
    throw error
  }
}
