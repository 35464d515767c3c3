import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { AppError } from '../../shared/errors.ts'
import { decodeCursor, encodeCursor } from '../../shared/ids.ts'
import type { Logger } from '../../shared/logger.ts'
import {
  type DeviceHealth,
  deviceIdPattern,
  type IngestOutcome,
  type OccupancyIndex,
  type ReadingSink,
  sensorTopics,
} from '../occupancy/occupancy.contract.ts'
import type { BrokerAccounts } from './dynsec.ts'
import type { DeviceKind, DeviceRecord } from './sensors.model.ts'
import type { SensorsRepository } from './sensors.repository.ts'

export type DeviceView = {
  id: string
  kind: DeviceKind
  space_id: string | null
  model: string | null
  firmware: string | null
  last_seen_at: string | null
  last_measured_at: string | null
  battery: number | null
  signal: number | null
  stale: boolean
  meter_wh: number | null
  created_at: string
  updated_at: string
}

export type DeviceCredentials = {
  username: string
  password: string
  client_id?: string
  topics?: { state: string; heartbeat: string }
}

export type DeviceProblem = 'never_seen' | 'stale' | 'low_battery'

export type DeviceCreateInput = {
  id: string
  kind: DeviceKind
  space_id?: string | null | undefined
  model?: string | undefined
  firmware?: string | undefined
}

export type DeviceReplaceInput = {
  space_id: string | null
  model?: string | undefined
  firmware?: string | undefined
}

export type DeviceListQuery = {
  limit: number
  cursor?: string | undefined
  kind?: DeviceKind | undefined
  space_id?: string | undefined
  stale?: 'true' | 'false' | undefined
}

/** A device that proved its secret over HTTP Basic. */
export type DeviceCaller = { id: string; kind: DeviceKind }

/** Resolves a space of the facilities capability, or undefined when there is none. */
export type FindSpace = (spaceId: string) => Promise<unknown | undefined>

export type SensorsService = ReturnType<typeof createSensorsService>

/** Under this battery percentage a sensor counts as a problem. */
export const LOW_BATTERY_PERCENT = 20
/** How many problem sensors the health summary lists. */
const PROBLEM_LIST_MAX = 100
/** A binding whose device is gone, or moved on, this long after it was made was left by a crash. */
const STALE_BINDING_MS = 60_000
/** How many registry rows a `stale=` filtered page reads at most before it answers. */
const FILTER_SCAN_MAX = 2_000
const SCAN_CHUNK = 200

const labelsOf = (device: DeviceRecord) => ({ model: device.model, firmware: device.firmware })
const noDevice = (id: string) => new AppError('NOT_FOUND', `No device ${id}`)
const text = (value: string | undefined): string | null => value?.trim() || null

export const hashSecret = (secret: string): Buffer => createHash('sha256').update(secret, 'utf8').digest()
const newSecret = () => randomBytes(32).toString('base64url')

/** Sensors and chargers publish over MQTT with broker credentials of their own; gateways post over HTTP. */
const speaksMqtt = (kind: DeviceKind) => kind !== 'gateway'

function credentialsOf(device: { _id: string; kind: DeviceKind }, secret: string): DeviceCredentials {
  if (device.kind === 'gateway') return { username: device._id, password: secret }
  return {
    username: device._id,
    password: secret,
    client_id: device._id,
    topics: { state: sensorTopics.state(device._id), heartbeat: sensorTopics.heartbeat(device._id) },
  }
}

function toView(device: DeviceRecord, health: DeviceHealth | undefined): DeviceView {
  return {
    id: device._id,
    kind: device.kind,
    space_id: device.space_id,
    model: device.model,
    firmware: device.firmware,
    last_seen_at: health?.lastSeenAt?.toISOString() ?? null,
    last_measured_at: health?.lastMeasuredAt?.toISOString() ?? null,
    battery: health?.battery ?? null,
    signal: health?.signal ?? null,
    stale: health?.stale ?? false,
    meter_wh: health?.meterWh ?? null,
    created_at: device.created_at.toISOString(),
    updated_at: device.updated_at.toISOString(),
  }
}

