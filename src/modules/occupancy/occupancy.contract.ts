/**
 * What other capabilities (facilities, sensors) and the ingest door rely on from the occupancy
 * capability. The hot state lives in Redis; facilities and sensors keep it in step with MongoDB
 * through these calls, and the ingest pipeline feeds readings in.
 */

export const spaceTypes = ['STANDARD', 'COMPACT', 'HANDICAPPED', 'EV', 'MOTORCYCLE'] as const
export type SpaceType = (typeof spaceTypes)[number]

/** What a sensor says about its space. `unknown` until a first reading, or after a silent sensor. */
export const sensedStates = ['free', 'occupied', 'unknown'] as const
export type SensedState = (typeof sensedStates)[number]

/** What an operator lays over the sensed state (FIWARE ParkingSpot keeps the two apart as well). */
export const overlays = ['reserved', 'maintenance', 'closed'] as const
export type Overlay = (typeof overlays)[number]

/** The state that counts: the overlay when there is one, the sensed state otherwise. */
export type SpaceStatus = SensedState | Overlay

/** Where a space sits and what it is: the part of a space the hot state needs. */
export type SpacePlacement = {
  spaceId: string
  lotId: string
  levelId: string
  zoneId: string
  number: string
  type: SpaceType
  overlay: Overlay | null
}

/** A normalised sensor reading, as the worker pool hands it to the Redis step. */
export type Reading = {
  device: string
  boot: string
  seq: number
  /** Measured-at time, epoch milliseconds (the device's clock). */
  at: number
  /** null for a heartbeat: the device is alive, the space's state is not re-stated. */
  occupied: boolean | null
  /** Percent, 0..100, or null when not sent. */
  battery: number | null
  /** Received signal strength in dBm, or null when not sent. */
  signal: number | null
}

/** A device's health as the hot state knows it. */
export type DeviceHealth = {
  deviceId: string
  spaceId: string | null
  lastSeenAt: Date | null
  lastMeasuredAt: Date | null
  boot: string | null
  seq: number | null
  battery: number | null
  signal: number | null
  stale: boolean
  /** A charger's last cumulative energy meter reading (Wh) and when it was measured; null when none. */
  meterWh: number | null
  meterAt: Date | null
}

/** The part of the occupancy capability facilities and sensors call. */
export type OccupancyIndex = {
  /** Adds spaces, or moves/retypes/re-overlays existing ones; counters follow. Idempotent. */
  upsertSpaces(spaces: readonly SpacePlacement[]): Promise<void>
  /** Takes spaces out of the hot state and the counters. Idempotent. */
  removeSpaces(spaceIds: readonly string[]): Promise<void>
  /** Binds a device to a space (or unbinds it with null); a new binding starts the space at unknown. */
  bindDevice(deviceId: string, spaceId: string | null): Promise<void>
  /** Forgets a device: its readings are refused from now on. */
  removeDevice(deviceId: string): Promise<void>
  deviceHealth(deviceIds: readonly string[]): Promise<DeviceHealth[]>
}

/**
 * The topic scheme. A device publishes only under its own id (its broker role allows nothing
 * else); the ingest door subscribes to all of them through one shared subscription.
 *   parking/sensors/{deviceId}/state      a reading: occupied true/false
 *   parking/sensors/{deviceId}/heartbeat  alive, battery and signal; the state is not re-stated
 */
export const sensorTopics = {
  state: (deviceId: string) => `parking/sensors/${deviceId}/state`,
  heartbeat: (deviceId: string) => `parking/sensors/${deviceId}/heartbeat`,
  /** What a device's broker role may publish to. */
  deviceAcl: (deviceId: string) => `parking/sensors/${deviceId}/#`,
  /** What the ingest door subscribes to, inside `$share/<group>/`. */
  all: 'parking/sensors/+/+',
} as const

/** A device id: also its broker username and client id, and a topic level, so no `/ + #`. */
export const deviceIdPattern = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/

/** What one batch of readings came to, after the durable Redis step. */
export type IngestOutcome = {
  accepted: number
  /** Already seen (same device, boot and sequence number). */
  duplicates: number
  /** Older than what the device reported last. */
  stale: number
  /** Invalid readings, by their index in the batch, with the reason; they went to the dead letters. */
  rejected: { index: number; reason: string }[]
}

/** The pipeline's entry for readings that did not come over MQTT (the gateway HTTP endpoint). */
export type ReadingSink = {
  /**
   * Validates, normalises and applies readings as one batch; resolves after the durable step.
   * `onlyDevice` set: every reading must be that device's (a device speaking for itself).
   */
  submit(items: readonly unknown[], onlyDevice: string | null): Promise<IngestOutcome>
}
