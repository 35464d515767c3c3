import { randomBytes } from 'node:crypto'
import { importJWK, SignJWT, UnsecuredJWT } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connectDatabase, type Database } from '../../src/shared/mongo.ts'
import {
  type Account,
  bearer,
  createAccount,
  jsonBody,
  signIn,
  signInAdmin,
  testAdmin,
} from '../harness/accounts.ts'
import { json } from '../harness/http.ts'
import { startTestPlatform, type TestPlatform } from '../harness/platform.ts'

let platform: TestPlatform
let db: Database
let admin: Account
let customer: Account
let operator: Account

beforeAll(async () => {
  platform = await startTestPlatform(testAdmin)
  db = await connectDatabase(platform.urls.mongodb)
  admin = await signInAdmin(platform)
  customer = await createAccount(platform, admin, 'customer')
  operator = await createAccount(platform, admin, 'operator')
})
afterAll(async () => {
  await db?.close()
  await platform?.stop()
})

const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  platform.request(path, { method: 'POST', ...jsonBody(body, headers) })
const uniqueEmail = () => `u-${randomBytes(5).toString('hex')}@example.com`
const strongPassword = 'a perfectly long passphrase'

async function register(email = uniqueEmail(), password = strongPassword) {
  return await post('/api/v1/auth/register', {
    email,
    password,
    full_name: 'New Driver',
    phone: '+1 555 0100',
  })
}

describe('registration and sign-in', () => {
  it('registers a pending customer with tokens, who may see and edit their profile only', async () => {
    const email = uniqueEmail()
    const res = await register(email)
    expect(res.status).toBe(201)
    const session = await json(res)
    expect(session.user).toMatchObject({ email, role: 'customer', status: 'pending', phone: '+1 555 0100' })
    expect(session).toMatchObject({ token_type: 'Bearer', expires_in: 900 })

    const me = await platform.request('/api/v1/auth/me', { headers: bearer(session.access_token) })
    expect(me.status).toBe(200)
    const patched = await platform.request('/api/v1/auth/me', {
      method: 'PATCH',
      ...jsonBody({ full_name: 'Renamed Driver', phone: null }, bearer(session.access_token)),
    })
    expect(await json(patched)).toMatchObject({ full_name: 'Renamed Driver', phone: null })

    const users = await platform.request('/api/v1/users', { headers: bearer(session.access_token) })
    expect(users.status).toBe(403)
  })

  it('signs in with JSON and with the OAuth2 password form, e-mail in any case', async () => {
    const email = uniqueEmail()
    await register(email)
    const viaJson = await post('/api/v1/auth/login', { email: email.toUpperCase(), password: strongPassword })
    expect(viaJson.status).toBe(200)
    const viaForm = await platform.request('/api/v1/auth/login', {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        username: email,
        password: strongPassword,
        grant_type: 'password',
      }).toString(),
    })
    expect(viaForm.status).toBe(200)
    expect((await json(viaForm)).user.email).toBe(email)
  })

  it('refuses weak passwords with the field and the reason', async () => {
    const local = `driver${randomBytes(3).toString('hex')}`
    for (const password of ['short', 'password123', `my ${local} passphrase`]) {
      const res = await register(`${local}@example.com`, password)
      expect(res.status).toBe(400)
      expect((await json(res)).errors[0]).toMatchObject({ field: 'password' })
    }
  })

  it('makes exactly one account of 50 concurrent registrations of one e-mail', async () => {
    const email = uniqueEmail()
    const statuses = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        register(i % 2 ? email : email.toUpperCase()).then((r) => r.status),
      ),
    )
    expect(statuses.filter((s) => s === 201)).toHaveLength(1)
    expect(statuses.filter((s) => s === 409)).toHaveLength(49)
    expect(
      await db.collection('users').countDocuments({ email: { $in: [email, email.toUpperCase()] } }),
    ).toBe(1)
  })

  it('frees an e-mail whose claim outlived a crashed sign-up, and no other', async () => {
    const orphan = uniqueEmail()
    const fresh = uniqueEmail()
    await db.collection('email_claims').insertMany([
      { _id: orphan, user_id: 'crashed-before-insert', created_at: new Date(Date.now() - 120_000) },
      { _id: fresh, user_id: 'still-being-created', created_at: new Date() },
    ] as never[])
    expect((await register(orphan)).status).toBe(201)
    expect((await register(fresh)).status).toBe(409)
  })

  it('answers an unknown e-mail exactly like a wrong password', async () => {
    const wrong = await post('/api/v1/auth/login', {
      email: customer.email,
      password: 'not the password at all',
    })
    const unknown = await post('/api/v1/auth/login', {
      email: uniqueEmail(),
      password: 'not the password at all',
    })
    expect(wrong.status).toBe(401)
    expect(unknown.status).toBe(401)
    const strip = (body: Record<string, unknown>) => ({ ...body, request_id: undefined })
    expect(strip(await json(unknown))).toEqual(strip(await json(wrong)))
  })

  it('rejects operator objects and unknown fields before they reach the database', async () => {
    const injected = await post('/api/v1/auth/login', { email: { $ne: null }, password: { $gt: '' } })
    expect(injected.status).toBe(400)
    const fields = (await json(injected)).errors.map((e: { field: string }) => e.field).sort()
    expect(fields).toEqual(['email', 'password'])
    const extra = await post('/api/v1/auth/register', {
      email: uniqueEmail(),
      password: strongPassword,
      full_name: 'X',
      role: 'admin',
    })
    expect(extra.status).toBe(400)
    expect((await json(extra)).errors[0].reason).toMatch(/role/)
    // A query key that looks like an operator is just an unknown parameter: ignored, not applied.
    const query = await platform.request('/api/v1/users?role[$ne]=admin&limit=100', {
      headers: bearer(admin.token),
    })
    expect(query.status).toBe(200)
    expect((await json(query)).data.some((u: { role: string }) => u.role === 'admin')).toBe(true)
    const bad = await platform.request('/api/v1/users?role=superuser', { headers: bearer(admin.token) })
    expect(bad.status).toBe(400)
  })
})

