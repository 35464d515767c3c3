import type { OpenAPIHono } from '@hono/zod-openapi'
import type { Context, MiddlewareHandler } from 'hono'
import { matchedRoutes } from 'hono/route'
import { decodeJwt } from 'jose'
import { clientAddress } from '../../http/client-address.ts'
import type { AppEnv } from '../../http/context.ts'
import type { AccessClaims } from '../accounts/tokens.service.ts'
import type { AuditedMethod } from './audit.model.ts'
import type { AuditEntry } from './audit.service.ts'

// The HTTP door's recorder of operator and admin actions (README.md: what is recorded and why).

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])
const STAFF = new Set(['operator', 'admin'])

/**
 * The recorder's own reads of the state before an action: the same request (that object, which
 * no caller can forge) is left out of the request log and the HTTP metrics, being part of the
 * action's request rather than one of its own.
 */
const internalReads = new WeakSet<Request>()

/** Whether a request is the recorder's read of the state before an action. */
export const isAuditRead = (request: Request) => internalReads.has(request)

type AuditedRoute = {
  action: string
  /** The OpenAPI template, /api/v1/lots/{id}. */
  route: string
  segments: string[]
  /** Segments of the resource whose state `before` shows (a GET route of that template exists). */
  beforeSegments: number | undefined
}

