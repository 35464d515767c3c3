import type { OpenAPIHono } from '@hono/zod-openapi'
import { principalOf } from '../../http/access.ts'
import type { AppEnv } from '../../http/context.ts'
import * as routes from './sessions.routes.ts'

export function mountSessions(app: OpenAPIHono<AppEnv>) {
  app.openapi(routes.enterVehicle, async (c) =>
    c.json(await c.var.services.sessions.enter(c.req.valid('json'), principalOf(c)), 201),
  )

  app.openapi(routes.exitVehicle, async (c) =>
    c.json(await c.var.services.sessions.exit(c.req.valid('json'), principalOf(c)), 200),
  )

  // Registered before `/sessions/{id}`: "active" is not a uuid anyway, but the order says so.
  app.openapi(routes.listActiveSessions, async (c) =>
    c.json(await c.var.services.sessions.active(c.req.valid('query')), 200),
  )

  app.openapi(routes.listSessions, async (c) =>
    c.json(await c.var.services.sessions.list(principalOf(c), c.req.valid('query')), 200),
  )

  app.openapi(routes.findSessionByTicket, async (c) =>
    c.json(await c.var.services.sessions.byTicket(c.req.valid('param').ticket), 200),
  )

  app.openapi(routes.getSession, async (c) =>
    c.json(await c.var.services.sessions.get(principalOf(c), c.req.valid('param').id), 200),
  )

  app.openapi(routes.calculateSessionFee, async (c) =>
    c.json(await c.var.services.sessions.fee(principalOf(c), c.req.valid('param').id), 200),
  )

  app.openapi(routes.assignSessionSpace, async (c) =>
    c.json(
      await c.var.services.sessions.assignSpace(c.req.valid('param').id, c.req.valid('json').space_id),
      200,
    ),
  )
}
