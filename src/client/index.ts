import createClient, { type Client, type Middleware } from 'openapi-fetch'
import type { components, operations, paths } from './openapi.ts'

// The typed client of the platform's API: openapi-fetch over the types that openapi-typescript
// generates from the platform's own /openapi.json (./openapi.ts, `npm run client:generate`).
// Paths, parameters, bodies, responses and problems are checked by tsc against the routes as
// they are documented; the end-to-end tests make their calls through it.

export type { components, operations, paths }

export type ParkingClient = Client<paths>

/** An RFC 9457 problem, the body of every error response; capabilities may add members. */
export type Problem = components['schemas']['Problem']

/** The stable codes a problem carries. */
export type ProblemCode = Problem['code']

export type ParkingClientOptions = {
  /** Where the platform answers, e.g. `https://parking.example.com` (paths start with `/api/v1`). */
  baseUrl: string
  /** A bearer access token sent with every request. */
  token?: string
  /** Asked before every request, for a token that changes (refreshed, signed out); wins over `token`. */
  getToken?: () => string | undefined | Promise<string | undefined>
  /** Another fetch, e.g. an in-process app's; defaults to the global fetch. */
  fetch?: (request: Request) => Promise<Response>
  /** Headers sent with every request. */
  headers?: Record<string, string>
}

/**
 * A client of the API: `client.GET('/api/v1/lots', { params: { query: { limit: 10 } } })` answers
 * `{ data, error, response }` where `data` is the documented success body and `error` the problem.
 * A request that sets its own Authorization header keeps it.
 */
export function createParkingClient(options: ParkingClientOptions): ParkingClient {
  const send = options.fetch
  const client = createClient<paths>({
    baseUrl: options.baseUrl,
    ...(send ? { fetch: (request: Request) => send(request) } : {}),
    ...(options.headers ? { headers: options.headers } : {}),
  })
  const getToken = options.getToken ?? (() => options.token)
  client.use(bearerAuth(getToken))
  return client
}

function bearerAuth(getToken: () => string | undefined | Promise<string | undefined>): Middleware {
  return {
    async onRequest({ request }) {
      if (request.headers.has('Authorization')) return request
      const token = await getToken()
      if (token) request.headers.set('Authorization', `Bearer ${token}`)
      return request
    },
  }
}

/** Whether a value is a problem body (what `error` holds for every documented error response). */
export function isProblem(value: unknown): value is Problem {
  if (typeof value !== 'object' || value === null) return false
  const { type, status, code } = value as Record<string, unknown>
  return typeof type === 'string' && typeof status === 'number' && typeof code === 'string'
}

/**
 * The problem of a failed call, or undefined: `problemOf(error)?.code === 'PAYMENT_REQUIRED'`.
 * An undocumented error (a proxy's HTML page, a body that is not JSON) is not a problem.
 */
export function problemOf(error: unknown): Problem | undefined {
  return isProblem(error) ? error : undefined
}
