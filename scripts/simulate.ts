import { randomBytes } from 'node:crypto'
import type { Socket } from 'node:net'
import { parseArgs } from 'node:util'
import mqtt from 'mqtt'
import { loadDotEnv } from '../src/config.ts'
import { sensorTopics } from '../src/modules/occupancy/occupancy.contract.ts'
import { type DemoDevice, defaultDevicesFile, readDevicesFile } from './demo-devices.ts'

// `npm run simulate`: the demo's sensors, each connected to the broker with its own credentials,
// report cars arriving and leaving at a target total message rate. Spaces change on their own
// schedule (a car stays tens of minutes, --speed compresses it); the rest of the message budget
// goes to heartbeats. It only talks to the one broker it is given, and stops by time or count.

const usage = `Usage: npm run simulate -- [options]

Connects every sensor of a devices file (default: the one npm run demo writes) to the broker and
publishes readings as its spaces fill and empty, plus heartbeats, at a target total rate.

Options:
  --devices FILE     devices file (default DATA_DIR/demo/devices.json)
  --mqtt URL         broker (default MQTT_URL without its credentials, else mqtt://127.0.0.1:EMBEDDED_MQTT_PORT,
                     else mqtt://127.0.0.1:1883); each device signs in with its own credentials
  --rate N           messages per second in all (default 50)
  --duration S       seconds to run (default 60, at most 3600)
  --messages N       stop after this many messages (still within the duration's bound)
  --speed X          simulated time runs X times faster: cars stay minutes (default 1)
  --flap [F]         share of spaces that flap free/occupied within 0.2-1.5 s, which the
                     platform's debounce absorbs (default 0; --flap alone: 0.1)
  --malformed F      share of messages that are garbage and must end in the dead letters (default 0)
  --qos 0|1          publish QoS (default 1: every message is acknowledged with a PUBACK)
  --max-devices N    only the first N devices of the file
  -h, --help         this text

Ctrl-C stops sending, waits briefly for outstanding acknowledgements, and prints the summary.`

class SimulateError extends Error {}
function fail(message: string): never {
  throw new SimulateError(message)
}

function numberOption(name: string, raw: string | undefined, fallback: number, min: number, max: number) {
  if (raw === undefined) return fallback
  const value = Number(raw)
  if (raw.trim() === '' || !Number.isFinite(value) || value < min || value > max)
    fail(`--${name}: a number from ${min} to ${max}, not "${raw}"`)
  return value
}

type Options = {
  devicesFile: string
  brokerUrl: string
  rate: number
  durationMs: number
  messages: number | undefined
  speed: number
  flap: number
  malformed: number
  qos: 0 | 1
  maxDevices: number | undefined
}

