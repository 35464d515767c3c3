import type { IncomingMessage, Server } from 'node:http'
import type { Duplex } from 'node:stream'
import { WebSocketServer } from 'ws'
import { AppError } from '../../shared/errors.ts'
import type { Logger } from '../../shared/logger.ts'
import type { OccupancyService } from './occupancy.service.ts'

const livePath = /^\/api\/v1\/lots\/([0-9a-fA-F-]{36})\/live$/
const resumeId = /^\d{1,20}-\d{1,20}$/
/** A client this far behind is cut off (close 1013) instead of growing memory. */
const MAX_BUFFERED_BYTES = 4 * 1024 * 1024

/**
 * The lot feed over WebSocket: `GET /api/v1/lots/{id}/live[?since=<id>]` with an Upgrade header.
 * Same messages and resume rule as the Server-Sent Events feed, as JSON text frames.
 */
export function attachLiveSockets(server: Server, occupancy: OccupancyService, logger: Logger) {
  const wss = new WebSocketServer({ noServer: true, maxPayload: 4096 })

  const refuse = (socket: Duplex, status: number, reason: string) => {
    const body = JSON.stringify({ title: reason, status })
    socket.end(
      `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    )
  }

  const onUpgrade = async (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(request.url ?? '/', 'http://localhost')
    const match = livePath.exec(url.pathname)
    if (!match?.[1]) return refuse(socket, 404, 'Not Found')
    const sinceParam = url.searchParams.get('since')
    if (sinceParam !== null && !resumeId.test(sinceParam)) return refuse(socket, 400, 'Bad Request')
    const lotId = match[1].toLowerCase()
    try {
      await occupancy.availability('lot', lotId) // a plain 404 before the upgrade
    } catch (error) {
      if (error instanceof AppError && error.status === 404) return refuse(socket, 404, 'Not Found')
      logger.warn({ reason: (error as Error).message }, 'live feed refused')
      return refuse(socket, 503, 'Service Unavailable')
    }
    // Follow only once the upgrade succeeded: a failed handshake leaves nothing subscribed.
    wss.handleUpgrade(request, socket, head, (client) => {
      let stop: (() => void) | undefined
      let closed = false
      const ping = setInterval(() => client.ping(), 30_000)
      client.on('close', () => {
        closed = true
        clearInterval(ping)
        stop?.()
      })
      client.on('error', () => client.terminate())
      const send = (message: unknown) => {
        if (client.bufferedAmount > MAX_BUFFERED_BYTES)
          return client.close(1013, 'too far behind; reconnect with since')
        client.send(JSON.stringify(message))
      }
      let last = sinceParam
      const follow = (message: { id: string }) => {
        last = message.id
        send(message)
      }
      occupancy.follow(lotId, sinceParam, follow).then(
        (unsubscribe) => {
          if (closed) return unsubscribe()
          stop = unsubscribe
          // The replay (or the snapshot) is sent: the same `caught_up` as the SSE feed's.
          send({ type: 'caught_up', id: last ?? '' })
        },
        () => client.close(1011, 'feed unavailable; reconnect'),
      )
    })
  }

  server.on('upgrade', (request, socket, head) => void onUpgrade(request, socket, head))

  return {
    /** Closes every live socket (at shutdown, before the HTTP server). */
    close() {
      for (const client of wss.clients) client.close(1001, 'server shutting down')
      wss.close()
    },
  }
}
