import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { OpenAPIHono } from '@hono/zod-openapi'
import type { Context, MiddlewareHandler } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { cors } from 'hono/cors'
import { HTTPException } from 'hono/http-exception'
import { requestId } from 'hono/request-id'
import { matchedRoutes } from 'hono/route'
import { secureHeaders } from 'hono/secure-headers'
import { consoleRoutes, mountConsole } from '../console/console.routes.ts'
import { mountAccounts } from '../modules/accounts/accounts.handlers.ts'
import { mountAnalytics } from '../modules/analytics/analytics.handlers.ts'
import { mountPredictions } from '../modules/analytics/predictions.handlers.ts'
import { mountAudit } from '../modules/audit/audit.handlers.ts'
import { auditRecorder, isAuditRead } from '../modules/audit/audit.recorder.ts'
import { mountDiscounts } from '../modules/discounts/discounts.handlers.ts'
import { mountEv } from '../modules/ev/ev.handlers.ts'
import { mountExports } from '../modules/exports/exports.handlers.ts'
import { mountFacilities } from '../modules/facilities/facilities.handlers.ts'
import { mountHealth } from '../modules/health/health.handlers.ts'
import { mountJobs } from '../modules/jobs/jobs.handlers.ts'
import { mountMemberships } from '../modules/memberships/memberships.handlers.ts'
import { mountOccupancy } from '../modules/occupancy/occupancy.handlers.ts'
import { mountPayments } from '../modules/payments/payments.handlers.ts'
import { mountPricing } from '../modules/pricing/pricing.handlers.ts'
import { mountProblems } from '../modules/problems/problems.handlers.ts'
import { mountRegistrations, uploadLimits } from '../modules/registrations/registrations.handlers.ts'
import { mountReports } from '../modules/reports/reports.handlers.ts'
import { mountReservations } from '../modules/reservations/reservations.handlers.ts'
import { mountSensors } from '../modules/sensors/sensors.handlers.ts'
import { mountSessions } from '../modules/sessions/sessions.handlers.ts'
import { mountVehicles } from '../modules/vehicles/vehicles.handlers.ts'
import { mountWebhooks } from '../modules/webhooks/webhooks.handlers.ts'
import {
  AppError,
  errorCodes,
  errorTitles,
  isDependencyFailure,
  problemTypeOf,
  statusOf,
} from '../shared/errors.ts'
import type { Logger } from '../shared/logger.ts'
import type { AppEnv, Services } from './context.ts'
import { inputLocation, validationFailed, type ZodIssueLike } from './validation.ts'

export type HttpOptions = {
  version: string
  corsOrigins: string[]
  bodyLimitBytes: number
  metricsToken: string | undefined
  trustProxy: boolean
}

/** Routes that serve the documentation itself, and the operator console's pages: not in the document. */
export const undocumentedRoutes = ['/openapi.json', '/docs', '/docs/assets/:file', ...consoleRoutes]

