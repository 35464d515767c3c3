import type { OpenAPIHono } from '@hono/zod-openapi'
import { principalOf } from '../../http/access.ts'
import type { AppEnv } from '../../http/context.ts'
import * as routes from './ev.routes.ts'

export function mountEv(app: OpenAPIHono<AppEnv>) {
  app.openapi(routes.listStations, async (c) =>
    c.json(await c.var.services.ev.listStations(c.req.valid('query')), 200),
  )

  app.openapi(routes.createStation, async (c) =>
    c.json(await c.var.services.ev.createStation(c.req.valid('json')), 201),
  )

  app.openapi(routes.getStation, async (c) =>
    c.json(await c.var.services.ev.getStation(c.req.valid('param').id), 200),
  )

  app.openapi(routes.replaceStation, async (c) =>
    c.json(await c.var.services.ev.replaceStation(c.req.valid('param').id, c.req.valid('json')), 200),
  )

  app.openapi(routes.startCharge, async (c) =>
    c.json(await c.var.services.ev.start(principalOf(c), c.req.valid('json')), 201),
  )

  // Registered before `/ev-charging/{id}`: "sessions" is not a uuid anyway, but the order says so.
  app.openapi(routes.listCharges, async (c) =>
    c.json(await c.var.services.ev.listCharges(principalOf(c), c.req.valid('query')), 200),
  )

  app.openapi(routes.getCharge, async (c) =>
    c.json(await c.var.services.ev.getCharge(principalOf(c), c.req.valid('param').id), 200),
  )

  app.openapi(routes.stopCharge, async (c) =>
    c.json(await c.var.services.ev.stop(principalOf(c), c.req.valid('param').id), 200),
  )
}
