import type { OpenAPIHono } from '@hono/zod-openapi'
import { principalOf } from '../../http/access.ts'
import type { AppEnv } from '../../http/context.ts'
import * as routes from './vehicles.routes.ts'

export function mountVehicles(app: OpenAPIHono<AppEnv>) {
  app.openapi(routes.listVehicleTypes, async (c) =>
    c.json(await c.var.services.vehicles.listTypes(c.req.valid('query')), 200),
  )

  app.openapi(routes.createVehicleType, async (c) =>
    c.json(await c.var.services.vehicles.createType(c.req.valid('json')), 201),
  )

  app.openapi(routes.listVehicles, async (c) =>
    c.json(await c.var.services.vehicles.list(principalOf(c).userId, c.req.valid('query')), 200),
  )

  app.openapi(routes.createVehicle, async (c) =>
    c.json(await c.var.services.vehicles.create(principalOf(c).userId, c.req.valid('json')), 201),
  )

  app.openapi(routes.findVehicleByPlate, async (c) =>
    c.json(await c.var.services.vehicles.findByPlate(c.req.valid('param').plate), 200),
  )

  app.openapi(routes.getVehicle, async (c) =>
    c.json(await c.var.services.vehicles.get(principalOf(c), c.req.valid('param').id), 200),
  )

  app.openapi(routes.replaceVehicle, async (c) =>
    c.json(
      await c.var.services.vehicles.replace(
        principalOf(c).userId,
        c.req.valid('param').id,
        c.req.valid('json'),
      ),
      200,
    ),
  )

  app.openapi(routes.deleteVehicle, async (c) => {
    await c.var.services.vehicles.remove(principalOf(c).userId, c.req.valid('param').id)
    return c.body(null, 204)
  })
}