describe('refresh tokens', () => {
  it('rotates on every refresh, and a replayed token revokes the whole family', async () => {
    const session = await signIn(platform, customer.email, customer.password)
    const first = await post('/api/v1/auth/refresh', { refresh_token: session.refresh_token })
    expect(first.status).toBe(200)
    const rotated = await json(first)
    expect(rotated.refresh_token).not.toBe(session.refresh_token)
    expect(
      (await platform.request('/api/v1/auth/me', { headers: bearer(rotated.access_token) })).status,
    ).toBe(200)

    const replay = await post('/api/v1/auth/refresh', { refresh_token: session.refresh_token })
    expect(replay.status).toBe(401)
    expect((await json(replay)).detail).toMatch(/already used/)
    // The thief's replay took the legitimate holder's newer tokens with it.
    expect((await post('/api/v1/auth/refresh', { refresh_token: rotated.refresh_token })).status).toBe(401)
    expect(
      (await platform.request('/api/v1/auth/me', { headers: bearer(rotated.access_token) })).status,
    ).toBe(401)
  })

  it('lets exactly one of many concurrent refreshes of one token through', async () => {
    const session = await signIn(platform, customer.email, customer.password)
    const statuses = await Promise.all(
      Array.from({ length: 10 }, () =>
        post('/api/v1/auth/refresh', { refresh_token: session.refresh_token }),
      ),
    ).then((all) => all.map((r) => r.status))
    expect(statuses.filter((s) => s === 200).length).toBeLessThanOrEqual(1)
    expect(statuses.filter((s) => s === 401).length).toBeGreaterThanOrEqual(9)
  })

  it('logout revokes the access token at once and the refresh family', async () => {
    const session = await signIn(platform, customer.email, customer.password)
    const out = await platform.request('/api/v1/auth/logout', {
      method: 'POST',
      headers: bearer(session.access_token),
    })
    expect(out.status).toBe(204)
    expect(
      (await platform.request('/api/v1/auth/me', { headers: bearer(session.access_token) })).status,
    ).toBe(401)
    expect((await post('/api/v1/auth/refresh', { refresh_token: session.refresh_token })).status).toBe(401)
  })

  it('a password change ends every other session and returns a fresh one', async () => {
    const account = await createAccount(platform, admin, 'customer')
    const other = await signIn(platform, account.email, account.password)
    const res = await post(
      '/api/v1/auth/password',
      { current_password: account.password, new_password: 'another long passphrase' },
      bearer(account.token),
    )
    expect(res.status).toBe(200)
    const fresh = await json(res)
    expect((await platform.request('/api/v1/auth/me', { headers: bearer(account.token) })).status).toBe(401)
    expect((await platform.request('/api/v1/auth/me', { headers: bearer(other.access_token) })).status).toBe(
      401,
    )
    expect((await post('/api/v1/auth/refresh', { refresh_token: other.refresh_token })).status).toBe(401)
    expect((await platform.request('/api/v1/auth/me', { headers: bearer(fresh.access_token) })).status).toBe(
      200,
    )
    await signIn(platform, account.email, 'another long passphrase')
  })
})