export function createHttpApp(services: Services, logger: Logger, options: HttpOptions) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: rejectInvalidInput })

  app.use(requestId({ headerName: 'X-Request-Id' }))
  app.use(observe(services, logger))
  app.use(secureHeaders({ crossOriginResourcePolicy: false }))
  if (options.corsOrigins.length > 0) {
    app.use(
      cors({
        origin: options.corsOrigins,
        allowHeaders: ['Authorization', 'Content-Type', 'Idempotency-Key', 'X-Request-Id'],
        exposeHeaders: ['X-Request-Id', 'Location', 'Retry-After'],
        credentials: true,
        maxAge: 600,
      }),
    )
  }
  // One limit for every body, a larger one for the paths that take document uploads.
  const limit = (maxSize: number) =>
    bodyLimit({
      maxSize,
      onError: () => {
        throw new AppError('PAYLOAD_TOO_LARGE', `The request body exceeds ${maxSize} bytes`)
      },
    })
  const defaultLimit = limit(options.bodyLimitBytes)
  const uploads = new Map(Object.entries(uploadLimits).map(([path, bytes]) => [path, limit(bytes)]))
  app.use((c, next) => (uploads.get(c.req.path) ?? defaultLimit)(c, next))
  app.use(concretePathsFirst(app))
  // After the body limit: the recorder may read a refused request's body.
  app.use('/api/v1/*', auditRecorder(app, { trustProxy: options.trustProxy }))

  mountHealth(app, { metricsToken: options.metricsToken })
  mountProblems(app)
  mountAccounts(app, { trustProxy: options.trustProxy })
  mountVehicles(app)
  mountRegistrations(app)
  mountFacilities(app)
  mountSensors(app)
  mountOccupancy(app)
  mountPayments(app)
  mountPricing(app)
  mountSessions(app)
  mountDiscounts(app)
  mountReservations(app)
  mountMemberships(app)
  mountEv(app)
  mountAnalytics(app)
  mountReports(app)
  mountPredictions(app)
  mountExports(app)
  mountJobs(app)
  mountWebhooks(app)
  mountAudit(app)

  app.openAPIRegistry.registerComponent('securitySchemes', 'bearerAuth', {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'JWT',
    description: 'An access token from POST /api/v1/auth/login, /register or /refresh.',
  })
  app.openAPIRegistry.registerComponent('securitySchemes', 'metricsToken', {
    type: 'http',
    scheme: 'bearer',
    description: 'The value of METRICS_TOKEN, when it is set.',
  })
  app.doc31('/openapi.json', {
    openapi: '3.1.0',
    info: {
      title: 'Smart Parking API',
      version: options.version,
      description:
        'REST API for driver apps, operator consoles, gates and kiosks. Errors are RFC 9457 problem+json with a stable `code`; every response carries an `X-Request-Id`.',
    },
    tags: [
      { name: 'Auth', description: 'Sign-up, sign-in, tokens and the signed-in account' },
      { name: 'Users', description: 'Accounts and roles, for admins' },
      { name: 'Vehicles', description: 'Vehicle types, and the vehicles drivers register by license plate' },
      {
        name: 'Registration requests',
        description: 'Identification documents sent by customers, approved or denied by admins',
      },
      {
        name: 'Occupancy',
        description: 'Availability, free spaces, space state and history, and live feeds (SSE and WebSocket)',
      },
      {
        name: 'Sensors',
        description: 'Sensors and gateways, their broker credentials and health, and HTTP ingest',
      },
      { name: 'Facilities', description: 'Parking lots, their levels, zones and spaces, and space overlays' },
      { name: 'Rates', description: 'Rate plans (tariffs) of a lot, and what a stay would cost' },
      {
        name: 'Sessions',
        description: 'Entry and exit: tickets, space allocation, fees so far, manual space assignment',
      },
      {
        name: 'Discounts',
        description: 'Discount codes, their redemption, and merchant validations of sessions',
      },
      {
        name: 'Payments',
        description:
          'Cash, card-terminal and Stripe payments, receipts, refunds, exit validation and Stripe webhooks',
      },
      {
        name: 'EV charging',
        description:
          'Charging stations on EV spaces with their live status, and charging sessions billed with the parking fee',
      },
      {
        name: 'Memberships',
        description:
          'Membership plans, subscriptions with their vehicles, usage and savings, renewal and cancellation',
      },
      {
        name: 'Reservations',
        description:
          'Booking a space ahead for a time window: availability, confirmation numbers, prepayment, check-in, cancellation and refunds',
      },
      {
        name: 'Exports',
        description:
          "A customer's CSV export of their parking history: request, status, download, e-mail when ready",
      },
      { name: 'Reports', description: 'Dashboard, analytics and the monthly activity report, for admins' },
      {
        name: 'Audit',
        description:
          'The audit log of operator and admin actions (who, what, when, before and after), for admins',
      },
      {
        name: 'Jobs',
        description: 'Scheduled jobs: schedules, last and next runs, failures, and a run on demand',
      },
      {
        name: 'Webhooks',
        description:
          'Outbound webhooks: subscriptions of endpoints to events, signed deliveries with retries, the delivery log and replays, for admins',
      },
      { name: 'Operations', description: 'Health, readiness, metrics and problem types' },
    ],
  })
  mountDocs(app)
  mountConsole(app)

  const allowedMethods = methodIndex(app)
  app.notFound((c) => {
    const allow = allowedMethods(c.req.path)
    const error =
      allow.length > 0
        ? new AppError('METHOD_NOT_ALLOWED', `${c.req.method} is not allowed on ${c.req.path}`, {
            headers: { Allow: allow.join(', ') },
          })
        : new AppError('NOT_FOUND', `No route for ${c.req.method} ${c.req.path}`)
    return problemResponse(c, error)
  })
  app.onError((error, c) => problemResponse(c, toAppError(error, c.var.logger ?? logger)))

  return app
}

