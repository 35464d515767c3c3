import { Schema } from 'mongoose'
import { type Database, modelOn } from '../../shared/mongo.ts'

export const roles = ['customer', 'operator', 'admin'] as const
export type Role = (typeof roles)[number]

/**
 * pending: registered, waiting for approval of a registration request; active: may use the
 * platform; denied: the registration request was denied; disabled: switched off by an admin.
 */
export const accountStatuses = ['pending', 'active', 'denied', 'disabled'] as const
export type AccountStatus = (typeof accountStatuses)[number]

export type UserRecord = {
  _id: string
  email: string
  full_name: string
  phone: string | null
  role: Role
  status: AccountStatus
  password_hash: string
  /**
   * Every token carries the epoch it was issued in; a new epoch (password change, disabling, a
   * role change) ends every session at once, with no clock involved.
   */
  session_epoch: string
  created_at: Date
  updated_at: Date
}

const userSchema = new Schema<UserRecord>(
  {
    _id: { type: String, required: true },
    email: { type: String, required: true },
    full_name: { type: String, required: true },
    phone: { type: String, default: null },
    role: { type: String, enum: roles, required: true },
    status: { type: String, enum: accountStatuses, required: true },
    password_hash: { type: String, required: true },
    session_epoch: { type: String, required: true },
    created_at: { type: Date, required: true },
    updated_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'users' },
)
// Admin lists filter by role and status, newest first; never a hot path.
userSchema.index({ role: 1, status: 1 })

/**
 * The normalised e-mail as `_id`: the insert of a claim is what makes an e-mail unique (one of
 * many concurrent inserts wins, on FerretDB as on MongoDB), and login finds the user by `_id`.
 */
export type EmailClaimRecord = { _id: string; user_id: string; created_at: Date }

const emailClaimSchema = new Schema<EmailClaimRecord>(
  {
    _id: { type: String, required: true },
    user_id: { type: String, required: true },
    created_at: { type: Date, required: true },
  },
  { versionKey: false, collection: 'email_claims' },
)

export function accountModels(db: Database) {
  return {
    users: modelOn(db, 'User', userSchema),
    emailClaims: modelOn(db, 'EmailClaim', emailClaimSchema),
  }
}