function problemsOf(view: DeviceView): DeviceProblem[] {
  const problems: DeviceProblem[] = []
  if (view.last_seen_at === null) problems.push('never_seen')
  else if (view.stale) problems.push('stale')
  if (view.battery !== null && view.battery < LOW_BATTERY_PERCENT) problems.push('low_battery')
  return problems
}

/** Remembers device lookups of the ingest door for a while, so that requests stay off the database. */
function lookupCache(ttlMs: number, maxEntries = 10_000) {
  const entries = new Map<string, { device: DeviceRecord | undefined; until: number }>()
  return {
    get(id: string) {
      const entry = entries.get(id)
      if (entry && entry.until > Date.now()) return entry
      entries.delete(id)
      return undefined
    },
    set(id: string, device: DeviceRecord | undefined) {
      // Map order is insertion order: the first key is the oldest entry.
      if (entries.size >= maxEntries) entries.delete(entries.keys().next().value as string)
      entries.set(id, { device, until: Date.now() + ttlMs })
    },
    forget(id: string) {
      entries.delete(id)
    },
  }
}

const unauthenticated = (detail: string) =>
  new AppError('UNAUTHENTICATED', detail, {
    headers: { 'WWW-Authenticate': 'Basic realm="devices", charset="UTF-8"' },
  })

/** Compared against when the device is unknown, so that an unknown id costs what a wrong secret does. */
const decoyHash = hashSecret(randomBytes(32).toString('base64url'))