/** `/api/v1/lots/:id` (Hono) -> `/api/v1/lots/{id}` (OpenAPI). */
const openApiPath = (honoPath: string) => honoPath.replace(/\/:([^/{?]+)(\{[^/]*\})?\??/g, '/{$1}')
const isParam = (segment: string) => /^\{.+\}$/.test(segment)

/**
 * The documented operations that take a bearer token and change state, by `METHOD template`,
 * with where their `before` state is read: for PUT, PATCH and DELETE the same path when it has a
 * GET; otherwise (and for POST actions like /registration-requests/{id}/approve) the path up to
 * its first parameter, /registration-requests/{id}, when that has a GET.
 */
function auditedRoutes(app: OpenAPIHono<AppEnv>): Map<string, AuditedRoute> {
  const routes = app.openAPIRegistry.definitions.flatMap((d) => (d.type === 'route' ? [d.route] : []))
  const readable = new Set(routes.filter((r) => r.method === 'get').map((r) => r.path))
  const index = new Map<string, AuditedRoute>()
  for (const r of routes) {
    const method = r.method.toUpperCase()
    if (!MUTATING.has(method)) continue
    if (!(r.security ?? []).some((requirement) => 'bearerAuth' in requirement)) continue
    const segments = r.path.split('/')
    const firstParam = segments.findIndex(isParam)
    const candidates = [
      method !== 'POST' && firstParam >= 0 ? segments.length : undefined,
      firstParam >= 0 ? firstParam + 1 : undefined,
    ]
    const beforeSegments = candidates.find(
      (count) => count !== undefined && readable.has(segments.slice(0, count).join('/')),
    )
    index.set(`${method} ${r.path}`, {
      action: r.operationId ?? `${method} ${r.path}`,
      route: r.path,
      segments,
      beforeSegments,
    })
  }
  return index
}

/**
 * What the action was about: the collection and id of the path's first parameter
 * (/lots/{id} -> lots, /registration-requests/{id}/approve -> registration-requests), or for a
 * path without one (a create) the collection and the id of what the answer shows.
 */
function targetOf(route: AuditedRoute, path: string, after: unknown): AuditEntry['target'] {
  const offset = 3 // '', 'api', 'v1'
  const concrete = path.split('/')
  const firstParam = route.segments.findIndex(isParam)
  if (firstParam > offset) {
    const raw = concrete[firstParam] ?? ''
    let id = raw
    try {
      id = decodeURIComponent(raw)
    } catch {}
    return { type: route.segments[firstParam - 1] ?? '', id }
  }
  const type = route.segments[offset]
  if (!type) return null
  return { type, id: createdId(type, after) }
}

function createdId(type: string, after: unknown): string | null {
  if (after === null || typeof after !== 'object' || Array.isArray(after)) return null
  const body = after as Record<string, unknown>
  if (typeof body.id === 'string') return body.id
  // { session: {...}, ticket_number } from POST /sessions/entry: the id of the named resource.
  const named = body[type.replace(/s$/, '').replaceAll('-', '_')]
  if (named && typeof named === 'object' && typeof (named as { id?: unknown }).id === 'string') {
    return (named as { id: string }).id
  }
  return null
}

async function jsonOf(response: Response): Promise<unknown> {
  if (!/[/+]json\b/i.test(response.headers.get('content-type') ?? '')) return undefined
  try {
    return await response.clone().json()
  } catch {
    return undefined
  }
}

/**
 * Records every POST, PUT, PATCH and DELETE of a documented bearer-token route made by an
 * operator or an admin, whatever its outcome, once the answer is made and before it leaves (so
 * the record exists when the caller has the answer). A failed write is logged and counted by the
 * audit service; the caller's answer is not changed.
 */
export function auditRecorder(
  app: OpenAPIHono<AppEnv>,
  options: { trustProxy: boolean },
): MiddlewareHandler<AppEnv> {
  let index: Map<string, AuditedRoute> | undefined

  /** What a request will be recorded as, once answered; undefined: not an audited request. */
  async function plan(c: Context<AppEnv>) {
    if (!MUTATING.has(c.req.method)) return undefined
    const authorization = c.req.header('authorization') ?? ''
    const token = /^Bearer\s+(\S+)$/i.exec(authorization)?.[1]
    // The claimed role is a cheap first filter (a customer's write costs no second verification);
    // the token is verified before anything is read on its strength, so that a forged one costs nothing.
    let claimed: unknown
    try {
      claimed = token ? decodeJwt(token).role : undefined
    } catch {}
    if (!token || typeof claimed !== 'string' || !STAFF.has(claimed)) return undefined
    index ??= auditedRoutes(app)
    const matched = matchedRoutes(c).find((r) => r.method !== 'ALL')
    const route = matched && index.get(`${c.req.method} ${openApiPath(matched.path)}`)
    if (!route) return undefined
    let claims: AccessClaims
    try {
      claims = await c.var.services.tokens.verifyAccess(token)
    } catch {
      return undefined // the guard answers 401; there is no staff action to record
    }
    if (!STAFF.has(claims.role)) return undefined

    const path = c.req.path
    let before: unknown
    if (route.beforeSegments !== undefined) {
      // Read through the API itself, with the caller's own token: what this caller could see.
      const resource = path.split('/').slice(0, route.beforeSegments).join('/')
      try {
        const read = new Request(new URL(resource, c.req.url), {
          headers: { authorization, 'x-request-id': c.var.requestId },
        })
        internalReads.add(read)
        const answer = await app.request(read)
        before = answer.status === 200 ? await jsonOf(answer) : undefined
      } catch (error) {
        c.var.logger.warn({ err: error }, 'audit: the state before the action could not be read')
      }
    }
    return { claims, route, path, before, at: new Date() }
  }

  async function entryOf(
    c: Context<AppEnv>,
    { claims, route, path, before, at }: NonNullable<Awaited<ReturnType<typeof plan>>>,
  ): Promise<AuditEntry | undefined> {
    // Refused before the guard let it through (a role outside the rule): the verified token says who.
    const actor = c.var.principal
      ? { userId: c.var.principal.userId, role: c.var.principal.role }
      : { userId: claims.userId, role: claims.role }
    if (actor.role !== 'operator' && actor.role !== 'admin') return undefined

    const status = c.res.status
    const answer = await jsonOf(c.res)
    const after = status >= 200 && status < 300 ? answer : undefined
    const errorCode =
      status >= 400 && answer && typeof answer === 'object' && 'code' in answer ? String(answer.code) : null
    let requestBody: unknown
    if (/[/+]json\b/i.test(c.req.header('content-type') ?? '')) {
      // Read by the validator already (Hono caches it), or read now for a request refused earlier.
      requestBody = await c.req.json().catch(() => undefined)
    }
    return {
      at,
      actor: { userId: actor.userId, role: actor.role },
      action: route.action,
      method: c.req.method as AuditedMethod,
      path,
      route: route.route,
      target: targetOf(route, path, after),
      status,
      errorCode,
      requestId: c.var.requestId,
      ip: clientAddress(c, options.trustProxy),
      userAgent: c.req.header('user-agent')?.slice(0, 512) ?? null,
      requestBody,
      before,
      after,
    }
  }

  return async (c, next) => {
    const planned = await plan(c)
    await next()
    if (!planned) return
    // Whatever goes wrong here, the answer made stays the answer.
    try {
      const entry = await entryOf(c, planned)
      if (entry) await c.var.services.audit.record(entry)
    } catch (error) {
      c.var.services.audit.reportFailure(error, {
        action: planned.route.action,
        path: planned.path,
        requestId: c.var.requestId,
      })
    }
  }
}
