import type { OpenAPIHono, RouteConfig } from '@hono/zod-openapi'
import { principalOf } from '../../http/access.ts'
import type { AppEnv } from '../../http/context.ts'
import * as routes from './pricing.routes.ts'

/**
 * `/rates/{id}` routes match uuid-shaped segments only, so that `/rates/quote` with another
 * method is a 405, not a 400 about an id. The document keeps the plain `{id}` path.
 */
function uuidRouted<R extends RouteConfig>(app: OpenAPIHono<AppEnv>, route: R): R {
  app.openAPIRegistry.registerPath(route)
  return { ...route, hide: true, path: route.path.replace('/{id}', '/{id{[0-9a-fA-F-]+}}') }
}

export function mountPricing(app: OpenAPIHono<AppEnv>) {
  app.openapi(routes.listRates, async (c) =>
    c.json(await c.var.services.pricing.list(c.req.valid('query')), 200),
  )

  app.openapi(routes.createRate, async (c) =>
    c.json(
      await c.var.services.pricing.create(c.req.valid('json'), {
        callerId: principalOf(c).userId,
        idempotencyKey: c.req.valid('header')['idempotency-key'],
      }),
      201,
    ),
  )

  app.openapi(routes.quoteStay, async (c) =>
    c.json(await c.var.services.pricing.quoteStay(c.req.valid('json')), 200),
  )

  app.openapi(uuidRouted(app, routes.getRate), async (c) =>
    c.json(await c.var.services.pricing.get(c.req.valid('param').id), 200),
  )

  app.openapi(uuidRouted(app, routes.replaceRate), async (c) =>
    c.json(await c.var.services.pricing.replace(c.req.valid('param').id, c.req.valid('json')), 200),
  )

  app.openapi(uuidRouted(app, routes.deactivateRate), async (c) => {
    await c.var.services.pricing.deactivate(c.req.valid('param').id)
    return c.body(null, 204)
  })
}
