import type { OpenAPIHono } from '@hono/zod-openapi'
import { principalOf } from '../../http/access.ts'
import type { AppEnv } from '../../http/context.ts'
import * as routes from './reservations.routes.ts'

export function mountReservations(app: OpenAPIHono<AppEnv>) {
  const svc = (c: { var: AppEnv['Variables'] }) => c.var.services.reservations

  app.openapi(routes.availability, async (c) => c.json(await svc(c).availability(c.req.valid('query')), 200))

  app.openapi(routes.createReservation, async (c) =>
    c.json(
      await svc(c).create(
        principalOf(c),
        c.req.valid('json'),
        undefined,
        c.req.valid('header')['idempotency-key'],
      ),
      201,
    ),
  )

  app.openapi(routes.listReservations, async (c) =>
    c.json(await svc(c).list(principalOf(c), c.req.valid('query')), 200),
  )

  app.openapi(routes.findByConfirmation, async (c) =>
    c.json(await svc(c).byConfirmation(principalOf(c), c.req.valid('param').code), 200),
  )

  app.openapi(routes.gateCheckIn, async (c) =>
    // biome-ignore lint/suspicious/noExplicitAny: the session part is sessions' entry answer, typed by its schema
    c.json((await svc(c).checkInAtGate(principalOf(c), c.req.valid('json'))) as any, 201),
  )

  app.openapi(routes.getReservation, async (c) =>
    c.json(await svc(c).get(principalOf(c), c.req.valid('param').id), 200),
  )

  app.openapi(routes.updateReservation, async (c) =>
    c.json(await svc(c).update(principalOf(c), c.req.valid('param').id, c.req.valid('json')), 200),
  )

  app.openapi(routes.cancelReservation, async (c) =>
    c.json(await svc(c).cancel(principalOf(c), c.req.valid('param').id), 200),
  )

  app.openapi(routes.payReservation, async (c) =>
    c.json(await svc(c).pay(principalOf(c), c.req.valid('param').id, c.req.valid('json')), 200),
  )

  app.openapi(routes.checkIn, async (c) =>
    // biome-ignore lint/suspicious/noExplicitAny: the session part is sessions' entry answer, typed by its schema
    c.json((await svc(c).checkIn(principalOf(c), c.req.valid('param').id)) as any, 201),
  )
}
