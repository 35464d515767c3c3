import type { OpenAPIHono } from '@hono/zod-openapi'
import type { Context } from 'hono'
import { principalOf } from '../../http/access.ts'
import type { AppEnv } from '../../http/context.ts'
import * as routes from './webhooks.routes.ts'
import type { Keyed } from './webhooks.service.ts'

const keyed = (c: Context<AppEnv>, key: string | undefined): Keyed => ({
  callerId: principalOf(c).userId,
  key,
})

export function mountWebhooks(app: OpenAPIHono<AppEnv>) {
  app.openapi(routes.listWebhookEventTypes, (c) =>
    c.json({ data: c.var.services.webhooks.eventTypes() }, 200),
  )

  app.openapi(routes.createWebhookSubscription, async (c) =>
    c.json(
      await c.var.services.webhooks.create(
        c.req.valid('json'),
        keyed(c, c.req.valid('header')['idempotency-key']),
      ),
      201,
    ),
  )

  app.openapi(routes.listWebhookSubscriptions, async (c) =>
    c.json(await c.var.services.webhooks.list(c.req.valid('query')), 200),
  )

  app.openapi(routes.getWebhookSubscription, async (c) =>
    c.json(await c.var.services.webhooks.get(c.req.valid('param').id), 200),
  )

  app.openapi(routes.updateWebhookSubscription, async (c) =>
    c.json(await c.var.services.webhooks.update(c.req.valid('param').id, c.req.valid('json')), 200),
  )

  app.openapi(routes.deleteWebhookSubscription, async (c) => {
    await c.var.services.webhooks.remove(c.req.valid('param').id)
    return c.body(null, 204)
  })

  app.openapi(routes.enableWebhookSubscription, async (c) =>
    c.json(await c.var.services.webhooks.enable(c.req.valid('param').id), 200),
  )

  app.openapi(routes.rotateWebhookSecret, async (c) =>
    c.json(await c.var.services.webhooks.rotateSecret(c.req.valid('param').id), 200),
  )

  app.openapi(routes.sendWebhookTest, async (c) =>
    c.json(
      await c.var.services.webhooks.sendTest(
        c.req.valid('param').id,
        keyed(c, c.req.valid('header')['idempotency-key']),
      ),
      202,
    ),
  )

  app.openapi(routes.listWebhookDeliveries, async (c) =>
    c.json(await c.var.services.webhooks.deliveries(c.req.valid('param').id, c.req.valid('query')), 200),
  )

  app.openapi(routes.getWebhookDelivery, async (c) =>
    c.json(await c.var.services.webhooks.delivery(c.req.valid('param').id), 200),
  )

  app.openapi(routes.replayWebhookDelivery, async (c) =>
    c.json(
      await c.var.services.webhooks.replay(
        c.req.valid('param').id,
        keyed(c, c.req.valid('header')['idempotency-key']),
      ),
      202,
    ),
  )
}