function options(argv: string[]): Options {
  // `--flap` may come without a share.
  const args = argv.flatMap((arg, i) =>
    arg === '--flap' && (argv[i + 1] === undefined || argv[i + 1]?.startsWith('-')) ? [arg, '0.1'] : [arg],
  )
  const { values } = parseArgs({
    args,
    options: {
      devices: { type: 'string' },
      mqtt: { type: 'string' },
      rate: { type: 'string' },
      duration: { type: 'string' },
      messages: { type: 'string' },
      speed: { type: 'string' },
      flap: { type: 'string' },
      malformed: { type: 'string' },
      qos: { type: 'string' },
      'max-devices': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  })
  if (values.help) {
    console.log(usage)
    process.exit(0)
  }
  loadDotEnv()
  const env = process.env
  const raw = values.mqtt ?? env.MQTT_URL ?? `mqtt://127.0.0.1:${env.EMBEDDED_MQTT_PORT || 1883}`
  if (!URL.canParse(raw) || !/^(mqtts?|wss?):$/.test(new URL(raw).protocol))
    fail(`--mqtt: a URL with scheme mqtt, mqtts, ws or wss, not ${raw}`)
  const broker = new URL(raw)
  broker.username = ''
  broker.password = ''
  if (values.qos !== undefined && values.qos !== '0' && values.qos !== '1') fail('--qos: 0 or 1')
  const messages =
    values.messages === undefined ? undefined : numberOption('messages', values.messages, 0, 1, 1e9)
  const maxDevices =
    values['max-devices'] === undefined
      ? undefined
      : numberOption('max-devices', values['max-devices'], 0, 1, 1e6)
  if (messages !== undefined && !Number.isInteger(messages)) fail('--messages: a whole number')
  return {
    devicesFile: values.devices ?? defaultDevicesFile(env),
    brokerUrl: broker.toString().replace(/\/$/, ''),
    rate: numberOption('rate', values.rate, 50, 0.1, 100_000),
    // With --messages alone the count ends the run, within the one-hour bound.
    durationMs:
      numberOption('duration', values.duration, messages !== undefined ? 3600 : 60, 0.1, 3600) * 1000,
    messages,
    speed: numberOption('speed', values.speed, 1, 0.01, 100_000),
    flap: numberOption('flap', values.flap, 0, 0, 1),
    malformed: numberOption('malformed', values.malformed, 0, 0, 1),
    qos: values.qos === '0' ? 0 : 1,
    maxDevices: maxDevices === undefined ? undefined : Math.floor(maxDevices),
  }
}

// Dwell times, in simulated milliseconds.
const MINUTE = 60_000
const clamp = (value: number, min: number, max: number) => Math.min(max, Math.max(min, value))
const normal = () => Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random())
/** A car stays: log-normal, median 35 minutes, from 3 minutes to 10 hours. */
const carStay = () => clamp(35 * MINUTE * Math.exp(0.9 * normal()), 3 * MINUTE, 600 * MINUTE)
/** Until the next car: exponential, mean 12 minutes, at least 20 s. */
const gap = () => Math.max(20_000, -12 * MINUTE * Math.log(1 - Math.random()))
/** A flapping sensor, in real milliseconds: shorter than the platform's default 2 s debounce. */
const flapDwell = () => 200 + Math.random() * 1300

/** Per device: at most this many QoS 1 messages unacknowledged (the broker's receive maximum is 20). */
const DEVICE_IN_FLIGHT = 10

type Sensor = {
  entry: DemoDevice
  client: mqtt.MqttClient
  flaps: boolean
  occupied: boolean
  started: boolean
  seq: number
  battery: number
  signal: number
  inFlight: number
  online: boolean
}

/** A binary min-heap of sensors by when their space changes next (real ms since the start). */
class Schedule {
  private items: { due: number; sensor: Sensor }[] = []
  push(due: number, sensor: Sensor) {
    const items = this.items
    items.push({ due, sensor })
    let i = items.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if ((items[parent] as { due: number }).due <= due) break
      ;[items[i], items[parent]] = [
        items[parent] as (typeof items)[number],
        items[i] as (typeof items)[number],
      ]
      i = parent
    }
  }
  peek() {
    return this.items[0]
  }
  pop() {
    const items = this.items
    const top = items[0]
    const last = items.pop()
    if (items.length > 0 && last) {
      items[0] = last
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let m = i
        if (l < items.length && (items[l] as { due: number }).due < (items[m] as { due: number }).due) m = l
        if (r < items.length && (items[r] as { due: number }).due < (items[m] as { due: number }).due) m = r
        if (m === i) break
        ;[items[i], items[m]] = [items[m] as (typeof items)[number], items[i] as (typeof items)[number]]
        i = m
      }
    }
    return top
  }
}

type Stats = {
  /** Sensors without a broker connection right now (they reconnect by themselves). */
  offline: number
  disconnects: number
  sent: number
  acknowledged: number
  failed: number
  states: number
  occupiedStates: number
  heartbeats: number
  malformed: number
  inFlight: number
  lastError: string | undefined
}

