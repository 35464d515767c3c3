import { createHash, randomBytes } from 'node:crypto'
import {
  createLocalJWKSet,
  exportJWK,
  generateKeyPair,
  importJWK,
  type JWK,
  type JWTPayload,
  jwtVerify,
  SignJWT,
} from 'jose'
import { AppError } from '../../shared/errors.ts'
import { uuidv7 } from '../../shared/ids.ts'
import type { RedisClient } from '../../shared/redis.ts'
import type { Role } from './accounts.model.ts'
import type { SigningKeyRecord } from './tokens.model.ts'
import type { TokensRepository } from './tokens.repository.ts'

// Access tokens: short-lived ES256 JWTs (algorithm, issuer, audience and type pinned on verify,
// key id in the header). Refresh tokens: opaque, stored as SHA-256, single use, rotated; a token
// used twice revokes its whole family. Logout denylists the access token in Redis until it expires.

const ALGORITHM = 'ES256'
const TOKEN_TYPE = 'at+jwt'
const KEY_RELOAD_INTERVAL_MS = 60_000

type SigningKey = Awaited<ReturnType<typeof importJWK>>

export type TokenSettings = {
  issuer: string
  audience: string
  accessTtlSeconds: number
  refreshTtlDays: number
  keyMaxAgeDays: number
}

export type AccessClaims = {
  userId: string
  role: Role
  jti: string
  familyId: string
  sessionEpoch: string
  expiresAt: number
}

export type TokenPair = {
  access_token: string
  token_type: 'Bearer'
  expires_in: number
  refresh_token: string
  refresh_expires_at: string
}

export type TokenService = ReturnType<typeof createTokenService>

/** EC public keys only: what a JWKS document may show. */
export type PublicKeySet = {
  keys: { kty: 'EC'; crv: string; x: string; y: string; kid: string; alg: string; use: 'sig' }[]
}

const unauthenticated = (detail: string) =>
  new AppError('UNAUTHENTICATED', detail, { headers: { 'WWW-Authenticate': 'Bearer' } })
const sha256 = (value: string) => createHash('sha256').update(value).digest('base64url')