describe('access tokens', () => {
  async function signingKey() {
    const [key] = await db.collection('signing_keys').find({}).sort({ created_at: -1 }).limit(1).toArray()
    if (!key) throw new Error('no active signing key')
    return {
      kid: String(key._id),
      privateKey: await importJWK(key.private_jwk, 'ES256'),
      publicJwk: key.public_jwk,
    }
  }

  async function forge(
    change: {
      header?: Record<string, unknown>
      claims?: Record<string, unknown>
      issuer?: string
      audience?: string
      exp?: number | string
      nbf?: number | string
    } = {},
  ) {
    const { kid, privateKey } = await signingKey()
    const user = await db.collection('users').findOne({ _id: admin.id } as object)
    let jwt = new SignJWT({ role: 'admin', fam: 'forged-family', sep: user?.session_epoch, ...change.claims })
      .setProtectedHeader({ alg: 'ES256', kid, typ: 'at+jwt', ...change.header })
      .setSubject(admin.id)
      .setIssuer(change.issuer ?? 'smart-parking')
      .setAudience(change.audience ?? 'smart-parking-api')
      .setIssuedAt()
      .setJti(randomBytes(8).toString('hex'))
      .setExpirationTime(change.exp ?? '5m')
    if (change.nbf !== undefined) jwt = jwt.setNotBefore(change.nbf)
    return await jwt.sign(privateKey)
  }

  it('accepts a well-formed token signed with the active key (the control case)', async () => {
    const res = await platform.request('/api/v1/users', { headers: bearer(await forge()) })
    expect(res.status).toBe(200)
  })

  const negatives: [string, () => Promise<string>][] = [
    [
      'alg none',
      async () =>
        new UnsecuredJWT({ sub: admin.id, role: 'admin', fam: 'f', jti: 'j' })
          .setIssuer('smart-parking')
          .setAudience('smart-parking-api')
          .setIssuedAt()
          .setExpirationTime('5m')
          .encode(),
    ],
    [
      'HS256 signed with the public key',
      async () => {
        const { kid, publicJwk } = await signingKey()
        const secret = new TextEncoder().encode(JSON.stringify(publicJwk))
        return await new SignJWT({ role: 'admin', fam: 'f' })
          .setProtectedHeader({ alg: 'HS256', kid, typ: 'at+jwt' })
          .setSubject(admin.id)
          .setIssuer('smart-parking')
          .setAudience('smart-parking-api')
          .setIssuedAt()
          .setJti('j')
          .setExpirationTime('5m')
          .sign(secret)
      },
    ],
    ['expired', () => forge({ exp: Math.floor(Date.now() / 1000) - 60 })],
    ['not yet valid', () => forge({ nbf: Math.floor(Date.now() / 1000) + 600 })],
    ['from another issuer', () => forge({ issuer: 'someone-else' })],
    ['for another audience', () => forge({ audience: 'another-api' })],
    ['with an unknown key id', () => forge({ header: { kid: 'no-such-key' } })],
    [
      'with a tampered payload',
      async () => {
        const token = await forge({ claims: { role: 'customer' } })
        const [header, payload, signature] = token.split('.')
        const claims = JSON.parse(Buffer.from(payload ?? '', 'base64url').toString())
        claims.role = 'admin'
        return [header, Buffer.from(JSON.stringify(claims)).toString('base64url'), signature].join('.')
      },
    ],
    ['of another type', () => forge({ header: { typ: 'JWT' } })],
  ]

  it.each(negatives)('refuses a token %s with 401', async (_name, make) => {
    const res = await platform.request('/api/v1/users', { headers: bearer(await make()) })
    expect(res.status).toBe(401)
    expect(res.headers.get('www-authenticate')).toContain('Bearer')
    expect((await json(res)).code).toBe('UNAUTHENTICATED')
  })

  it('refuses a token of a disabled account at once, and its sign-in', async () => {
    const account = await createAccount(platform, admin, 'operator')
    const disable = await platform.request(`/api/v1/users/${account.id}`, {
      method: 'PATCH',
      ...jsonBody({ status: 'disabled' }, bearer(admin.token)),
    })
    expect((await json(disable)).status).toBe('disabled')
    expect((await platform.request('/api/v1/auth/me', { headers: bearer(account.token) })).status).toBe(401)
    expect(
      (await post('/api/v1/auth/login', { email: account.email, password: account.password })).status,
    ).toBe(401)
  })

  it('rotates the signing key without signing anyone out', async () => {
    const before = await json(await platform.request('/api/v1/auth/jwks'))
    const rotated = await platform.request('/api/v1/auth/keys/rotate', {
      method: 'POST',
      headers: bearer(admin.token),
    })
    expect(rotated.status).toBe(200)
    const { kid } = await json(rotated)
    const after = await json(await platform.request('/api/v1/auth/jwks'))
    expect(after.keys.map((k: { kid: string }) => k.kid)).toEqual(
      expect.arrayContaining([kid, ...before.keys.map((k: { kid: string }) => k.kid)]),
    )
    for (const key of after.keys) expect(key).not.toHaveProperty('d')
    // A token signed with the old key still works; new ones carry the new key id.
    expect((await platform.request('/api/v1/auth/me', { headers: bearer(customer.token) })).status).toBe(200)
    const fresh = await signIn(platform, customer.email, customer.password)
    const header = JSON.parse(Buffer.from(fresh.access_token.split('.')[0], 'base64url').toString())
    expect(header).toMatchObject({ alg: 'ES256', kid, typ: 'at+jwt' })

    // Two rotations at once leave two new keys; the newer signs and both verify.
    const both = await Promise.all(
      [1, 2].map(() =>
        platform.request('/api/v1/auth/keys/rotate', { method: 'POST', headers: bearer(admin.token) }),
      ),
    )
    expect(both.map((r) => r.status)).toEqual([200, 200])
    const again = await signIn(platform, customer.email, customer.password)
    expect((await platform.request('/api/v1/auth/me', { headers: bearer(again.access_token) })).status).toBe(
      200,
    )
    expect((await platform.request('/api/v1/auth/me', { headers: bearer(fresh.access_token) })).status).toBe(
      200,
    )
  })
})

