import type { OpenAPIHono } from '@hono/zod-openapi'
import type { AppEnv } from '../../http/context.ts'
import * as routes from './audit.routes.ts'

export function mountAudit(app: OpenAPIHono<AppEnv>) {
  app.openapi(routes.listAuditLog, async (c) =>
    c.json(await c.var.services.audit.list(c.req.valid('query')), 200),
  )

  app.openapi(routes.getAuditRecord, async (c) =>
    c.json(await c.var.services.audit.get(c.req.valid('param').id), 200),
  )
}
