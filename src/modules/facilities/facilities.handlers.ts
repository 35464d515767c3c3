import type { OpenAPIHono, RouteConfig } from '@hono/zod-openapi'
import type { Context } from 'hono'
import { principalOf } from '../../http/access.ts'
import type { AppEnv } from '../../http/context.ts'
import * as routes from './facilities.routes.ts'
import type { Creator } from './facilities.service.ts'

/**
 * `/spaces/{id}` routes match uuid-shaped segments only: `/spaces/available` (the occupancy
 * capability's) never reaches them, whatever order the capabilities are mounted in. The document
 * keeps the plain `{id}` path; the router gets `:id{[0-9a-fA-F-]+}` (zod still checks the uuid).
 */
function uuidRouted<R extends RouteConfig>(app: OpenAPIHono<AppEnv>, route: R): R {
  app.openAPIRegistry.registerPath(route)
  return { ...route, hide: true, path: route.path.replace('/{id}', '/{id{[0-9a-fA-F-]+}}') }
}

const creator = (c: Context<AppEnv>, key: string | undefined): Creator => ({
  callerId: principalOf(c).userId,
  idempotencyKey: key,
})

export function mountFacilities(app: OpenAPIHono<AppEnv>) {
  const facilities = (c: Context<AppEnv>) => c.var.services.facilities

  app.openapi(routes.listLots, async (c) => c.json(await facilities(c).listLots(c.req.valid('query')), 200))
  app.openapi(routes.createLot, async (c) =>
    c.json(
      await facilities(c).createLot(
        c.req.valid('json'),
        creator(c, c.req.valid('header')['idempotency-key']),
      ),
      201,
    ),
  )
  app.openapi(routes.getLot, async (c) => c.json(await facilities(c).getLot(c.req.valid('param').id), 200))
  app.openapi(routes.replaceLot, async (c) =>
    c.json(await facilities(c).replaceLot(c.req.valid('param').id, c.req.valid('json')), 200),
  )
  app.openapi(routes.deleteLot, async (c) => {
    await facilities(c).deleteLot(c.req.valid('param').id)
    return c.body(null, 204)
  })

  app.openapi(routes.listLevels, async (c) =>
    c.json(await facilities(c).listLevels(c.req.valid('query')), 200),
  )
  app.openapi(routes.createLevel, async (c) =>
    c.json(
      await facilities(c).createLevel(
        c.req.valid('json'),
        creator(c, c.req.valid('header')['idempotency-key']),
      ),
      201,
    ),
  )
  app.openapi(routes.getLevel, async (c) =>
    c.json(await facilities(c).getLevel(c.req.valid('param').id), 200),
  )
  app.openapi(routes.updateLevel, async (c) =>
    c.json(await facilities(c).updateLevel(c.req.valid('param').id, c.req.valid('json')), 200),
  )
  app.openapi(routes.deleteLevel, async (c) => {
    await facilities(c).deleteLevel(c.req.valid('param').id)
    return c.body(null, 204)
  })

  app.openapi(routes.listZones, async (c) => c.json(await facilities(c).listZones(c.req.valid('query')), 200))
  app.openapi(routes.createZone, async (c) =>
    c.json(
      await facilities(c).createZone(
        c.req.valid('json'),
        creator(c, c.req.valid('header')['idempotency-key']),
      ),
      201,
    ),
  )
  app.openapi(routes.getZone, async (c) => c.json(await facilities(c).getZone(c.req.valid('param').id), 200))
  app.openapi(routes.updateZone, async (c) =>
    c.json(await facilities(c).updateZone(c.req.valid('param').id, c.req.valid('json')), 200),
  )
  app.openapi(routes.deleteZone, async (c) => {
    await facilities(c).deleteZone(c.req.valid('param').id)
    return c.body(null, 204)
  })

  app.openapi(routes.listSpaces, async (c) =>
    c.json(await facilities(c).listSpaces(c.req.valid('query')), 200),
  )
  app.openapi(routes.createSpace, async (c) =>
    c.json(
      await facilities(c).createSpace(
        c.req.valid('json'),
        creator(c, c.req.valid('header')['idempotency-key']),
      ),
      201,
    ),
  )
  app.openapi(routes.createSpacesInBulk, async (c) =>
    c.json(await facilities(c).createSpaces(c.req.valid('json')), 201),
  )
  app.openapi(uuidRouted(app, routes.getSpace), async (c) =>
    c.json(await facilities(c).getSpace(c.req.valid('param').id), 200),
  )
  app.openapi(uuidRouted(app, routes.replaceSpace), async (c) =>
    c.json(await facilities(c).replaceSpace(c.req.valid('param').id, c.req.valid('json')), 200),
  )
  app.openapi(uuidRouted(app, routes.deleteSpace), async (c) => {
    await facilities(c).deleteSpace(c.req.valid('param').id)
    return c.body(null, 204)
  })
  app.openapi(uuidRouted(app, routes.setSpaceOverlay), async (c) =>
    c.json(await facilities(c).setOverlay(c.req.valid('param').id, c.req.valid('json')), 200),
  )
}