describe('roles', () => {
  const id = '01a20000-0000-7000-8000-000000000000'
  const matrix: [string, string, string, Record<'anonymous' | 'customer' | 'operator' | 'admin', number>][] =
    [
      ['GET', '/api/v1/auth/me', '', { anonymous: 401, customer: 200, operator: 200, admin: 200 }],
      ['PATCH', '/api/v1/auth/me', '{}', { anonymous: 401, customer: 200, operator: 200, admin: 200 }],
      ['GET', '/api/v1/auth/jwks', '', { anonymous: 200, customer: 200, operator: 200, admin: 200 }],
      ['POST', '/api/v1/auth/register', '{}', { anonymous: 400, customer: 400, operator: 400, admin: 400 }],
      ['POST', '/api/v1/auth/login', '{}', { anonymous: 400, customer: 400, operator: 400, admin: 400 }],
      ['POST', '/api/v1/auth/refresh', '{}', { anonymous: 400, customer: 400, operator: 400, admin: 400 }],
      ['POST', '/api/v1/auth/password', '{}', { anonymous: 401, customer: 400, operator: 400, admin: 400 }],
      [
        'GET',
        '/api/v1/documents/download?key=a&expires=1&signature=b',
        '',
        { anonymous: 403, customer: 403, operator: 403, admin: 403 },
      ],
      ['GET', '/api/v1/users', '', { anonymous: 401, customer: 403, operator: 403, admin: 200 }],
      ['POST', '/api/v1/users', '{}', { anonymous: 401, customer: 403, operator: 403, admin: 400 }],
      ['GET', `/api/v1/users/${id}`, '', { anonymous: 401, customer: 403, operator: 403, admin: 404 }],
      ['PATCH', `/api/v1/users/${id}`, '{}', { anonymous: 401, customer: 403, operator: 403, admin: 404 }],
      ['DELETE', `/api/v1/users/${id}`, '', { anonymous: 401, customer: 403, operator: 403, admin: 404 }],
      ['POST', '/api/v1/auth/keys/rotate', '', { anonymous: 401, customer: 403, operator: 403, admin: 200 }],
      ['POST', '/api/v1/auth/logout', '', { anonymous: 401, customer: 204, operator: 204, admin: 204 }],
    ]
  const cases = matrix.flatMap(([method, path, body, expected]) =>
    (Object.keys(expected) as (keyof typeof expected)[]).map(
      (who) => [who, method, path, body, expected[who]] as const,
    ),
  )

  it.each(cases)('%s: %s %s answers %s', async (who, method, path, body, status) => {
    // Logout spends the token, so each case signs in afresh.
    const account =
      who === 'anonymous' ? undefined : who === 'admin' ? admin : who === 'customer' ? customer : operator
    const token = account ? (await signIn(platform, account.email, account.password)).access_token : undefined
    const headers: Record<string, string> = token ? bearer(token) : {}
    if (body) headers['Content-Type'] = 'application/json'
    const res = await platform.request(path, { method, headers, ...(body ? { body } : {}) })
    expect(res.status).toBe(status)
  })
})

