import type { QueryFilter } from 'mongoose'
import { type Database, isDuplicateKey, trusted } from '../../shared/mongo.ts'
import {
  type DecisionRecord,
  type RegistrationRequestRecord,
  type RequestStatus,
  registrationModels,
} from './registrations.model.ts'

export type RegistrationsRepository = ReturnType<typeof createRegistrationsRepository>

async function insertOnce(insert: () => Promise<unknown>): Promise<boolean> {
  try {
    await insert()
    return true
  } catch (error) {
    if (isDuplicateKey(error)) return false
    throw error
  }
}

export function createRegistrationsRepository(db: Database) {
  const { requests, open, decisions } = registrationModels(db)
  return {
    claimOpenRequest: (userId: string, requestId: string) =>
      insertOnce(() => open.create({ _id: userId, request_id: requestId, created_at: new Date() })),

    async releaseOpenRequest(userId: string, requestId: string): Promise<void> {
      await open.deleteOne({ _id: userId, request_id: requestId })
    },

    async insertRequest(record: RegistrationRequestRecord): Promise<void> {
      await requests.create(record)
    },

    async findRequest(id: string): Promise<RegistrationRequestRecord | undefined> {
      return (await requests.findById(id).lean<RegistrationRequestRecord>()) ?? undefined
    },

    recordDecision: (decision: DecisionRecord) => insertOnce(() => decisions.create(decision)),

    async findDecision(id: string): Promise<DecisionRecord | undefined> {
      return (await decisions.findById(id).lean<DecisionRecord>()) ?? undefined
    },

    /** Only the holder of the decision record reaches this; a single writer. */
    async markDecided(
      id: string,
      change: Pick<RegistrationRequestRecord, 'status' | 'decided_at' | 'decided_by' | 'reason'>,
    ) {
      await requests.updateOne({ _id: id }, { $set: change })
    },

    async list(filter: { status?: RequestStatus; userId?: string; after?: string; limit: number }) {
      const query: QueryFilter<RegistrationRequestRecord> = {}
      if (filter.status) query.status = filter.status
      if (filter.userId) query.user_id = filter.userId
      if (filter.after) query._id = trusted({ $gt: filter.after })
      return await requests
        .find(query)
        .sort({ _id: 1 })
        .limit(filter.limit)
        .lean<RegistrationRequestRecord[]>()
    },
  }
}
