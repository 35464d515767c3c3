import type { QueryFilter } from 'mongoose'
import { type Database, isDuplicateKey, trusted } from '../../shared/mongo.ts'
import { type AccountStatus, accountModels, type Role, type UserRecord } from './accounts.model.ts'

export type AccountsRepository = ReturnType<typeof createAccountsRepository>

export function createAccountsRepository(db: Database) {
  const { users, emailClaims } = accountModels(db)
  return {
    /** True when this call claimed the e-mail; false when someone holds it already. */
    async claimEmail(emailKey: string, userId: string): Promise<boolean> {
      try {
        await emailClaims.create({ _id: emailKey, user_id: userId, created_at: new Date() })
        return true
      } catch (error) {
        if (isDuplicateKey(error)) return false
        throw error
      }
    },

    async releaseEmail(emailKey: string, userId: string): Promise<void> {
      await emailClaims.deleteOne({ _id: emailKey, user_id: userId })
    },

    async findEmailClaim(emailKey: string) {
      return (await emailClaims.findById(emailKey).lean()) ?? undefined
    },

    async userIdByEmail(emailKey: string): Promise<string | undefined> {
      const claim = await emailClaims.findById(emailKey).lean()
      return claim?.user_id
    },

    async insertUser(user: UserRecord): Promise<void> {
      await users.create(user)
    },

    async findUser(id: string): Promise<UserRecord | undefined> {
      return (await users.findById(id).lean<UserRecord>()) ?? undefined
    },

    /** Callers hold the per-user lock (AccountsService): one writer per account at a time. */
    async updateUser(
      id: string,
      patch: Partial<Omit<UserRecord, '_id' | 'created_at'>>,
    ): Promise<UserRecord | undefined> {
      await users.updateOne({ _id: id }, { $set: { ...patch, updated_at: new Date() } })
      return await this.findUser(id)
    },

    async deleteUser(id: string): Promise<void> {
      await users.deleteOne({ _id: id })
    },

    async listUsers(filter: { role?: Role; status?: AccountStatus; after?: string; limit: number }) {
      const query: QueryFilter<UserRecord> = {}
      if (filter.role) query.role = filter.role
      if (filter.status) query.status = filter.status
      if (filter.after) query._id = trusted({ $gt: filter.after })
      return await users.find(query).sort({ _id: 1 }).limit(filter.limit).lean<UserRecord[]>()
    },

    async countActiveAdmins(): Promise<number> {
      return await users.countDocuments({ role: 'admin', status: 'active' })
    },
  }
}