describe('admins', () => {
  it('cannot remove the last active admin, and can once there is another', async () => {
    const self = `/api/v1/users/${admin.id}`
    for (const change of [{ status: 'disabled' }, { role: 'operator' }]) {
      const res = await platform.request(self, { method: 'PATCH', ...jsonBody(change, bearer(admin.token)) })
      expect(res.status).toBe(409)
    }
    expect((await platform.request(self, { method: 'DELETE', headers: bearer(admin.token) })).status).toBe(
      409,
    )

    const second = await createAccount(platform, admin, 'admin')
    const statuses = await Promise.all([
      platform.request(self, { method: 'PATCH', ...jsonBody({ status: 'disabled' }, bearer(second.token)) }),
      platform.request(`/api/v1/users/${second.id}`, {
        method: 'PATCH',
        ...jsonBody({ status: 'disabled' }, bearer(admin.token)),
      }),
    ]).then((all) => all.map((r) => r.status))
    // Both at once: one wins, the other finds it would leave no admin.
    expect([...statuses].sort()).toEqual([200, 409])
    expect(await db.collection('users').countDocuments({ role: 'admin', status: 'active' })).toBe(1)

    // Put the first admin back for the tests that follow.
    if (statuses[0] === 200) {
      await platform.request(self, {
        method: 'PATCH',
        ...jsonBody({ status: 'active' }, bearer(second.token)),
      })
      admin = await signInAdmin(platform)
    }
  })

  it('creates the first admin from the environment once', async () => {
    expect(await db.collection('users').countDocuments({ email: testAdmin.ADMIN_EMAIL })).toBe(1)
  })

  it('lists accounts page by page with an opaque cursor', async () => {
    const token = admin.token
    const first = await json(await platform.request('/api/v1/users?limit=2', { headers: bearer(token) }))
    expect(first.data).toHaveLength(2)
    expect(first.next_cursor).toEqual(expect.any(String))
    const second = await json(
      await platform.request(`/api/v1/users?limit=2&cursor=${first.next_cursor}`, { headers: bearer(token) }),
    )
    expect(second.data[0].id > first.data[1].id).toBe(true)
    const capped = await platform.request('/api/v1/users?limit=1000', { headers: bearer(token) })
    expect(capped.status).toBe(400)
  })
})

describe('sign-in throttling', () => {
  let throttled: TestPlatform
  beforeAll(async () => {
    throttled = await startTestPlatform({
      ...testAdmin,
      TRUST_PROXY: 'true',
      LOGIN_FAILURES_PER_ACCOUNT: '5',
      LOGIN_FAILURES_PER_ADDRESS: '8',
    })
  })
  afterAll(async () => {
    await throttled?.stop()
  })
  const attempt = (email: string, password: string, address: string) =>
    throttled.request('/api/v1/auth/login', {
      method: 'POST',
      ...jsonBody({ email, password }, { 'X-Forwarded-For': address }),
    })

  it('locks an account after its failures, even from other addresses and with the right password', async () => {
    for (let i = 0; i < 5; i++)
      expect((await attempt(testAdmin.ADMIN_EMAIL, 'wrong password', `10.0.0.${i}`)).status).toBe(401)
    const locked = await attempt(testAdmin.ADMIN_EMAIL, testAdmin.ADMIN_PASSWORD, '10.0.1.1')
    expect(locked.status).toBe(429)
    const retryAfter = Number(locked.headers.get('retry-after'))
    expect(retryAfter).toBeGreaterThan(0)
    expect(retryAfter).toBeLessThanOrEqual(900)
  })

  it('evaluates no more than the limit when failures arrive all at once', async () => {
    const account = `burst-${randomBytes(4).toString('hex')}@example.com`
    const statuses = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        attempt(account, 'wrong password', `10.7.0.${i}`).then((r) => r.status),
      ),
    )
    expect(statuses.filter((s) => s === 401)).toHaveLength(5)
    expect(statuses.filter((s) => s === 429)).toHaveLength(15)
  })

  it('limits one address across accounts, and only that address', async () => {
    for (let i = 0; i < 8; i++)
      expect((await attempt(uniqueEmail(), 'wrong password', '10.9.9.9')).status).toBe(401)
    expect((await attempt(uniqueEmail(), 'wrong password', '10.9.9.9')).status).toBe(429)
    expect((await attempt(uniqueEmail(), 'wrong password', '10.9.9.10')).status).toBe(401)
  })
})
