import type { OpenAPIHono } from '@hono/zod-openapi'
import type { AppEnv } from '../../http/context.ts'
import * as routes from './predictions.routes.ts'

export function mountPredictions(app: OpenAPIHono<AppEnv>) {
  app.openapi(routes.getPredictions, async (c) =>
    c.json(await c.var.services.predictions.predict(c.req.valid('query')), 200),
  )
}
