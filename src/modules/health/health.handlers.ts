import { timingSafeEqual } from 'node:crypto'
import type { OpenAPIHono } from '@hono/zod-openapi'
import type { AppEnv } from '../../http/context.ts'
import { AppError } from '../../shared/errors.ts'
import * as routes from './health.routes.ts'

export function mountHealth(app: OpenAPIHono<AppEnv>, options: { metricsToken: string | undefined }) {
  app.openapi(routes.liveness, (c) => c.json(c.var.services.health.liveness(), 200))

  app.openapi(routes.readiness, async (c) => {
    const readiness = await c.var.services.health.readiness()
    if (!readiness.ready) {
      const detail = readiness.draining
        ? 'Not ready: shutting down'
        : `Not ready: ${readiness.down.join(', ')} down`
      throw new AppError('DEPENDENCY_UNAVAILABLE', detail, {
        extensions: { checks: readiness.checks },
        headers: { 'Retry-After': '2' },
      })
    }
    return c.json({ status: 'ready' as const, checks: readiness.checks }, 200)
  })

  app.openapi(routes.metrics, async (c) => {
    if (options.metricsToken && !bearerMatches(c.req.header('authorization'), options.metricsToken)) {
      throw new AppError('UNAUTHENTICATED', 'GET /metrics needs "Authorization: Bearer <METRICS_TOKEN>"', {
        headers: { 'WWW-Authenticate': 'Bearer realm="metrics"' },
      })
    }
    // Probe on scrape, so that dependency_up is as fresh as the scrape itself.
    await c.var.services.health.readiness()
    const { registry } = c.var.services.metrics
    return c.text(await registry.metrics(), 200, { 'Content-Type': registry.contentType })
  })
}

function bearerMatches(header: string | undefined, token: string): boolean {
  const given = Buffer.from(header?.replace(/^Bearer\s+/i, '') ?? '')
  const expected = Buffer.from(token)
  return given.length === expected.length && timingSafeEqual(given, expected)
}
