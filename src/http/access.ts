import { createRoute, type RouteConfig } from '@hono/zod-openapi'
import type { Context, MiddlewareHandler } from 'hono'
import type { AccountStatus, Role } from '../modules/accounts/accounts.model.ts'
import type { AccessClaims } from '../modules/accounts/tokens.service.ts'
import { AppError } from '../shared/errors.ts'
import type { AppEnv } from './context.ts'
import { problemResponses } from './openapi.ts'

// Who may call a route is declared once, next to its contract: the same declaration writes the
// route's OpenAPI security and description and installs the check that enforces it.

export type Access =
  | { kind: 'public' }
  | {
      kind: 'signed-in'
      roles: readonly Role[]
      /** Pending and denied accounts may call it too (their profile, their registration request). */
      unapproved: boolean
    }

export const access = {
  public: { kind: 'public' } as Access,
  /** Any signed-in account, whether approved or not. */
  anyAccount: { kind: 'signed-in', roles: ['customer', 'operator', 'admin'], unapproved: true } as Access,
  /** Customers, approved or not (their registration request). */
  customersIncludingUnapproved: { kind: 'signed-in', roles: ['customer'], unapproved: true } as Access,
  /** Approved accounts with one of the roles. */
  roles: (...roles: Role[]): Access => ({ kind: 'signed-in', roles, unapproved: false }),
}

export type Principal = {
  userId: string
  role: Role
  status: AccountStatus
  claims: AccessClaims
}

function describe(rule: Access): string {
  if (rule.kind === 'public') return 'Access: anyone.'
  const who = rule.roles.length === 3 ? 'any signed-in account' : rule.roles.join(' or ')
  return `Access: ${who}${rule.unapproved ? ', pending accounts included' : ' (approved accounts)'}.`
}

function guard(rule: Access & { kind: 'signed-in' }): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const header = c.req.header('authorization')
    const token = /^Bearer\s+(\S+)$/i.exec(header ?? '')?.[1]
    if (!token) {
      throw new AppError('UNAUTHENTICATED', 'Send "Authorization: Bearer <access token>"', {
        headers: { 'WWW-Authenticate': 'Bearer' },
      })
    }
    const { tokens, accounts } = c.var.services
    const claims = await tokens.verifyAccess(token)
    const user = await accounts.principal(claims.userId, claims.sessionEpoch)
    if (!user) {
      throw new AppError('UNAUTHENTICATED', 'The access token no longer matches an active account', {
        headers: { 'WWW-Authenticate': 'Bearer' },
      })
    }
    if (!rule.roles.includes(user.role)) {
      throw new AppError('FORBIDDEN', `This needs the role ${rule.roles.join(' or ')}`)
    }
    if (user.status !== 'active' && !rule.unapproved) {
      throw new AppError(
        'FORBIDDEN',
        `The account is ${user.status}: it may manage its profile and registration request until an admin approves it`,
      )
    }
    c.set('principal', { userId: user.id, role: user.role, status: user.status, claims })
    await next()
  }
}

/**
 * createRoute with its access rule: bearer security, the 401 and 403 it may answer, a line in its
 * description, and the middleware that enforces it (it runs before input validation, so an
 * anonymous caller learns nothing about the input rules).
 */
export function defineRoute<R extends RouteConfig>(rule: Access, route: R) {
  const description = [describe(rule), route.description].filter(Boolean).join('\n\n')
  const bodyCheck = route.request?.body?.required ? [requireBody] : []
  if (rule.kind === 'public') {
    return createRoute({ ...route, description, security: [], middleware: bodyCheck })
  }
  return createRoute({
    ...route,
    description,
    security: [{ bearerAuth: [] }],
    middleware: [guard(rule), ...bodyCheck],
    responses: { ...problemResponses('UNAUTHENTICATED', 'FORBIDDEN'), ...route.responses },
  })
}

/**
 * A required body must be there: without it Hono's validator sees `{}`, which an object whose
 * fields are all optional would accept.
 */
const requireBody: MiddlewareHandler<AppEnv> = async (c, next) => {
  // Over a socket the framing headers tell; an in-process Request (tests) has a null body.
  const overSocket = (c.env as { incoming?: unknown } | undefined)?.incoming !== undefined
  const hasBody = overSocket
    ? Number(c.req.header('content-length') ?? 0) > 0 || c.req.header('transfer-encoding') !== undefined
    : c.req.raw.body !== null
  if (!hasBody) {
    throw new AppError('VALIDATION_FAILED', 'This operation needs a request body', {
      errors: [{ in: 'body', field: '', pointer: '', reason: 'the body is missing' }],
    })
  }
  await next()
}

/** The signed-in caller; only for handlers of routes that require one. */
export function principalOf(c: Context<AppEnv>): Principal {
  const principal = c.var.principal
  if (!principal) throw new Error('principalOf() on a route without a signed-in access rule')
  return principal
}
