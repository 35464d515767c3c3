import type { OpenAPIHono } from '@hono/zod-openapi'
import type { AppEnv } from '../../http/context.ts'
import * as routes from './sensors.routes.ts'

export function mountSensors(app: OpenAPIHono<AppEnv>) {
  app.openapi(routes.listDevices, async (c) =>
    c.json(await c.var.services.sensors.list(c.req.valid('query')), 200),
  )

  app.openapi(routes.createDevice, async (c) =>
    c.json(await c.var.services.sensors.create(c.req.valid('json')), 201),
  )

  app.openapi(routes.sensorHealth, async (c) => c.json(await c.var.services.sensors.healthSummary(), 200))

  app.openapi(routes.getDevice, async (c) =>
    c.json(await c.var.services.sensors.get(c.req.valid('param').id), 200),
  )

  app.openapi(routes.replaceDevice, async (c) =>
    c.json(await c.var.services.sensors.replace(c.req.valid('param').id, c.req.valid('json')), 200),
  )

  app.openapi(routes.deleteDevice, async (c) => {
    await c.var.services.sensors.remove(c.req.valid('param').id)
    return c.body(null, 204)
  })

  app.openapi(routes.rotateDeviceCredentials, async (c) =>
    c.json(await c.var.services.sensors.rotateCredentials(c.req.valid('param').id), 200),
  )

  app.openapi(routes.ingestReadings, async (c) => {
    const device = c.var.device
    if (!device) throw new Error('the ingest route ran without its device guard')
    return c.json(await c.var.services.sensors.ingest(device, c.req.valid('json').readings), 202)
  })

  app.openAPIRegistry.registerComponent('securitySchemes', 'basicAuth', {
    type: 'http',
    scheme: 'basic',
    description: 'A device id and its secret, for POST /api/v1/ingest/readings only.',
  })
}
