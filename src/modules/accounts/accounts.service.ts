import { AppError } from '../../shared/errors.ts'
import { decodeCursor, pageOf, uuidv7 } from '../../shared/ids.ts'
import type { Logger } from '../../shared/logger.ts'
import type { RedisClient } from '../../shared/redis.ts'
import type { AccountStatus, Role, UserRecord } from './accounts.model.ts'
import type { AccountsRepository } from './accounts.repository.ts'
import { hashPassword, passwordProblem, unknownAccountHash, verifyPassword } from './passwords.ts'
import type { AccessClaims, TokenPair, TokenService } from './tokens.service.ts'

export type UserView = {
  id: string
  email: string
  full_name: string
  phone: string | null
  role: Role
  status: AccountStatus
  created_at: string
  updated_at: string
}

export type AccountsService = ReturnType<typeof createAccountsService>

export type AccountSettings = {
  approvalRequired: boolean
  failuresPerAccount: number
  failuresPerAddress: number
}

const THROTTLE_WINDOW_S = 15 * 60
const ORPHAN_CLAIM_MS = 60_000
/** Looked up in place of a missing account, so that both paths do the same reads. */
const unknownAccountId = '00000000-0000-7000-8000-000000000000'

/** Case and surrounding spaces do not make another account; `_id` of the e-mail claim. */
export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase()
}

export function toUserView(user: UserRecord): UserView {
  return {
    id: user._id,
    email: user.email,
    full_name: user.full_name,
    phone: user.phone,
    role: user.role,
    status: user.status,
    created_at: user.created_at.toISOString(),
    updated_at: user.updated_at.toISOString(),
  }
}

const badCredentials = () =>
  new AppError('UNAUTHENTICATED', 'The e-mail or the password is wrong', {
    headers: { 'WWW-Authenticate': 'Bearer' },
  })

