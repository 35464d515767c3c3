import type { OpenAPIHono } from '@hono/zod-openapi'
import type { AppEnv } from '../../http/context.ts'
import * as routes from './analytics.routes.ts'

export function mountAnalytics(app: OpenAPIHono<AppEnv>) {
  app.openapi(routes.getOccupancyStats, async (c) =>
    c.json(await c.var.services.analytics.occupancyNow(c.req.valid('query')), 200),
  )

  app.openapi(routes.getOccupancyTrends, async (c) =>
    c.json(await c.var.services.analytics.trendsQuery(c.req.valid('query')), 200),
  )

  app.openapi(routes.getRevenue, async (c) =>
    c.json(await c.var.services.analytics.revenue(c.req.valid('query')), 200),
  )

  app.openapi(routes.getStays, async (c) =>
    c.json(await c.var.services.analytics.stays(c.req.valid('query')), 200),
  )
}