/** Connects every device; those the broker refuses are reported and left out. */
async function connectAll(entries: readonly DemoDevice[], url: string) {
  const connected: { entry: DemoDevice; client: mqtt.MqttClient }[] = []
  const refused: { entry: DemoDevice; reason: string }[] = []
  let next = 0
  let shown = 0
  const lane = async () => {
    while (next < entries.length) {
      const entry = entries[next++] as DemoDevice
      const client = mqtt.connect(url, {
        protocolVersion: 5,
        clientId: entry.device_id,
        username: entry.username,
        password: entry.password,
        clean: true,
        keepalive: 60,
        connectTimeout: 10_000,
        reconnectPeriod: 2_000,
      })
      // Nagle off: with it on, a QoS 1 round trip takes about 40 ms instead of under 1.
      client.on('connect', () => (client.stream as Partial<Socket>).setNoDelay?.(true))
      try {
        await new Promise<void>((resolve, reject) => {
          client.once('connect', () => resolve())
          client.once('error', reject)
          client.once('close', () => reject(new Error('connection closed')))
        })
        client.on('error', () => {})
        connected.push({ entry, client })
      } catch (error) {
        const { code, message } = error as { code?: unknown; message: string }
        const reason = typeof code === 'string' ? code : message
        refused.push({ entry, reason })
        client.on('error', () => {})
        await client.endAsync(true).catch(() => {})
      }
      if (process.stderr.isTTY && performance.now() - shown > 100) {
        shown = performance.now()
        process.stderr.write(`\rconnecting: ${connected.length + refused.length}/${entries.length}\x1b[K`)
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(64, entries.length) }, lane))
  if (process.stderr.isTTY) process.stderr.write('\r\x1b[K')
  return { connected, refused }
}

/** Garbage the pipeline must refuse and keep in its dead letters, in a few shapes. */
function garbage(sensor: Sensor, boot: string): string {
  const base = { device_id: sensor.entry.device_id, boot_id: boot, seq: sensor.seq, measured_at: Date.now() }
  switch (Math.floor(Math.random() * 5)) {
    case 0:
      return `{"device_id": "${sensor.entry.device_id}", "occupied": tru`
    case 1:
      return JSON.stringify({ ...base, seq: undefined, occupied: true })
    case 2:
      return JSON.stringify({ ...base, occupied: 'yes' })
    case 3:
      return JSON.stringify({ ...base, occupied: false, battery: 140 })
    default:
      return JSON.stringify({ ...base, occupied: true, measured_at: Date.now() + 86_400_000 })
  }
}

const fixed = (n: number, digits = 1) => n.toFixed(digits)

