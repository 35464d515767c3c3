import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { clientTypesPath, documentFromRoutes, renderClientTypes } from '../../scripts/generate-client.ts'
import { createParkingClient, isProblem, problemOf } from '../../src/client/index.ts'
import { type Account, createAccount, signInAdmin, testAdmin } from '../harness/accounts.ts'
import { clientFor, expectData, expectProblem } from '../harness/client.ts'
import { createLot } from '../harness/facility.ts'
import { json } from '../harness/http.ts'
import { startTestPlatform, type TestPlatform } from '../harness/platform.ts'

// The typed client (src/client): its generated types are what openapi-typescript makes of the
// live /openapi.json, and it signs in, lists and reports problems as the README shows.

let platform: TestPlatform
let admin: Account

beforeAll(async () => {
  platform = await startTestPlatform(testAdmin)
  admin = await signInAdmin(platform)
})
afterAll(async () => {
  await platform?.stop()
})

/** Where two texts first differ, with a few lines of each around it. */
function firstDifference(committed: string, generated: string): string {
  const a = committed.split('\n')
  const b = generated.split('\n')
  let line = 0
  while (line < Math.max(a.length, b.length) && a[line] === b[line]) line++
  const around = (lines: string[]) => lines.slice(Math.max(0, line - 2), line + 3).join('\n')
  return `first difference at line ${line + 1}\n--- committed\n${around(a)}\n+++ generated\n${around(b)}`
}

describe('the generated types', () => {
  it('are what openapi-typescript generates from the live /openapi.json', async () => {
    const document = await json(await platform.request('/openapi.json'))
    const generated = await renderClientTypes(document)
    const committed = readFileSync(clientTypesPath, 'utf8')
    const same = committed === generated
    expect(
      same,
      same
        ? ''
        : `src/client/openapi.ts is out of date with the API: run npm run client:generate\n${firstDifference(committed, generated)}`,
    ).toBe(true)
  })

  it('come from a document that the route definitions alone give as the started platform does', async () => {
    // npm run client:generate starts no services: were its document another one, it would write
    // types that the check above rejects.
    const live = await json(await platform.request('/openapi.json'))
    expect(await documentFromRoutes()).toEqual(live)
  })
})

describe('the client', () => {
  it('signs in, lists lots and reports a typed problem, as in the README', async () => {
    const lot = await createLot(platform, admin)
    const anonymous = createParkingClient({ baseUrl: platform.url })

    // Over the platform's real socket, with the global fetch.
    const { data: session, error } = await anonymous.POST('/api/v1/auth/login', {
      body: { email: testAdmin.ADMIN_EMAIL, password: testAdmin.ADMIN_PASSWORD },
    })
    expect(error).toBeUndefined()
    if (!session) throw new Error('no session')
    expect(session.user.role).toBe('admin')

    const api = createParkingClient({ baseUrl: platform.url, token: session.access_token })
    const { data: lots, response } = await api.GET('/api/v1/lots', { params: { query: { limit: 100 } } })
    expect(response.status).toBe(200)
    expect(lots?.data.map((each) => each.id)).toContain(lot.lotId)

    const missing = randomUUID()
    const { data: none, error: problem } = await api.GET('/api/v1/lots/{id}', {
      params: { path: { id: missing } },
    })
    expect(none).toBeUndefined()
    expect(problem).toMatchObject({ status: 404, code: 'NOT_FOUND', instance: `/api/v1/lots/${missing}` })
    expect(problemOf(problem)?.code).toBe('NOT_FOUND')
  })

  it('sends no Authorization without a token, and a problem says why', async () => {
    const problem = await expectProblem(clientFor(platform).GET('/api/v1/auth/me'), 401)
    expect(problem.code).toBe('UNAUTHENTICATED')
  })

  it('asks getToken before every request, and a request that sets its own Authorization keeps it', async () => {
    const customer = await createAccount(platform, admin, 'customer')
    let current: string | undefined = customer.token
    const client = createParkingClient({
      baseUrl: platform.url,
      getToken: async () => current,
      fetch: async (request) => await platform.app.fetch(request),
    })
    expect((await expectData(client.GET('/api/v1/auth/me'))).email).toBe(customer.email)

    current = admin.token
    expect((await expectData(client.GET('/api/v1/auth/me'))).email).toBe(admin.email)

    const own = await expectData(
      client.GET('/api/v1/auth/me', { headers: { Authorization: `Bearer ${customer.token}` } }),
    )
    expect(own.email).toBe(customer.email)

    current = undefined
    await expectProblem(client.GET('/api/v1/auth/me'), 401)
  })

  it('is checked by tsc: an unknown path, a wrong body or a missing path parameter does not compile', () => {
    // Never called: `npm run check` fails on an unused @ts-expect-error, so types that decayed to
    // `any` (or a client that stopped checking) would fail here.
    const api = clientFor(platform, admin)
    const misuses = () => [
      // @ts-expect-error no such path
      api.GET('/api/v1/no-such-thing'),
      // @ts-expect-error the body lacks lot_id and the rest of a rate
      api.POST('/api/v1/rates', { body: { name: 'Hourly' } }),
      // @ts-expect-error limit is a number
      api.GET('/api/v1/lots', { params: { query: { limit: 'ten' } } }),
      // @ts-expect-error the path parameter is missing
      api.GET('/api/v1/lots/{id}', {}),
    ]
    expect(typeof misuses).toBe('function')
  })

  it('tells problems from other error bodies', () => {
    expect(
      isProblem({ type: '/problems/not-found', status: 404, code: 'NOT_FOUND', title: 'Not found' }),
    ).toBe(true)
    expect(problemOf('<html>Bad gateway</html>')).toBeUndefined()
    expect(problemOf({ message: 'upstream timeout' })).toBeUndefined()
    expect(problemOf(null)).toBeUndefined()
  })
})
