import type { OpenAPIHono } from '@hono/zod-openapi'
import type { Context } from 'hono'
import { principalOf } from '../../http/access.ts'
import type { AppEnv } from '../../http/context.ts'
import * as routes from './payments.routes.ts'
import type { Caller } from './payments.service.ts'

const callerOf = (c: Context<AppEnv>): Caller => {
  const { userId, role } = principalOf(c)
  return { userId, role }
}

export function mountPayments(app: OpenAPIHono<AppEnv>) {
  const payments = (c: Context<AppEnv>) => c.var.services.payments

  // Static paths first: `/payments/validate-exit` and friends never reach `/payments/{id}`.
  app.openapi(routes.validateExit, async (c) =>
    c.json(await payments(c).validateExit(c.req.valid('json').ticket_number), 200),
  )
  app.openapi(routes.createIntent, async (c) =>
    c.json(await payments(c).createIntent(callerOf(c), c.req.valid('json')), 201),
  )
  app.openapi(routes.confirmPayment, async (c) =>
    c.json(await payments(c).confirm(callerOf(c), c.req.valid('json')), 200),
  )
  app.openapi(routes.stripeWebhook, async (c) =>
    c.json(await payments(c).handleEvent(await c.req.text(), c.req.header('stripe-signature')), 200),
  )
  app.openapi(routes.createPayment, async (c) =>
    c.json(
      await payments(c).pay(callerOf(c), c.req.valid('json'), c.req.valid('header')['idempotency-key']),
      201,
    ),
  )
  app.openapi(routes.listPayments, async (c) =>
    c.json(await payments(c).list(callerOf(c), c.req.valid('query')), 200),
  )
  app.openapi(routes.getPayment, async (c) =>
    c.json(await payments(c).get(callerOf(c), c.req.valid('param').id), 200),
  )
  app.openapi(routes.getReceipt, async (c) =>
    c.json(await payments(c).receipt(callerOf(c), c.req.valid('param').id), 200),
  )
  app.openapi(routes.createRefund, async (c) =>
    c.json(await payments(c).refund(callerOf(c), c.req.valid('param').id, c.req.valid('json')), 201),
  )
}
