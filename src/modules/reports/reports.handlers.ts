import type { OpenAPIHono } from '@hono/zod-openapi'
import type { AppEnv } from '../../http/context.ts'
import * as routes from './reports.routes.ts'

export function mountReports(app: OpenAPIHono<AppEnv>) {
  app.openapi(routes.getDashboard, async (c) =>
    c.json(await c.var.services.reports.dashboard(c.req.valid('query')), 200),
  )
}