async function main() {
  const opts = options(process.argv.slice(2))
  const file = await readDevicesFile(opts.devicesFile).catch((error: Error) => fail(error.message))
  if (!file) fail(`no devices file at ${opts.devicesFile}: run npm run demo first (or pass --devices FILE)`)
  const entries = file.slice(0, opts.maxDevices ?? file.length)
  if (entries.length === 0) fail(`${opts.devicesFile} lists no devices`)

  const boot = `sim-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`
  console.log(
    `Connecting ${entries.length} sensors to ${opts.brokerUrl} (QoS ${opts.qos}, ${opts.rate} msg/s, boot ${boot})`,
  )
  const { connected, refused } = await connectAll(entries, opts.brokerUrl)
  if (connected.length > 0 && refused.length > 0) {
    for (const { entry, reason } of refused.slice(0, 5))
      console.error(`  ${entry.device_id}: refused (${reason})`)
    if (refused.length > 5) console.error(`  ... and ${refused.length - 5} more refused`)
    console.error('  (credentials out of date? npm run demo -- --rotate issues new ones)')
  }
  if (connected.length === 0) {
    const reason = refused[0]?.reason ?? 'no device'
    fail(
      reason === 'ECONNREFUSED'
        ? `cannot reach the broker at ${opts.brokerUrl}: start the platform (npm start) or pass --mqtt`
        : `the broker refused every device (${reason}): are the credentials in ${opts.devicesFile} current? npm run demo -- --rotate issues new ones`,
    )
  }

  const stats: Stats = {
    offline: 0,
    disconnects: 0,
    sent: 0,
    acknowledged: 0,
    failed: 0,
    states: 0,
    occupiedStates: 0,
    heartbeats: 0,
    malformed: 0,
    inFlight: 0,
    lastError: undefined,
  }
  const schedule = new Schedule()
  const sensors: Sensor[] = connected.map(({ entry, client }) => {
    const sensor: Sensor = {
      entry,
      client,
      flaps: Math.random() < opts.flap,
      occupied: Math.random() < 0.75,
      started: false,
      seq: 0,
      battery: 35 + Math.random() * 65,
      signal: -55 - Math.random() * 40,
      inFlight: 0,
      online: true,
    }
    client.on('close', () => {
      if (sensor.online) {
        sensor.online = false
        stats.offline++
        stats.disconnects++
      }
    })
    client.on('connect', () => {
      if (!sensor.online) {
        sensor.online = true
        stats.offline--
      }
    })
    // Every space states where it stands first.
    schedule.push(0, sensor)
    return sensor
  })

  const ready = (s: Sensor) => s.client.connected && s.inFlight < DEVICE_IN_FLIGHT
  const publish = (sensor: Sensor, topic: string, payload: string) => {
    stats.sent++
    stats.inFlight++
    sensor.inFlight++
    sensor.client.publish(topic, payload, { qos: opts.qos }, (error) => {
      stats.inFlight--
      sensor.inFlight--
      if (error) {
        stats.failed++
        stats.lastError = error.message
      } else if (opts.qos === 1) stats.acknowledged++
    })
  }
  const reading = (sensor: Sensor, occupied?: boolean) => {
    sensor.battery = Math.max(1, sensor.battery - 0.0005)
    return JSON.stringify({
      device_id: sensor.entry.device_id,
      boot_id: boot,
      seq: sensor.seq++,
      measured_at: Date.now(),
      ...(occupied === undefined ? {} : { occupied }),
      battery: Math.round(sensor.battery),
      signal: Math.round(clamp(sensor.signal + (Math.random() - 0.5) * 6, -150, 0)),
    })
  }
  const nextChange = (sensor: Sensor, fraction = 1) =>
    sensor.flaps ? flapDwell() : ((sensor.occupied ? carStay() : gap()) * fraction) / opts.speed

  let cursor = 0
  /** One message: a due space change first, else a heartbeat; false when no device can take one. */
  const sendOne = (now: number): boolean => {
    if (opts.malformed > 0 && Math.random() < opts.malformed) {
      const sensor = sensors[cursor++ % sensors.length] as Sensor
      if (ready(sensor)) {
        stats.malformed++
        publish(sensor, sensorTopics.state(sensor.entry.device_id), garbage(sensor, boot))
        return true
      }
    }
    const top = schedule.peek()
    if (top && top.due <= now) {
      schedule.pop()
      const sensor = top.sensor
      if (!ready(sensor)) schedule.push(now + 1000, sensor)
      else {
        if (sensor.started) sensor.occupied = !sensor.occupied
        stats.states++
        if (sensor.occupied) stats.occupiedStates++
        publish(sensor, sensorTopics.state(sensor.entry.device_id), reading(sensor, sensor.occupied))
        // The first change comes part-way through a stay or a gap already under way.
        schedule.push(now + nextChange(sensor, sensor.started ? 1 : Math.random()), sensor)
        sensor.started = true
        return true
      }
    }
    for (let tries = 0; tries < sensors.length; tries++) {
      const sensor = sensors[cursor++ % sensors.length] as Sensor
      if (!ready(sensor)) continue
      stats.heartbeats++
      publish(sensor, sensorTopics.heartbeat(sensor.entry.device_id), reading(sensor))
      return true
    }
    return false
  }

  // Progress: one line rewritten on a terminal, a line every 5 s otherwise.
  const tty = process.stderr.isTTY === true
  const started = performance.now()
  const samples: [number, number][] = []
  const currentRate = () => {
    const first = samples[0]
    const last = samples[samples.length - 1]
    return first && last && last[0] > first[0] ? ((last[1] - first[1]) * 1000) / (last[0] - first[0]) : 0
  }
  const progress = () => {
    const elapsed = (performance.now() - started) / 1000
    const offline = stats.offline > 0 ? `  offline ${stats.offline}/${sensors.length} (reconnecting)` : ''
    const line = `sent ${stats.sent}  acknowledged ${opts.qos === 1 ? stats.acknowledged : 'n/a'}  failed ${stats.failed}  rate ${fixed(currentRate())} msg/s  ${Math.floor(elapsed)}/${fixed(opts.durationMs / 1000, 0)} s${offline}`
    if (tty) process.stderr.write(`\r${line}\x1b[K`)
    else console.error(line)
  }
  const progressTimer = setInterval(progress, tty ? 250 : 5000)

  let stopping: 'done' | 'interrupted' | undefined
  let sendingTime: number | undefined
  let sendingEnded!: () => void
  const ended = new Promise<void>((resolve) => (sendingEnded = resolve))
  const stop = (why: 'done' | 'interrupted') => {
    if (stopping) return
    stopping = why
    sendingEnded()
  }
  let interrupts = 0
  const onSignal = () => {
    interrupts++
    if (interrupts === 1) stop('interrupted')
    else {
      // A second Ctrl-C: no more waiting.
      summary(true)
      process.exit(130)
    }
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)

  let slots = 0
  const tick = () => {
    if (stopping) return
    const now = performance.now() - started
    samples.push([now, stats.sent])
    while (samples.length > 2 && (samples[0] as [number, number])[0] < now - 1000) samples.shift()
    if (now >= opts.durationMs) return stop('done')
    const target = Math.floor((opts.rate * now) / 1000)
    // After a stall, catch up at most a second's worth at once.
    slots = Math.max(slots, target - Math.ceil(opts.rate))
    while (slots < target) {
      if (opts.messages !== undefined && stats.sent >= opts.messages) return stop('done')
      if (!sendOne(now)) break
      slots++
    }
    if (opts.messages !== undefined && stats.sent >= opts.messages) return stop('done')
    setTimeout(tick, 5)
  }
  tick()
  await ended
  sendingTime = (performance.now() - started) / 1000

  // Outstanding acknowledgements: wait for them a while (less after Ctrl-C).
  const waitUntil = performance.now() + (stopping === 'interrupted' ? 5_000 : 15_000)
  while (stats.inFlight > 0 && stats.offline < sensors.length && performance.now() < waitUntil)
    await new Promise((resolve) => setTimeout(resolve, 20))
  clearInterval(progressTimer)
  if (!tty) progress()

  let summarised = false
  function summary(cutShort = false) {
    if (summarised) return
    summarised = true
    if (tty) process.stderr.write('\r\x1b[K')
    const unacknowledged = stats.inFlight
    const failed = stats.failed + (opts.qos === 1 ? unacknowledged : 0)
    const seconds = sendingTime ?? (performance.now() - started) / 1000
    console.log(
      [
        `${stopping === 'interrupted' || cutShort ? 'Stopped' : 'Done'}: ${connected.length} sensors on ${opts.brokerUrl}, QoS ${opts.qos}${refused.length > 0 ? `, ${refused.length} refused at connect` : ''}`,
        `  sent          ${stats.sent} messages: ${stats.states} states (${stats.occupiedStates} occupied, ${stats.states - stats.occupiedStates} free), ${stats.heartbeats} heartbeats, ${stats.malformed} malformed`,
        `  acknowledged  ${opts.qos === 1 ? `${stats.acknowledged} (PUBACK)` : 'n/a (QoS 0 has no PUBACK)'}`,
        `  failed        ${failed}${opts.qos === 1 && unacknowledged > 0 ? ` (${unacknowledged} unacknowledged when it stopped)` : ''}${stats.lastError ? `; last error: ${stats.lastError}` : ''}`,
        ...(stats.disconnects > 0
          ? [
              `  disconnects   ${stats.disconnects} (sensors that lost the broker and reconnected or tried to)`,
            ]
          : []),
        `  average rate  ${fixed(seconds > 0 ? stats.sent / seconds : 0)} msg/s`,
        `  duration      ${fixed(seconds)} s`,
      ].join('\n'),
    )
  }
  summary()
  process.exitCode = stats.failed > 0 || stats.inFlight > 0 || refused.length > 0 ? 1 : 0

  await Promise.race([
    Promise.all(connected.map(({ client }) => client.endAsync().catch(() => {}))),
    new Promise((resolve) => setTimeout(resolve, 5_000).unref()),
  ])
  process.off('SIGINT', onSignal)
  process.off('SIGTERM', onSignal)
}

try {
  await main()
} catch (error) {
  if (!(error instanceof SimulateError)) throw error
  console.error(`simulate: ${error.message}`)
  process.exitCode = 1
}
process.exit()
