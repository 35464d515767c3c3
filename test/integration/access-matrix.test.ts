import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { type Account, bearer, createAccount, signInAdmin, testAdmin } from '../harness/accounts.ts'
import { json } from '../harness/http.ts'
import { startTestPlatform, type TestPlatform } from '../harness/platform.ts'

// The role matrix of every operation the platform documents, read from its own /openapi.json: each
// operation states its access rule ("Access: operator or admin (approved accounts)."), and each
// caller the rule leaves out is refused before anything else happens: 401 without a token or with
// a bad one, 403 for a role outside the rule. Routes added later are covered without a new line
// here; the allowed callers are tested by each capability's own suite.

type Role = 'customer' | 'operator' | 'admin'
type Operation = { method: string; path: string; roles: Role[] | 'public' }

let platform: TestPlatform
const callers = {} as Record<Role, Account>
const operations: Operation[] = []

beforeAll(async () => {
  platform = await startTestPlatform(testAdmin)
  callers.admin = await signInAdmin(platform)
  callers.operator = await createAccount(platform, callers.admin, 'operator')
  callers.customer = await createAccount(platform, callers.admin, 'customer')
  const doc = await json(await platform.request('/openapi.json'))
  for (const [path, item] of Object.entries(doc.paths as Record<string, Record<string, unknown>>)) {
    for (const [method, op] of Object.entries(item)) {
      const description = String((op as { description?: string }).description ?? '')
      // "Access: anyone.", "Access: any signed-in account ...", "Access: operator or admin ...";
      // a device's or Stripe's door says otherwise and is tested with its own credentials.
      const rule =
        /^Access: (anyone|any signed-in account|(?:customer|operator|admin)(?:(?:, | or )(?:customer|operator|admin))*)[ .,]/.exec(
          description,
        )?.[1]
      if (!rule) continue
      const roles: Operation['roles'] =
        rule === 'anyone'
          ? 'public'
          : rule === 'any signed-in account'
            ? ['customer', 'operator', 'admin']
            : (rule.split(/, | or /) as Role[])
      operations.push({ method: method.toUpperCase(), path, roles })
    }
  }
})
afterAll(async () => {
  await platform?.stop()
})

/** The path with a fresh id in every parameter: the refusal must come before any lookup. */
const concrete = (path: string) => path.replace(/\{[^}]+\}/g, () => randomUUID())

async function call(op: Operation, headers: Record<string, string>) {
  const withBody = op.method !== 'GET' && op.method !== 'DELETE'
  return await platform.request(concrete(op.path), {
    method: op.method,
    headers: { ...headers, ...(withBody ? { 'Content-Type': 'application/json' } : {}) },
    ...(withBody ? { body: '{}' } : {}),
  })
}

describe('the role matrix of every documented operation', () => {
  test('every operation of the API states its access rule, in roles that exist', () => {
    expect(operations.length).toBeGreaterThan(100)
    for (const op of operations) {
      if (op.roles === 'public') continue
      for (const role of op.roles)
        expect(['customer', 'operator', 'admin'], `${op.method} ${op.path}`).toContain(role)
    }
  })

  test('refuses a caller without a token, and one with a forged token, with 401', async () => {
    const guarded = operations.filter((op) => op.roles !== 'public')
    const wrong: string[] = []
    for (const op of guarded) {
      const anonymous = await call(op, {})
      const forged = await call(op, bearer('eyJhbGciOiJFZERTQSJ9.e30.c2lnbmF0dXJl'))
      if (anonymous.status !== 401 || forged.status !== 401)
        wrong.push(`${op.method} ${op.path}: ${anonymous.status} / ${forged.status}`)
      else expect(anonymous.headers.get('www-authenticate')).toBe('Bearer')
    }
    expect(wrong).toEqual([])
  })

  test('refuses every role outside the rule with 403, before looking at the input', async () => {
    const wrong: string[] = []
    let checked = 0
    for (const op of operations) {
      if (op.roles === 'public') continue
      for (const role of ['customer', 'operator', 'admin'] as const) {
        if (op.roles.includes(role)) continue
        checked++
        const res = await call(op, bearer(callers[role].token))
        if (res.status !== 403) wrong.push(`${op.method} ${op.path} as ${role}: ${res.status}`)
        else expect((await json(res)).code).toBe('FORBIDDEN')
      }
    }
    expect(checked).toBeGreaterThan(50)
    expect(wrong).toEqual([])
  })
})
