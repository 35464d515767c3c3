import type { OpenAPIHono } from '@hono/zod-openapi'
import { streamSSE } from 'hono/streaming'
import type { AppEnv } from '../../http/context.ts'
import * as routes from './occupancy.routes.ts'

const KEEPALIVE_MS = 15_000
const MAX_QUEUED = 10_000
const resumeIdPattern = /^\d{1,20}-\d{1,20}$/

export function mountOccupancy(app: OpenAPIHono<AppEnv>) {
  app.openapi(routes.lotAvailability, async (c) => {
    const { id } = c.req.valid('param')
    return c.json({ lot_id: id, ...(await c.var.services.occupancy.availability('lot', id)) }, 200)
  })
  app.openapi(routes.levelAvailability, async (c) => {
    const { id } = c.req.valid('param')
    return c.json({ level_id: id, ...(await c.var.services.occupancy.availability('level', id)) }, 200)
  })
  app.openapi(routes.zoneAvailability, async (c) => {
    const { id } = c.req.valid('param')
    return c.json({ zone_id: id, ...(await c.var.services.occupancy.availability('zone', id)) }, 200)
  })

  app.openapi(routes.freeSpaces, async (c) =>
    c.json(await c.var.services.occupancy.freeSpaces(c.req.valid('query')), 200),
  )

  app.openapi(routes.spaceState, async (c) =>
    c.json(await c.var.services.occupancy.spaceState(c.req.valid('param').id), 200),
  )

  app.openapi(routes.lotSpaceStates, async (c) => {
    const { id } = c.req.valid('param')
    const { services } = c.var
    // The lot's space ids are the registry's (facilities); their states are the hot state's.
    const page = await services.facilities.listSpaces({ lot_id: id, ...c.req.valid('query') })
    const ids = page.data.map((space) => space.id)
    return c.json(
      { data: await services.occupancy.lotSpaceStates(id, ids), next_cursor: page.next_cursor },
      200,
    )
  })

  app.openapi(routes.spaceHistory, async (c) =>
    c.json(await c.var.services.occupancy.history(c.req.valid('param').id, c.req.valid('query')), 200),
  )

  app.openapi(routes.deadLetters, async (c) =>
    c.json(await c.var.services.occupancy.deadLetters(c.req.valid('query').limit), 200),
  )

  app.openapi(routes.lotFeed, async (c) => {
    const { id } = c.req.valid('param')
    const lastEventId = c.req.header('last-event-id')
    const since =
      c.req.valid('query').since ?? (lastEventId && resumeIdPattern.test(lastEventId) ? lastEventId : null)
    const queue: { event: string; id: string; data: string }[] = []
    let wake: (() => void) | undefined
    let overflowed = false
    let last = since
    // Subscribing checks the lot before the stream opens, so an unknown lot is a plain 404.
    const stop = await c.var.services.occupancy.follow(id, since, (message) => {
      // A client this far behind is cut off; it resumes with Last-Event-ID, losing nothing.
      if (queue.length >= MAX_QUEUED) overflowed = true
      else queue.push({ event: message.type, id: message.id, data: JSON.stringify(message) })
      last = message.id
      wake?.()
    })
    // Everything missed (or the snapshot) is queued by now: say so, so that a client knows it is
    // caught up without waiting for the feed to go quiet (a busy lot never does).
    if (!overflowed) {
      const caughtUp = { type: 'caught_up', id: last ?? '' }
      queue.push({ event: caughtUp.type, id: caughtUp.id, data: JSON.stringify(caughtUp) })
    }
    c.header('X-Accel-Buffering', 'no')
    return streamSSE(c, async (stream) => {
      stream.onAbort(() => {
        stop()
        wake?.()
      })
      await stream.writeSSE({ event: 'hello', data: '{}', retry: 2000 })
      while (!stream.aborted) {
        const next = queue.shift()
        if (next) {
          await stream.writeSSE(next)
          continue
        }
        if (overflowed) break
        let timer: NodeJS.Timeout | undefined
        await new Promise<void>((resolve) => {
          wake = resolve
          timer = setTimeout(resolve, KEEPALIVE_MS)
        })
        clearTimeout(timer)
        wake = undefined
        if (queue.length === 0 && !stream.aborted) await stream.write(': keep-alive\n\n')
      }
      stop()
    }) as never
  })
}
