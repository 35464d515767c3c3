import { Schema } from 'mongoose'
import { type Database, modelOn } from '../../shared/mongo.ts'

/** An ES256 key pair, never updated; the newest signs, every one still needed verifies. */
export type SigningKeyRecord = {
  _id: string
  private_jwk: Record<string, unknown>
  public_jwk: Record<string, unknown>
  created_at: Date
}

/** A refresh token, by the SHA-256 of its value; the value itself is never stored. */
export type RefreshTokenRecord = {
  _id: string
  user_id: string
  family_id: string
  /** When the family began (the login); absolute expiry counts from here. */
  family_started_at: Date
  /** The account's session epoch at sign-in; a newer one makes the token worthless. */
  session_epoch: string
  expires_at: Date
  created_at: Date
}

/** Insert-only facts: a token used once, a family revoked. Their `_id`s make each happen once. */
export type RefreshUseRecord = { _id: string; used_at: Date }
export type RevokedFamilyRecord = { _id: string; user_id: string; reason: string; revoked_at: Date }

const signingKeySchema = new Schema<SigningKeyRecord>(
  {
    _id: { type: String, required: true },
    private_jwk: { type: Object, required: true },
    public_jwk: { type: Object, required: true },
    created_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'signing_keys', minimize: false },
)

const refreshTokenSchema = new Schema<RefreshTokenRecord>(
  {
    _id: { type: String, required: true },
    user_id: { type: String, required: true },
    family_id: { type: String, required: true },
    family_started_at: { type: Date, required: true },
    session_epoch: { type: String, required: true },
    expires_at: { type: Date, required: true },
    created_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'refresh_tokens' },
)
// Revoking every session of a user (password change, disable) finds their tokens by user.
refreshTokenSchema.index({ user_id: 1 })

const refreshUseSchema = new Schema<RefreshUseRecord>(
  { _id: { type: String, required: true }, used_at: { type: Date, required: true } },
  { versionKey: false, collection: 'refresh_token_uses' },
)

const revokedFamilySchema = new Schema<RevokedFamilyRecord>(
  {
    _id: { type: String, required: true },
    user_id: { type: String, required: true },
    reason: { type: String, required: true },
    revoked_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'revoked_token_families' },
)

export function tokenModels(db: Database) {
  return {
    signingKeys: modelOn(db, 'SigningKey', signingKeySchema),
    refreshTokens: modelOn(db, 'RefreshToken', refreshTokenSchema),
    refreshUses: modelOn(db, 'RefreshUse', refreshUseSchema),
    revokedFamilies: modelOn(db, 'RevokedFamily', revokedFamilySchema),
  }
}