export function createSensorsService(deps: {
  repo: SensorsRepository
  broker: BrokerAccounts
  occupancy: Pick<OccupancyIndex, 'bindDevice' | 'removeDevice' | 'deviceHealth'>
  findSpace: FindSpace
  readingSink: ReadingSink
  logger?: Logger | undefined
  /** How long the ingest door trusts a device lookup; also how long a rotated secret may linger elsewhere. */
  authCacheMs?: number
}) {
  const { repo, broker, occupancy, findSpace, readingSink } = deps
  const lookups = lookupCache(deps.authCacheMs ?? 30_000)

  async function requireDevice(id: string): Promise<DeviceRecord> {
    const device = await repo.findDevice(id)
    if (!device) throw noDevice(id)
    return device
  }

  async function requireSpace(spaceId: string): Promise<void> {
    if ((await findSpace(spaceId)) === undefined) throw new AppError('NOT_FOUND', `No space ${spaceId}`)
  }

  async function withHealth(devices: DeviceRecord[]): Promise<DeviceView[]> {
    if (devices.length === 0) return []
    const health = new Map(
      (await occupancy.deviceHealth(devices.map((d) => d._id))).map((h) => [h.deviceId, h]),
    )
    return devices.map((device) => toView(device, health.get(device._id)))
  }

  async function viewOf(device: DeviceRecord): Promise<DeviceView> {
    const [view] = await withHealth([device])
    return view as DeviceView
  }

  /** Undo steps of a write that failed half-way; each one is tried, and a failure only logged. */
  async function quietly(what: string, step: () => Promise<unknown>): Promise<void> {
    try {
      await step()
    } catch (error) {
      deps.logger?.warn({ err: error }, `sensors: could not ${what}`)
    }
  }

  /**
   * The binding's insert decides: of concurrent bindings of one space exactly one gets through.
   * A binding this device holds already (a retry) is its own; a stale one is removed by whoever
   * wins its takeover mark, and the insert tried once more, which stays the arbiter.
   */
  async function claimSpace(spaceId: string, deviceId: string): Promise<void> {
    if (await repo.claimSpace(spaceId, deviceId)) return
    const binding = await repo.findSpaceBinding(spaceId)
    if (binding?.device_id === deviceId) return
    if (binding && Date.now() - binding.created_at.getTime() > STALE_BINDING_MS) {
      const holder = await repo.findDevice(binding.device_id)
      if ((!holder || holder.space_id !== spaceId) && (await repo.winTakeover(binding, deviceId))) {
        await repo.releaseSpace(spaceId, binding.device_id)
        if (await repo.claimSpace(spaceId, deviceId)) return
      }
    } else if (!binding && (await repo.claimSpace(spaceId, deviceId))) {
      return
    }
    throw new AppError('CONFLICT', `The space ${spaceId} has a device already`)
  }

  /**
   * Moves a device to another space (or none): claim the new space, tell the hot state, write the
   * device, release the old space. On a failure the new claim and the hot-state binding go back.
   */
  async function moveBinding(
    device: DeviceRecord,
    to: string | null,
    labels: Pick<DeviceRecord, 'model' | 'firmware'>,
  ): Promise<DeviceRecord> {
    const from = device.space_id
    if (to === from) return (await repo.updateDevice(device._id, labels)) ?? device
    if (to !== null) await claimSpace(to, device._id)
    let updated: DeviceRecord | undefined
    try {
      await occupancy.bindDevice(device._id, to)
      updated = await repo.updateDevice(device._id, { ...labels, space_id: to })
    } catch (error) {
      await quietly('restore a hot-state binding', () => occupancy.bindDevice(device._id, from))
      if (to !== null) await quietly('release a space binding', () => repo.releaseSpace(to, device._id))
      throw error
    }
    if (from !== null) await repo.releaseSpace(from, device._id)
    if (!updated) throw noDevice(device._id)
    return updated
  }

  /** Reads every device in `_id` order, a chunk at a time, from after `after`. */
  async function* scan(filter: { kind?: DeviceKind | undefined; after?: string | undefined }) {
    let after = filter.after
    for (;;) {
      const rows = await repo.listDevices({ kind: filter.kind, after, limit: SCAN_CHUNK })
      if (rows.length > 0) yield rows
      if (rows.length < SCAN_CHUNK) return
      after = rows.at(-1)?._id
    }
  }

  return {
    async list(query: DeviceListQuery) {
      const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor)
      const stale = query.stale === undefined ? undefined : query.stale === 'true'
      const keep = (view: DeviceView) =>
        (query.kind === undefined || view.kind === query.kind) &&
        (stale === undefined || view.stale === stale)

      if (query.space_id !== undefined) {
        // The space's binding names its device: a lookup by `_id`, never a scan.
        const binding = await repo.findSpaceBinding(query.space_id)
        const device =
          binding && (after === undefined || binding.device_id > after)
            ? await repo.findDevice(binding.device_id)
            : undefined
        const views = device?.space_id === query.space_id ? await withHealth([device]) : []
        return { data: views.filter(keep), next_cursor: null }
      }

      if (stale === undefined) {
        const rows = await repo.listDevices({ kind: query.kind, after, limit: query.limit + 1 })
        const page = rows.slice(0, query.limit)
        const last = page.at(-1)
        return {
          data: await withHealth(page),
          next_cursor: rows.length > query.limit && last ? encodeCursor(last._id) : null,
        }
      }

      // Staleness is in the hot state, not in the registry: filter chunk by chunk, and answer a
      // short page with a cursor rather than scan the whole fleet in one request.
      const data: DeviceView[] = []
      let scanned = 0
      let lastScanned: string | undefined
      let exhausted = true
      outer: for await (const rows of scan({ kind: query.kind, after })) {
        const views = await withHealth(rows)
        for (const view of views) {
          if (data.length === query.limit || scanned === FILTER_SCAN_MAX) {
            exhausted = false
            break outer
          }
          scanned++
          lastScanned = view.id
          if (keep(view)) data.push(view)
        }
      }
      return { data, next_cursor: !exhausted && lastScanned ? encodeCursor(lastScanned) : null }
    },

    async get(id: string): Promise<DeviceView> {
      return await viewOf(await requireDevice(id))
    },

    /**
     * Registry first (its insert is the arbiter of the id), then broker credentials, then the
     * space. A failure after the insert undoes what was done, so that a retry starts afresh.
     */
    async create(input: DeviceCreateInput): Promise<DeviceView & { credentials: DeviceCredentials }> {
      const spaceId = speaksMqtt(input.kind) ? (input.space_id ?? null) : null
      if (spaceId !== null) await requireSpace(spaceId)
      const secret = newSecret()
      const now = new Date()
      let device: DeviceRecord = {
        _id: input.id,
        kind: input.kind,
        space_id: null,
        model: text(input.model),
        firmware: text(input.firmware),
        secret_hash: hashSecret(secret).toString('hex'),
        created_at: now,
        updated_at: now,
      }
      if (!(await repo.insertDevice(device)))
        throw new AppError('CONFLICT', `A device ${input.id} exists already`)
      lookups.forget(device._id)
      try {
        if (speaksMqtt(device.kind)) await broker.provisionDevice(device._id, secret)
        if (spaceId !== null) device = await moveBinding(device, spaceId, labelsOf(device))
      } catch (error) {
        if (speaksMqtt(device.kind))
          await quietly('remove broker credentials', () => broker.removeDevice(input.id))
        await quietly('remove a device', () => repo.deleteDevice(input.id))
        throw error
      }
      return { ...(await viewOf(device)), credentials: credentialsOf(device, secret) }
    },

    /** Binding, model and firmware; the kind and the id never change. */
    async replace(id: string, input: DeviceReplaceInput): Promise<DeviceView> {
      const device = await requireDevice(id)
      if (device.kind === 'gateway' && input.space_id !== null) {
        throw new AppError('CONFLICT', `${id} is a gateway: gateways are bound to no space`)
      }
      if (input.space_id !== null && input.space_id !== device.space_id) await requireSpace(input.space_id)
      const updated = await moveBinding(device, input.space_id, {
        model: text(input.model),
        firmware: text(input.firmware),
      })
      return await viewOf(updated)
    },

    /**
     * Broker credentials first: the device is cut off at once (Mosquitto disconnects it), and a
     * failure leaves everything else in place for a retry. Then the hot state, the registry, the
     * space binding.
     */
    async remove(id: string): Promise<void> {
      const device = await requireDevice(id)
      if (speaksMqtt(device.kind)) await broker.removeDevice(id)
      lookups.forget(id)
      await occupancy.removeDevice(id)
      await repo.deleteDevice(id)
      if (device.space_id !== null) await repo.releaseSpace(device.space_id, id)
    },

    /**
     * A new secret, shown once. The broker first (it also repairs a client lost to a crash during
     * creation); the old password stops working there at once, and over HTTP on this instance at
     * once, on others within the lookup cache's lifetime.
     */
    async rotateCredentials(id: string): Promise<DeviceView & { credentials: DeviceCredentials }> {
      const device = await requireDevice(id)
      const secret = newSecret()
      if (speaksMqtt(device.kind)) await broker.provisionDevice(id, secret)
      const updated = await repo.updateDevice(id, { secret_hash: hashSecret(secret).toString('hex') })
      lookups.forget(id)
      if (!updated) throw noDevice(id)
      return { ...(await viewOf(updated)), credentials: credentialsOf(updated, secret) }
    },

    /**
     * Every sensor's and charger's binding, in pages of up to 1,000: the occupancy capability
     * rebuilds Redis from them.
     */
    async *bindings(): AsyncIterable<{ deviceId: string; spaceId: string | null }[]> {
      let after: string | undefined
      for (;;) {
        const page = await repo.listDevices({ after, limit: 1000 })
        if (page.length === 0) return
        const bound = page.filter((d) => speaksMqtt(d.kind))
        if (bound.length > 0) yield bound.map((d) => ({ deviceId: d._id, spaceId: d.space_id }))
        after = page.at(-1)?._id
      }
    },

    /** For the facilities capability: a space that goes away takes its sensor's binding along. */
    async unbindSpace(spaceId: string): Promise<void> {
      const binding = await repo.findSpaceBinding(spaceId)
      if (!binding) return
      const device = await repo.findDevice(binding.device_id)
      if (device?.space_id === spaceId) await moveBinding(device, null, labelsOf(device))
      else await repo.releaseSpace(spaceId, binding.device_id)
    },

    /** Every sensor's health, counted; the first problem sensors listed. Reads the whole fleet. */
    async healthSummary() {
      const summary = { sensors: 0, gateways: 0, ok: 0, stale: 0, never_seen: 0, low_battery: 0 }
      const problemDevices: (DeviceView & { problems: DeviceProblem[] })[] = []
      for await (const rows of scan({})) {
        const sensors = rows.filter((row) => speaksMqtt(row.kind))
        summary.gateways += rows.length - sensors.length
        for (const view of await withHealth(sensors)) {
          summary.sensors++
          const problems = problemsOf(view)
          if (problems.includes('never_seen')) summary.never_seen++
          else if (problems.includes('stale')) summary.stale++
          else summary.ok++
          if (problems.includes('low_battery')) summary.low_battery++
          if (problems.length > 0 && problemDevices.length < PROBLEM_LIST_MAX) {
            problemDevices.push({ ...view, problems })
          }
        }
      }
      return { generated_at: new Date().toISOString(), ...summary, problem_devices: problemDevices }
    },

    /**
     * HTTP Basic with a device id and its secret. The lookup goes by `_id` and is cached; the
     * secret's sha256 is compared in constant time, against a decoy when the device is unknown.
     */
    async authenticate(authorization: string | undefined): Promise<DeviceCaller> {
      const encoded = /^Basic +([A-Za-z0-9+/]+=*) *$/i.exec(authorization ?? '')?.[1]
      if (!encoded) throw unauthenticated('Send "Authorization: Basic <device id:secret>"')
      const decoded = Buffer.from(encoded, 'base64').toString('utf8')
      const colon = decoded.indexOf(':')
      const id = colon > 0 ? decoded.slice(0, colon) : ''
      const secret = colon > 0 ? decoded.slice(colon + 1) : ''
      const wrong = () => unauthenticated('Unknown device or wrong secret')
      if (!deviceIdPattern.test(id)) throw wrong()
      let entry = lookups.get(id)
      if (!entry) {
        const device = await repo.findDevice(id)
        lookups.set(id, device)
        entry = { device, until: 0 }
      }
      const stored = entry.device ? Buffer.from(entry.device.secret_hash, 'hex') : decoyHash
      const matches = stored.length === decoyHash.length && timingSafeEqual(hashSecret(secret), stored)
      if (!entry.device || !matches) throw wrong()
      return { id: entry.device._id, kind: entry.device.kind }
    },

    /**
     * A batch from a gateway (any device's readings) or from a sensor (its own only: another
     * device's reading refuses the whole batch with 403, before anything is applied).
     */
    async ingest(caller: DeviceCaller, readings: readonly { device_id: string }[]): Promise<IngestOutcome> {
      if (speaksMqtt(caller.kind)) {
        const foreign = readings.findIndex((reading) => reading.device_id !== caller.id)
        if (foreign >= 0) {
          const reason = `a sensor sends its own readings only (${caller.id})`
          throw new AppError('FORBIDDEN', `Reading ${foreign} is not from ${caller.id}: ${reason}`, {
            errors: [
              {
                in: 'body',
                field: `readings.${foreign}.device_id`,
                pointer: `/readings/${foreign}/device_id`,
                reason,
              },
            ],
          })
        }
      }
      return await readingSink.submit(readings, speaksMqtt(caller.kind) ? caller.id : null)
    },
  }
}
