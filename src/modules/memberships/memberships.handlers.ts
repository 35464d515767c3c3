import type { OpenAPIHono } from '@hono/zod-openapi'
import type { Context } from 'hono'
import { principalOf } from '../../http/access.ts'
import type { AppEnv } from '../../http/context.ts'
import * as routes from './memberships.routes.ts'
import type { Caller } from './memberships.service.ts'

const callerOf = (c: Context<AppEnv>): Caller => {
  const { userId, role } = principalOf(c)
  return { userId, role }
}

export function mountMemberships(app: OpenAPIHono<AppEnv>) {
  app.openapi(routes.listPlans, async (c) => {
    const { is_active, ...query } = c.req.valid('query')
    const active = is_active === undefined ? undefined : is_active === 'true'
    return c.json(
      await c.var.services.memberships.plans.list(callerOf(c), { ...query, is_active: active }),
      200,
    )
  })

  app.openapi(routes.getPlan, async (c) =>
    c.json(await c.var.services.memberships.plans.get(callerOf(c), c.req.valid('param').id), 200),
  )

  app.openapi(routes.createPlan, async (c) =>
    c.json(await c.var.services.memberships.plans.create(c.req.valid('json')), 201),
  )

  app.openapi(routes.replacePlan, async (c) =>
    c.json(await c.var.services.memberships.plans.replace(c.req.valid('param').id, c.req.valid('json')), 200),
  )

  app.openapi(routes.subscribe, async (c) =>
    c.json(
      await c.var.services.memberships.subscribe(
        callerOf(c),
        c.req.valid('json'),
        c.req.valid('header')['idempotency-key'],
      ),
      201,
    ),
  )

  app.openapi(routes.listMemberships, async (c) =>
    c.json(await c.var.services.memberships.list(callerOf(c), c.req.valid('query')), 200),
  )

  app.openapi(routes.getMembership, async (c) =>
    c.json(await c.var.services.memberships.get(callerOf(c), c.req.valid('param').id), 200),
  )

  app.openapi(routes.membershipUsage, async (c) =>
    c.json(await c.var.services.memberships.usage(callerOf(c), c.req.valid('param').id), 200),
  )

  app.openapi(routes.addVehicle, async (c) =>
    c.json(
      await c.var.services.memberships.addVehicle(
        callerOf(c),
        c.req.valid('param').id,
        c.req.valid('json').vehicle_id,
      ),
      200,
    ),
  )

  app.openapi(routes.removeVehicle, async (c) => {
    const { id, vehicleId } = c.req.valid('param')
    await c.var.services.memberships.removeVehicle(callerOf(c), id, vehicleId)
    return c.body(null, 204)
  })

  app.openapi(routes.cancelMembership, async (c) =>
    c.json(
      await c.var.services.memberships.cancel(callerOf(c), c.req.valid('param').id, c.req.valid('json')),
      200,
    ),
  )

  app.openapi(routes.renewMembership, async (c) =>
    c.json(
      await c.var.services.memberships.renew(callerOf(c), c.req.valid('param').id, c.req.valid('json')),
      200,
    ),
  )

  app.openapi(routes.payMembership, async (c) =>
    c.json(
      await c.var.services.memberships.pay(callerOf(c), c.req.valid('param').id, c.req.valid('json')),
      200,
    ),
  )
}
