import type { OpenAPIHono } from '@hono/zod-openapi'
import { principalOf } from '../../http/access.ts'
import type { AppEnv } from '../../http/context.ts'
import * as routes from './discounts.routes.ts'

export function mountDiscounts(app: OpenAPIHono<AppEnv>) {
  app.openapi(routes.listDiscounts, async (c) =>
    c.json(await c.var.services.discounts.list(c.req.valid('query')), 200),
  )

  app.openapi(routes.createDiscount, async (c) =>
    c.json(await c.var.services.discounts.create(c.req.valid('json')), 201),
  )

  app.openapi(routes.checkDiscount, async (c) =>
    c.json(await c.var.services.discounts.check(c.req.valid('json')), 200),
  )

  app.openapi(routes.getDiscount, async (c) =>
    c.json(await c.var.services.discounts.get(c.req.valid('param').id), 200),
  )

  app.openapi(routes.replaceDiscount, async (c) =>
    c.json(await c.var.services.discounts.replace(c.req.valid('param').id, c.req.valid('json')), 200),
  )

  app.openapi(routes.deactivateDiscount, async (c) => {
    await c.var.services.discounts.deactivate(c.req.valid('param').id)
    return c.body(null, 204)
  })

  app.openapi(routes.redeemDiscount, async (c) =>
    c.json(
      await c.var.services.discounts.redeemForSession(
        principalOf(c),
        c.req.valid('param').id,
        c.req.valid('json').code,
      ),
      200,
    ),
  )

  app.openapi(routes.createValidation, async (c) => {
    const { validation, created } = await c.var.services.discounts.validate(
      principalOf(c),
      c.req.valid('param').id,
      c.req.valid('json'),
    )
    return created ? c.json(validation, 201) : c.json(validation, 200)
  })

  app.openapi(routes.listValidations, async (c) =>
    c.json(
      await c.var.services.discounts.validationsOf(
        principalOf(c),
        c.req.valid('param').id,
        c.req.valid('query'),
      ),
      200,
    ),
  )
}