export function createTokenService(deps: {
  repo: TokensRepository
  redis: RedisClient
  settings: TokenSettings
}) {
  const { repo, redis, settings } = deps
  let keys: SigningKeyRecord[] = []
  let jwks = createLocalJWKSet({ keys: [] })
  let loadedAt = 0
  let signer: { kid: string; key: SigningKey } | undefined

  /**
   * The newest key signs; an older key keeps verifying until the last token it may have signed
   * has expired, counted from when its successor appeared. No key is ever updated, so two
   * rotations at once just leave two new keys, the newer of which signs.
   */
  function verifying(newestFirst: SigningKeyRecord[], now = Date.now()): SigningKeyRecord[] {
    const grace = (settings.accessTtlSeconds + 120) * 1000 + KEY_RELOAD_INTERVAL_MS
    return newestFirst.filter((_, i) => {
      const successor = newestFirst[i - 1]
      return !successor || successor.created_at.getTime() + grace > now
    })
  }

  async function reloadKeys(): Promise<void> {
    keys = await repo.listSigningKeys()
    jwks = createLocalJWKSet(publicJwks())
    loadedAt = Date.now()
    const active = keys[0]
    if (active && active._id !== signer?.kid) {
      signer = { kid: active._id, key: await importJWK(active.private_jwk as JWK, ALGORITHM) }
    }
  }

  function publicJwks(): PublicKeySet {
    return {
      keys: verifying(keys).map((key) => {
        const { crv, x, y } = key.public_jwk as { crv: string; x: string; y: string }
        return { kty: 'EC', crv, x, y, kid: key._id, alg: ALGORITHM, use: 'sig' }
      }),
    }
  }

  async function rotateKey(): Promise<string> {
    const { publicKey, privateKey } = await generateKeyPair(ALGORITHM, { extractable: true })
    const kid = uuidv7()
    const now = new Date()
    await repo.insertSigningKey({
      _id: kid,
      private_jwk: (await exportJWK(privateKey)) as Record<string, unknown>,
      public_jwk: (await exportJWK(publicKey)) as Record<string, unknown>,
      created_at: now,
    })
    await reloadKeys()
    return kid
  }

  async function currentSigner() {
    if (Date.now() - loadedAt > KEY_RELOAD_INTERVAL_MS) await reloadKeys()
    if (!signer) throw new Error('no signing key: call ensureSigningKey() at start')
    return signer
  }

  type Family = { userId: string; role: Role; familyId: string; startedAt: Date; sessionEpoch: string }

  async function issueRefresh({ userId, familyId, startedAt, sessionEpoch }: Family) {
    const token = randomBytes(32).toString('base64url')
    const expiresAt = new Date(startedAt.getTime() + settings.refreshTtlDays * 86_400_000)
    await repo.insertRefreshToken({
      _id: sha256(token),
      user_id: userId,
      family_id: familyId,
      family_started_at: startedAt,
      session_epoch: sessionEpoch,
      expires_at: expiresAt,
      created_at: new Date(),
    })
    return { token, expiresAt }
  }

  async function issuePair(family: Family): Promise<TokenPair> {
    const { userId, role, familyId, sessionEpoch } = family
    const { kid, key } = await currentSigner()
    const access = await new SignJWT({ role, fam: familyId, sep: sessionEpoch })
      .setProtectedHeader({ alg: ALGORITHM, kid, typ: TOKEN_TYPE })
      .setSubject(userId)
      .setIssuer(settings.issuer)
      .setAudience(settings.audience)
      .setIssuedAt()
      .setExpirationTime(`${settings.accessTtlSeconds}s`)
      .setJti(uuidv7())
      .sign(key)
    const refresh = await issueRefresh(family)
    return {
      access_token: access,
      token_type: 'Bearer',
      expires_in: settings.accessTtlSeconds,
      refresh_token: refresh.token,
      refresh_expires_at: refresh.expiresAt.toISOString(),
    }
  }

  return {
    /** At start: make sure a fresh enough key exists, rotating an old one. */
    async ensureSigningKey(): Promise<void> {
      await reloadKeys()
      const active = keys[0]
      const maxAge = settings.keyMaxAgeDays * 86_400_000
      if (!active || Date.now() - active.created_at.getTime() > maxAge) await rotateKey()
    },

    rotateKey,

    async jwks(): Promise<PublicKeySet> {
      if (Date.now() - loadedAt > KEY_RELOAD_INTERVAL_MS) await reloadKeys()
      return publicJwks()
    },

    /** A new login: a new refresh family. */
    async newSession(userId: string, role: Role, sessionEpoch: string): Promise<TokenPair> {
      return await issuePair({ userId, role, familyId: uuidv7(), startedAt: new Date(), sessionEpoch })
    },

    async verifyAccess(token: string): Promise<AccessClaims> {
      let payload: JWTPayload
      try {
        payload = await verifyJwt(token)
      } catch (error) {
        // A key made by another instance since our last reload: reload once, then decide.
        if (
          (error as { code?: string }).code === 'ERR_JWKS_NO_MATCHING_KEY' &&
          Date.now() - loadedAt > 1_000
        ) {
          await reloadKeys()
          payload = await verifyJwt(token).catch(() => {
            throw unauthenticated('The access token is not valid')
          })
        } else if ((error as { code?: string }).code === 'ERR_JWT_EXPIRED') {
          throw unauthenticated('The access token has expired; refresh it')
        } else {
          throw unauthenticated('The access token is not valid')
        }
      }
      const { sub, jti, fam, sep, role, exp } = payload as JWTPayload & {
        fam?: unknown
        sep?: unknown
        role?: unknown
      }
      if ([sub, jti, fam, sep, role].some((claim) => typeof claim !== 'string')) {
        throw unauthenticated('The access token is not valid')
      }
      const [denied, familyRevoked] = await redis.mget(`auth:denied:${jti}`, `auth:revoked-family:${fam}`)
      if (denied || familyRevoked) throw unauthenticated('The access token has been revoked')
      return {
        userId: sub as string,
        role: role as Role,
        jti: jti as string,
        familyId: fam as string,
        sessionEpoch: sep as string,
        expiresAt: exp ?? 0,
      }
    },

    /**
     * Trades a refresh token for a new pair. A token presented a second time means it was
     * stolen or replayed: the whole family is revoked, the legitimate holder included.
     */
    async refresh(
      token: string,
      currentUser: (userId: string) => Promise<{ role: Role; sessionEpoch: string } | undefined>,
    ): Promise<TokenPair> {
      const hash = sha256(token)
      const record = await repo.findRefreshToken(hash)
      if (!record || record.expires_at.getTime() <= Date.now())
        throw unauthenticated('The refresh token is not valid')
      if (await repo.isFamilyRevoked(record.family_id))
        throw unauthenticated('The refresh token has been revoked')
      if (!(await repo.markRefreshUsed(hash))) {
        await this.revokeFamily(record.family_id, record.user_id, 'refresh token reuse')
        throw unauthenticated(
          'The refresh token was already used; every session of that login has been revoked',
        )
      }
      const user = await currentUser(record.user_id)
      if (!user || record.session_epoch !== user.sessionEpoch) {
        throw unauthenticated('The refresh token is no longer valid; sign in again')
      }
      return await issuePair({
        userId: record.user_id,
        role: user.role,
        familyId: record.family_id,
        startedAt: record.family_started_at,
        sessionEpoch: record.session_epoch,
      })
    },

    async revokeFamily(familyId: string, userId: string, reason: string): Promise<void> {
      await repo.revokeFamily(familyId, userId, reason)
      // Access tokens of the family die at once too, not at their expiry.
      await redis.set(`auth:revoked-family:${familyId}`, reason, 'EX', settings.accessTtlSeconds + 60)
    },

    /** Logout: the presented access token and its whole refresh family. */
    async revokeSession(claims: AccessClaims): Promise<void> {
      const ttl = Math.max(claims.expiresAt - Math.floor(Date.now() / 1000), 1)
      await redis.set(`auth:denied:${claims.jti}`, '1', 'EX', ttl)
      await this.revokeFamily(claims.familyId, claims.userId, 'logout')
    },
  }

  async function verifyJwt(token: string): Promise<JWTPayload> {
    const { payload } = await jwtVerify(token, jwks, {
      algorithms: [ALGORITHM],
      issuer: settings.issuer,
      audience: settings.audience,
      typ: TOKEN_TYPE,
      requiredClaims: ['sub', 'jti', 'iat', 'exp'],
    })
    return payload
  }
}
