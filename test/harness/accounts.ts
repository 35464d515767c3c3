import { randomBytes } from 'node:crypto'
import type { Role } from '../../src/modules/accounts/accounts.model.ts'
import { bearer, json, jsonBody } from './http.ts'
import type { TestPlatform } from './platform.ts'

export { bearer, jsonBody }

/** The first admin of a test platform: pass as env to startTestPlatform. */
export const testAdmin = { ADMIN_EMAIL: 'admin@example.com', ADMIN_PASSWORD: 'first-operator-passphrase' }

export type Account = {
  id: string
  email: string
  password: string
  token: string
  refresh: string
  role: Role
}

export async function signIn(platform: TestPlatform, email: string, password: string) {
  const res = await platform.request('/api/v1/auth/login', {
    method: 'POST',
    ...jsonBody({ email, password }),
  })
  if (res.status !== 200) throw new Error(`sign-in of ${email} failed: ${res.status} ${await res.text()}`)
  return await json(res)
}

export async function signInAdmin(platform: TestPlatform): Promise<Account> {
  const session = await signIn(platform, testAdmin.ADMIN_EMAIL, testAdmin.ADMIN_PASSWORD)
  return {
    id: session.user.id,
    email: testAdmin.ADMIN_EMAIL,
    password: testAdmin.ADMIN_PASSWORD,
    token: session.access_token,
    refresh: session.refresh_token,
    role: 'admin',
  }
}

/** An approved account of the role, made by the admin, and signed in. */
export async function createAccount(platform: TestPlatform, admin: Account, role: Role): Promise<Account> {
  const email = `${role}-${randomBytes(5).toString('hex')}@example.com`
  const password = `pw-${randomBytes(8).toString('hex')}`
  const res = await platform.request('/api/v1/users', {
    method: 'POST',
    ...jsonBody({ email, password, full_name: `Test ${role}`, role }, bearer(admin.token)),
  })
  if (res.status !== 201) throw new Error(`creating a ${role} failed: ${res.status} ${await res.text()}`)
  const session = await signIn(platform, email, password)
  return {
    id: session.user.id,
    email,
    password,
    token: session.access_token,
    refresh: session.refresh_token,
    role,
  }
}
