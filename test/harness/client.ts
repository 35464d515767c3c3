import { expect } from 'vitest'
import { createParkingClient, type ParkingClient } from '../../src/client/index.ts'
import type { Who } from './http.ts'
import type { TestPlatform } from './platform.ts'

/**
 * The typed client (src/client) as `who` (an account, a bare token, or nobody), on the platform's
 * app in process: requests carry the platform's own URL but no socket is involved.
 */
export function clientFor(platform: TestPlatform, who?: Who): ParkingClient {
  const token = typeof who === 'string' ? who : who?.token
  return createParkingClient({
    baseUrl: platform.url,
    ...(token ? { token } : {}),
    fetch: async (request) => await platform.app.fetch(request),
  })
}

type CallResult = { data?: unknown; error?: unknown; response: Response }

/**
 * The data of a client call that must answer `status` (the problem or body is the failure
 * message), typed as the route documents its success body.
 */
export async function expectData<R extends CallResult>(
  call: Promise<R>,
  status = 200,
): Promise<NonNullable<R['data']>> {
  const result = await call
  expect(result.response.status, JSON.stringify(result.error ?? result.data)).toBe(status)
  expect(result.data, 'a success body').toBeDefined()
  return result.data as NonNullable<R['data']>
}

/** The problem of a client call that must fail with `status`, typed as the route documents it. */
export async function expectProblem<R extends CallResult>(
  call: Promise<R>,
  status: number,
): Promise<NonNullable<R['error']>> {
  const result = await call
  expect(result.response.status, JSON.stringify(result.error ?? result.data)).toBe(status)
  expect(result.response.headers.get('content-type')).toMatch(/^application\/problem\+json/)
  return result.error as NonNullable<R['error']>
}