export function createAccountsService(deps: {
  repo: AccountsRepository
  tokens: TokenService
  redis: RedisClient
  settings: AccountSettings
  logger: Logger
  /** Clean-ups that other capabilities register, run after an account is deleted. */
  onAccountDeleted?: ((userId: string) => Promise<void>)[]
}) {
  const { repo, tokens, redis, settings } = deps

  async function requirePasswordPolicy(password: string, email: string) {
    const problem = passwordProblem(password, email)
    if (problem) {
      throw new AppError('VALIDATION_FAILED', `The password ${problem}`, {
        errors: [{ in: 'body', field: 'password', pointer: '/password', reason: problem }],
      })
    }
  }

  async function createAccount(input: {
    email: string
    password: string
    full_name: string
    phone?: string | undefined
    role: Role
    status: AccountStatus
  }): Promise<UserRecord> {
    await requirePasswordPolicy(input.password, input.email)
    const id = uuidv7()
    const emailKey = normalizeEmail(input.email)
    // The claim decides: of 50 concurrent registrations of one e-mail exactly one gets here.
    if (!(await repo.claimEmail(emailKey, id)) && !(await reclaimOrphanedEmail(emailKey, id))) {
      throw new AppError('CONFLICT', 'An account with this e-mail already exists')
    }
    const now = new Date()
    const user: UserRecord = {
      _id: id,
      email: input.email.trim(),
      full_name: input.full_name,
      phone: input.phone ?? null,
      role: input.role,
      status: input.status,
      password_hash: await hashPassword(input.password),
      session_epoch: uuidv7(),
      created_at: now,
      updated_at: now,
    }
    try {
      await repo.insertUser(user)
    } catch (error) {
      await repo.releaseEmail(emailKey, id)
      throw error
    }
    return user
  }

  /**
   * A claim whose account never came to be (a crash between claim and insert) would block the
   * e-mail for good. Once it is old enough it is removed, and the insert decides again.
   */
  async function reclaimOrphanedEmail(emailKey: string, id: string): Promise<boolean> {
    const claim = await repo.findEmailClaim(emailKey)
    if (!claim || Date.now() - claim.created_at.getTime() < ORPHAN_CLAIM_MS) return false
    if (await repo.findUser(claim.user_id)) return false
    await repo.releaseEmail(emailKey, claim.user_id)
    return await repo.claimEmail(emailKey, id)
  }

  async function findOrNotFound(id: string): Promise<UserRecord> {
    const user = await repo.findUser(id)
    if (!user) throw new AppError('NOT_FOUND', 'No such user')
    return user
  }

  /** Throttle keys of the current 15-minute window, and the seconds left in it. */
  function throttleKeys(emailKey: string, address: string) {
    const now = Math.floor(Date.now() / 1000)
    const window = Math.floor(now / THROTTLE_WINDOW_S)
    return {
      account: `auth:fail:account:${emailKey}:${window}`,
      address: `auth:fail:address:${address}:${window}`,
      retryAfter: (window + 1) * THROTTLE_WINDOW_S - now,
    }
  }

  /**
   * Admin-count changes go one at a time (a Redis lock), so that two admins removing each other
   * at once cannot leave the platform with none.
   */
  async function withLock<T>(name: string, work: () => Promise<T>): Promise<T> {
    const token = uuidv7()
    for (let attempt = 0; ; attempt++) {
      if ((await redis.set(name, token, 'PX', 10_000, 'NX')) === 'OK') break
      if (attempt > 50) throw new AppError('CONFLICT', 'Another change to this account is in progress; retry')
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    try {
      return await work()
    } finally {
      if ((await redis.get(name)) === token) await redis.del(name)
    }
  }

  /**
   * Writes to one account go one at a time: on FerretDB an update rewrites the whole document,
   * so a profile edit racing an admin's disable could write the old status back.
   */
  const withUserLock = <T>(userId: string, work: () => Promise<T>) => withLock(`lock:user:${userId}`, work)

  /** Admin-count changes go one at a time too, so that two admins cannot remove each other. */
  const withAdminLock = <T>(work: () => Promise<T>) => withLock('lock:admins', work)

  /**
   * Reserves one evaluation in the current window for the account and the address, before the
   * password is checked: parallel attempts cannot exceed the limit. A success gives it back.
   */
  async function reserveAttempt(emailKey: string, address: string) {
    const keys = throttleKeys(emailKey, address)
    const results = await redis
      .multi()
      .incr(keys.account)
      .expire(keys.account, THROTTLE_WINDOW_S)
      .incr(keys.address)
      .expire(keys.address, THROTTLE_WINDOW_S)
      .exec()
    const account = Number(results?.[0]?.[1] ?? 0)
    const byAddress = Number(results?.[2]?.[1] ?? 0)
    if (account > settings.failuresPerAccount || byAddress > settings.failuresPerAddress) {
      throw new AppError('RATE_LIMITED', 'Too many failed sign-ins; wait and try again', {
        headers: { 'Retry-After': String(keys.retryAfter) },
      })
    }
    return {
      succeeded: async () => {
        await redis.multi().decr(keys.account).decr(keys.address).exec()
      },
    }
  }

  async function assertNotLastAdmin(
    target: UserRecord,
    after: { role?: Role; status?: AccountStatus } | 'deleted',
  ) {
    const stillAdmin =
      after !== 'deleted' &&
      (after.role ?? target.role) === 'admin' &&
      (after.status ?? target.status) === 'active'
    if (
      target.role === 'admin' &&
      target.status === 'active' &&
      !stillAdmin &&
      (await repo.countActiveAdmins()) <= 1
    ) {
      throw new AppError('CONFLICT', 'This is the last active admin; make another admin first')
    }
  }

  return {
    async register(input: {
      email: string
      password: string
      full_name: string
      phone?: string | undefined
    }) {
      const user = await createAccount({
        ...input,
        role: 'customer',
        status: settings.approvalRequired ? 'pending' : 'active',
      })
      return {
        user: toUserView(user),
        tokens: await tokens.newSession(user._id, user.role, user.session_epoch),
      }
    },

    /**
     * An unknown e-mail and a wrong password answer alike and take the same time (a hash is
     * verified either way). Failures count per account and per address; over the limit the
     * password is not even evaluated.
     */
    async login(
      email: string,
      password: string,
      address: string,
    ): Promise<{ user: UserView; tokens: TokenPair }> {
      const emailKey = normalizeEmail(email)
      const attempt = await reserveAttempt(emailKey, address)
      // The same reads and the same hash work whether the account exists or not.
      const userId = await repo.userIdByEmail(emailKey)
      const user = await repo.findUser(userId ?? unknownAccountId)
      const valid = await verifyPassword(password, user?.password_hash ?? unknownAccountHash)
      if (!user || !valid || user.status === 'disabled') throw badCredentials()
      await attempt.succeeded()
      return {
        user: toUserView(user),
        tokens: await tokens.newSession(user._id, user.role, user.session_epoch),
      }
    },

    async refresh(refreshToken: string): Promise<TokenPair> {
      return await tokens.refresh(refreshToken, async (userId) => {
        const user = await repo.findUser(userId)
        if (!user || user.status === 'disabled') return undefined
        return { role: user.role, sessionEpoch: user.session_epoch }
      })
    },

    async logout(claims: AccessClaims): Promise<void> {
      await tokens.revokeSession(claims)
    },

    /** The account behind an access token, if it may still use it. */
    async principal(userId: string, sessionEpoch: string) {
      const user = await repo.findUser(userId)
      if (!user || user.status === 'disabled' || user.session_epoch !== sessionEpoch) return undefined
      return { id: user._id, role: user.role, status: user.status }
    },

    async me(userId: string): Promise<UserView> {
      return toUserView(await findOrNotFound(userId))
    },

    async updateProfile(
      userId: string,
      patch: { full_name?: string | undefined; phone?: string | null | undefined },
    ) {
      return await withUserLock(userId, async () => {
        await findOrNotFound(userId)
        const changes: Partial<UserRecord> = {}
        if (patch.full_name !== undefined) changes.full_name = patch.full_name
        if (patch.phone !== undefined) changes.phone = patch.phone
        return toUserView((await repo.updateUser(userId, changes)) ?? (await findOrNotFound(userId)))
      })
    },

    /** Every other session ends: tokens issued before now are refused, and a new pair is returned. */
    async changePassword(claims: AccessClaims, current: string, next: string): Promise<TokenPair> {
      const user = await findOrNotFound(claims.userId)
      // Guesses of the current password count like failed sign-ins: a stolen token is no oracle.
      const attempt = await reserveAttempt(normalizeEmail(user.email), `password-change:${user._id}`)
      if (!(await verifyPassword(current, user.password_hash))) {
        throw new AppError('VALIDATION_FAILED', 'The current password is wrong', {
          errors: [
            { in: 'body', field: 'current_password', pointer: '/current_password', reason: 'does not match' },
          ],
        })
      }
      await attempt.succeeded()
      await requirePasswordPolicy(next, user.email)
      const epoch = uuidv7()
      const passwordHash = await hashPassword(next)
      await withUserLock(user._id, () =>
        repo.updateUser(user._id, { password_hash: passwordHash, session_epoch: epoch }),
      )
      await tokens.revokeSession(claims)
      return await tokens.newSession(user._id, user.role, epoch)
    },

    /**
     * A registration decision moves a customer who is pending or denied; an account that is
     * active, disabled or not a customer is left as it is.
     */
    async applyRegistrationDecision(userId: string, decision: 'approved' | 'denied'): Promise<void> {
      await withUserLock(userId, async () => {
        const user = await repo.findUser(userId)
        const movable = user?.role === 'customer' && (user.status === 'pending' || user.status === 'denied')
        if (!movable) return
        await repo.updateUser(userId, { status: decision === 'approved' ? 'active' : 'denied' })
      })
    },

    /** The first admin, from ADMIN_EMAIL and ADMIN_PASSWORD, when there is no active admin. */
    async ensureFirstAdmin(admin: { email: string; password: string; full_name: string } | undefined) {
      if (!admin || (await repo.countActiveAdmins()) > 0) return undefined
      try {
        const user = await createAccount({ ...admin, role: 'admin', status: 'active' })
        deps.logger.info({ userId: user._id }, 'first admin created from ADMIN_EMAIL')
        return user._id
      } catch (error) {
        // Another instance made it first, or the e-mail belongs to an existing account.
        if (error instanceof AppError && error.code === 'VALIDATION_FAILED') {
          throw new Error(`ADMIN_PASSWORD is not acceptable: ${error.message}`)
        }
        if (error instanceof AppError && error.code === 'CONFLICT') {
          deps.logger.warn('ADMIN_EMAIL belongs to an existing account; no admin was created')
          return undefined
        }
        throw error
      }
    },

    admin: {
      async list(query: {
        role?: Role | undefined
        status?: AccountStatus | undefined
        limit: number
        cursor?: string | undefined
      }) {
        const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor)
        const page = await repo.listUsers({
          ...(query.role ? { role: query.role } : {}),
          ...(query.status ? { status: query.status } : {}),
          ...(after ? { after } : {}),
          limit: query.limit + 1,
        })
        return pageOf(page, query.limit, toUserView)
      },

      async get(id: string): Promise<UserView> {
        return toUserView(await findOrNotFound(id))
      },

      async create(input: {
        email: string
        password: string
        full_name: string
        phone?: string | undefined
        role: Role
      }) {
        return toUserView(await createAccount({ ...input, status: 'active' }))
      },

      async update(
        actorId: string,
        id: string,
        patch: {
          full_name?: string | undefined
          phone?: string | null | undefined
          role?: Role | undefined
          status?: 'active' | 'disabled' | undefined
        },
      ) {
        return await withAdminLock(() =>
          withUserLock(id, async () => {
            const target = await findOrNotFound(id)
            const after = {
              ...(patch.role ? { role: patch.role } : {}),
              ...(patch.status ? { status: patch.status } : {}),
            }
            await assertNotLastAdmin(target, after)
            const changes: Partial<UserRecord> = { ...after }
            if (patch.full_name !== undefined) changes.full_name = patch.full_name
            if (patch.phone !== undefined) changes.phone = patch.phone
            // Disabling or a role change ends the account's sessions at once.
            if (patch.status === 'disabled' || (patch.role && patch.role !== target.role)) {
              changes.session_epoch = uuidv7()
            }
            deps.logger.info(
              { actorId, userId: id, changes: Object.keys(changes) },
              'account updated by an admin',
            )
            return toUserView((await repo.updateUser(id, changes)) ?? target)
          }),
        )
      },

      async remove(actorId: string, id: string): Promise<void> {
        await withAdminLock(() =>
          withUserLock(id, async () => {
            const target = await findOrNotFound(id)
            await assertNotLastAdmin(target, 'deleted')
            await repo.deleteUser(id)
            await repo.releaseEmail(normalizeEmail(target.email), id)
            // What other capabilities hold for the account (vehicles and their plates).
            for (const cleanUp of deps.onAccountDeleted ?? []) await cleanUp(id)
            deps.logger.info({ actorId, userId: id }, 'account deleted by an admin')
          }),
        )
      },
    },
  }
}