export type HttpApp = ReturnType<typeof createHttpApp>

function rejectInvalidInput(
  result: { success: true } | { success: false; target: string; error: { issues: readonly ZodIssueLike[] } },
): undefined {
  if (!result.success) throw validationFailed(result.error.issues, inputLocation(result.target))
}

function toAppError(error: Error, logger: Logger): AppError {
  if (error instanceof AppError) return error
  if (error instanceof HTTPException) {
    // Hono's own middleware throws these, for example on a JSON body that does not parse.
    const code =
      error.status === 400
        ? 'MALFORMED_REQUEST'
        : errorCodes.find((candidate) => statusOf(candidate) === error.status)
    if (code && code !== 'INTERNAL') return new AppError(code, error.message)
  }
  if (isDependencyFailure(error)) {
    logger.warn({ err: error }, 'dependency failure answered with 503')
    return new AppError(
      'DEPENDENCY_UNAVAILABLE',
      'A service this request needs is unavailable; retry shortly',
      {
        headers: { 'Retry-After': '2' },
      },
    )
  }
  logger.error({ err: error }, 'unexpected error')
  return new AppError('INTERNAL', 'An unexpected error occurred; the request id identifies it in the logs')
}

function problemResponse(c: Context<AppEnv>, error: AppError): Response {
  // A capability's extra members come first: the standard members (RFC 9457 and ours) always win,
  // so that an extension named `status` can never replace the HTTP status in the body.
  const body = {
    ...error.extensions,
    type: problemTypeOf(error.code),
    title: errorTitles[error.code],
    status: error.status,
    detail: error.message,
    instance: c.req.path,
    code: error.code,
    request_id: c.var.requestId,
    ...(error.errors ? { errors: error.errors } : {}),
  }
  return c.newResponse(JSON.stringify(body), error.status as 400, {
    ...error.headers,
    'Content-Type': 'application/problem+json',
  })
}

/** Request log line, route metrics and the services on the context, for every request. */
function observe(services: Services, logger: Logger) {
  const quiet = new Set(['/health', '/ready', '/metrics'])
  return async (c: Context<AppEnv>, next: () => Promise<void>) => {
    const begin = performance.now()
    const requestLogger = logger.child({ requestId: c.var.requestId })
    c.set('logger', requestLogger)
    c.set('services', services)
    await next()
    // The audit recorder's read of the state before an action is part of that action's request.
    if (isAuditRead(c.req.raw)) return
    const seconds = (performance.now() - begin) / 1000
    const route = routeTemplate(c)
    const labels = { method: c.req.method, route, status: String(c.res.status) }
    services.metrics.httpRequests.inc(labels)
    services.metrics.httpDuration.observe(labels, seconds)
    const line = {
      method: c.req.method,
      path: c.req.path,
      route,
      status: c.res.status,
      ms: +(seconds * 1000).toFixed(1),
    }
    if (quiet.has(route) && c.res.status < 500) requestLogger.debug(line, 'request')
    else requestLogger.info(line, 'request')
  }
}

/** The matched route's template (`/problems/:slug`), so that metrics do not explode by id. */
function routeTemplate(c: Context): string {
  const route = matchedRoutes(c)
    .filter((r) => r.method !== 'ALL')
    .at(-1)
  return route?.path ?? 'unmatched'
}

