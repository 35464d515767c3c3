import type { OpenAPIHono } from '@hono/zod-openapi'
import type { AppEnv } from '../../http/context.ts'
import * as routes from './jobs.routes.ts'

export function mountJobs(app: OpenAPIHono<AppEnv>) {
  app.openapi(routes.listJobs, async (c) => c.json(await c.var.services.jobs.list(), 200))

  app.openapi(routes.runJob, async (c) =>
    c.json(await c.var.services.jobs.run(c.req.valid('param').name), 200),
  )

  app.openapi(routes.getMonthlyReport, async (c) =>
    c.html(await c.var.services.mailJobs.monthlyReportHtml(c.req.valid('param').month), 200),
  )
}
