import { connect, type Socket } from 'node:net'
import mqttPacket, { type IPublishPacket, type Packet } from 'mqtt-packet'

/**
 * A receive-only MQTT 5 client whose PUBACKs are sent when the caller says so, with many QoS 1
 * messages in flight at once.
 *
 * Why not mqtt.js for this: with `customHandleAcks`, mqtt.js parses the next incoming packet only
 * after the previous PUBACK went out, so acknowledging after a batch's durable step would hold
 * exactly one message in flight. This client keeps up to `receiveMaximum` unacknowledged.
 *
 * The session is persistent (clean start off, a session expiry): after a reconnect the broker
 * resends what was not acknowledged, and keeps queueing while the client is away.
 */
export type SubscriberOptions = {
  url: string
  clientId: string
  /** Full topic filter, e.g. `$share/group/parking/sensors/+/+`. */
  topic: string
  receiveMaximum: number
  sessionExpirySeconds: number
  keepaliveSeconds?: number
  /** A message arrived; call `ack()` once it is safe (only the first call counts). */
  onMessage(topic: string, payload: Buffer, ack: () => void): void
  onState?(state: 'connected' | 'disconnected', detail?: string): void
}

export type Subscriber = {
  readonly connected: boolean
  /** Unacknowledged messages of the current connection. */
  readonly inFlight: number
  close(): Promise<void>
}

export function startSubscriber(options: SubscriberOptions): Subscriber {
  const url = new URL(options.url)
  const keepalive = options.keepaliveSeconds ?? 30
  let socket: Socket | undefined
  let connected = false
  let closing = false
  let generation = 0
  let inFlight = 0
  let retryMs = 250
  let pingTimer: NodeJS.Timeout | undefined
  let retryTimer: NodeJS.Timeout | undefined

  const send = (s: Socket, packet: Packet) => {
    s.write(mqttPacket.generate(packet, { protocolVersion: 5 }))
  }

  const dial = () => {
    const mine = ++generation
    inFlight = 0
    const s = connect({ host: url.hostname, port: Number(url.port || 1883), noDelay: true })
    socket = s
    const parser = mqttPacket.parser({ protocolVersion: 5 })
    s.on('connect', () => {
      send(s, {
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: 5,
        clean: false,
        clientId: options.clientId,
        keepalive,
        ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
        ...(url.password ? { password: Buffer.from(decodeURIComponent(url.password)) } : {}),
        properties: {
          sessionExpiryInterval: options.sessionExpirySeconds,
          receiveMaximum: options.receiveMaximum,
        },
      })
    })
    let lastHeard = Date.now()
    // No CONNACK in time, or a broker silent for 1.5 keepalives (a half-open connection): redial.
    const deadline = setTimeout(() => s.destroy(new Error('no CONNACK in time')), 5_000)
    s.on('data', (chunk) => {
      lastHeard = Date.now()
      parser.parse(chunk)
    })
    parser.on('error', (error) => s.destroy(error))
    parser.on('packet', (packet: Packet) => {
      switch (packet.cmd) {
        case 'connack': {
          if ((packet.reasonCode ?? 0) !== 0) {
            s.destroy(new Error(`connection refused by the broker (reason ${packet.reasonCode})`))
            return
          }
          clearTimeout(deadline)
          connected = true
          retryMs = 250
          // Always (re)subscribe: harmless when the session kept the subscription.
          send(s, { cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: options.topic, qos: 1 }] })
          pingTimer = setInterval(
            () => {
              if (Date.now() - lastHeard > keepalive * 1500) s.destroy(new Error('the broker went silent'))
              else send(s, { cmd: 'pingreq' })
            },
            (keepalive * 1000) / 2,
          )
          options.onState?.('connected')
          return
        }
        case 'suback': {
          const code = (packet.granted as number[] | undefined)?.[0] ?? 0
          if (code > 2) s.destroy(new Error(`subscription refused by the broker (reason ${code})`))
          return
        }
        case 'publish':
          return deliver(s, mine, packet)
        case 'disconnect':
          s.destroy(new Error(`disconnected by the broker (reason ${packet.reasonCode ?? 0})`))
          return
        default:
          return
      }
    })
    s.on('error', () => {})
    s.on('close', (hadError) => {
      clearTimeout(deadline)
      clearInterval(pingTimer)
      const wasConnected = connected
      connected = false
      if (closing) return
      if (wasConnected) options.onState?.('disconnected', hadError ? 'socket error' : 'closed')
      retryTimer = setTimeout(dial, retryMs)
      // At most a second: Mosquitto 2.0.11 drops what a restored shared subscription gets while
      // its subscriber is away after a broker restart (see the README), so come back quickly.
      retryMs = Math.min(retryMs * 2, 1_000)
    })
  }

  const deliver = (s: Socket, mine: number, packet: IPublishPacket) => {
    const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload)
    if (packet.qos === 0) {
      options.onMessage(packet.topic, payload, () => {})
      return
    }
    inFlight++
    let done = false
    options.onMessage(packet.topic, payload, () => {
      if (done) return
      done = true
      // A PUBACK on a newer connection would acknowledge a different message with the same id;
      // the broker resends the old one instead.
      if (mine !== generation || s.destroyed) return
      inFlight--
      // A batch's acknowledgements leave in one write: corked until the end of this tick.
      if (s.writableCorked === 0) {
        s.cork()
        process.nextTick(() => s.uncork())
      }
      // The subscription asks for QoS 1 at most, so the broker never sends QoS 2.
      send(s, { cmd: 'puback', messageId: packet.messageId ?? 0, reasonCode: 0 })
    })
  }

  dial()

  return {
    get connected() {
      return connected
    },
    get inFlight() {
      return inFlight
    },
    async close() {
      closing = true
      clearTimeout(retryTimer)
      clearInterval(pingTimer)
      const s = socket
      if (!s || s.destroyed) return
      await new Promise<void>((resolve) => {
        s.once('close', () => resolve())
        if (connected)
          s.end(mqttPacket.generate({ cmd: 'disconnect', reasonCode: 0 }, { protocolVersion: 5 }))
        else s.destroy()
        setTimeout(() => s.destroy(), 1_000).unref()
      })
    },
  }
}