/**
 * For a path that matched no route: the methods other routes accept on it, for 405 and Allow.
 * As in OpenAPI, a more concrete template wins: /payments/confirm answers POST, not also the GET
 * of /payments/{id}.
 */
function methodIndex(app: OpenAPIHono<AppEnv>): (path: string) => string[] {
  let index: { pattern: RegExp; params: number; method: string }[] | undefined
  return (path) => {
    index ??= app.routes
      .filter((route) => route.method !== 'ALL')
      .map((route) => ({
        pattern: pathPattern(route.path),
        params: route.path.split('/').filter((s) => s.startsWith(':') || s === '*').length,
        method: route.method,
      }))
    const matching = index.filter((route) => route.pattern.test(path))
    const fewest = Math.min(...matching.map((route) => route.params))
    const methods = new Set(matching.filter((route) => route.params === fewest).map((route) => route.method))
    if (methods.has('GET')) methods.add('HEAD')
    return [...methods].sort()
  }
}

/**
 * A path that a template without parameters names belongs to that template, as in OpenAPI: GET
 * /payments/confirm is a 405, not the GET of /payments/{id} asked about the id "confirm".
 */
function concretePathsFirst(app: OpenAPIHono<AppEnv>): MiddlewareHandler<AppEnv> {
  let concrete: Map<string, Set<string>> | undefined
  return async (c, next) => {
    if (!concrete) {
      concrete = new Map()
      for (const route of app.routes) {
        if (route.method === 'ALL' || /[:*]/.test(route.path)) continue
        const methods = concrete.get(route.path) ?? new Set()
        concrete.set(route.path, methods.add(route.method))
        if (route.method === 'GET') methods.add('HEAD')
      }
    }
    const path = c.req.path.length > 1 ? c.req.path.replace(/\/$/, '') : c.req.path
    const methods = concrete.get(path)
    if (methods && !methods.has(c.req.method)) {
      throw new AppError('METHOD_NOT_ALLOWED', `${c.req.method} is not allowed on ${path}`, {
        headers: { Allow: [...methods].sort().join(', ') },
      })
    }
    await next()
  }
}

function pathPattern(template: string): RegExp {
  const source = template
    .split('/')
    .map((segment) => {
      if (segment === '*') return '.*'
      const param = /^:[^{]+(?:\{(.+)\})?(\?)?$/.exec(segment)
      if (param) return `(${param[1] ?? '[^/]+'})${param[2] ?? ''}`
      return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
    })
    .join('/')
  return new RegExp(`^${source}/?$`)
}

function mountDocs(app: OpenAPIHono<AppEnv>) {
  // Swagger UI from the swagger-ui-dist package, served by us: /docs works without a CDN.
  const dist = dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'))
  const assets: Record<string, { body: string; type: string }> = {
    'swagger-ui.css': { body: readFileSync(join(dist, 'swagger-ui.css'), 'utf8'), type: 'text/css' },
    'swagger-ui-bundle.js': {
      body: readFileSync(join(dist, 'swagger-ui-bundle.js'), 'utf8'),
      type: 'text/javascript',
    },
    'init.js': {
      body: "window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#swagger-ui', deepLinking: true, displayRequestDuration: true })",
      type: 'text/javascript',
    },
  }
  app.get('/docs', (c) =>
    c.html(
      '<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">' +
        '<title>Smart Parking API</title><link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>' +
        '<body><div id="swagger-ui"></div><script src="/docs/assets/swagger-ui-bundle.js"></script>' +
        '<script src="/docs/assets/init.js"></script></body></html>',
    ),
  )
  app.get('/docs/assets/:file', (c) => {
    const asset = assets[c.req.param('file')]
    if (!asset) throw new AppError('NOT_FOUND', `No documentation asset ${c.req.param('file')}`)
    return c.body(asset.body, 200, {
      'Content-Type': `${asset.type}; charset=utf-8`,
      'Cache-Control': 'public, max-age=3600',
    })
  })
}
