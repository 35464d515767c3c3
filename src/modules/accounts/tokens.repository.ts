import { type Database, isDuplicateKey } from '../../shared/mongo.ts'
import { type RefreshTokenRecord, type SigningKeyRecord, tokenModels } from './tokens.model.ts'

export type TokensRepository = ReturnType<typeof createTokensRepository>

export function createTokensRepository(db: Database) {
  const { signingKeys, refreshTokens, refreshUses, revokedFamilies } = tokenModels(db)
  return {
    async listSigningKeys(): Promise<SigningKeyRecord[]> {
      return await signingKeys.find({}).sort({ created_at: -1, _id: -1 }).limit(50).lean<SigningKeyRecord[]>()
    },

    async insertSigningKey(key: SigningKeyRecord): Promise<void> {
      await signingKeys.create(key)
    },

    async insertRefreshToken(record: RefreshTokenRecord): Promise<void> {
      await refreshTokens.create(record)
    },

    async findRefreshToken(hash: string): Promise<RefreshTokenRecord | undefined> {
      return (await refreshTokens.findById(hash).lean<RefreshTokenRecord>()) ?? undefined
    },

    /** The first use of a token wins; false means it was used before: a replay. */
    async markRefreshUsed(hash: string): Promise<boolean> {
      try {
        await refreshUses.create({ _id: hash, used_at: new Date() })
        return true
      } catch (error) {
        if (isDuplicateKey(error)) return false
        throw error
      }
    },

    async revokeFamily(familyId: string, userId: string, reason: string): Promise<void> {
      try {
        await revokedFamilies.create({ _id: familyId, user_id: userId, reason, revoked_at: new Date() })
      } catch (error) {
        if (!isDuplicateKey(error)) throw error
      }
    },

    async isFamilyRevoked(familyId: string): Promise<boolean> {
      return (await revokedFamilies.exists({ _id: familyId })) !== null
    },
  }
}
