import { z } from '@hono/zod-openapi'
import { PageQuerySchema, pageSchema } from '../../http/openapi.ts'
import { deviceIdPattern } from '../occupancy/occupancy.contract.ts'
import { deviceKinds } from './sensors.model.ts'

// Every rule is a pattern or a bound, so that the OpenAPI document states exactly what is accepted
// (the API is fuzzed from it): nothing the schema allows is refused later for its shape.

const deviceId = z
  .string()
  .regex(
    deviceIdPattern,
    'a device id: letters, digits and _ . : -, starting with a letter or digit, at most 64',
  )
  .openapi({
    example: 'lot1-l2-s042',
    description: 'Chosen by the admin; also the broker username, client id and a topic level.',
  })

const spaceId = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$/, 'a space id')
  .openapi({ example: '0193a5c2-7f1e-7b3c-9a41-2f0c8e1d4b6a' })

const label = z.string().max(100)

export const DeviceSchema = z
  .object({
    id: z.string().openapi({ example: 'lot1-l2-s042' }),
    kind: z.enum(deviceKinds),
    space_id: z
      .string()
      .nullable()
      .openapi({ description: 'The space the sensor watches; null when unbound.' }),
    model: z.string().nullable().openapi({ example: 'PS-200' }),
    firmware: z.string().nullable().openapi({ example: '2.4.1' }),
    last_seen_at: z.iso
      .datetime()
      .nullable()
      .openapi({ description: 'When the platform last heard from the device; null if never.' }),
    last_measured_at: z.iso
      .datetime()
      .nullable()
      .openapi({ description: "The measured-at time of its last reading (the device's clock)." }),
    battery: z.number().nullable().openapi({ description: 'Percent, 0..100, as last reported.' }),
    signal: z
      .number()
      .nullable()
      .openapi({ description: 'Received signal strength in dBm, as last reported.' }),
    stale: z.boolean().openapi({ description: 'Silent for longer than the occupancy staleness window.' }),
    meter_wh: z
      .number()
      .nullable()
      .openapi({ description: "A charger's cumulative energy meter (Wh) as last reported; null if never." }),
    created_at: z.iso.datetime(),
    updated_at: z.iso.datetime(),
  })
  .openapi('Device', {
    description: 'A device and its health; the health fields come from the hot state, not from the registry.',
  })

export const DeviceCredentialsSchema = z
  .object({
    username: z
      .string()
      .openapi({ description: 'The device id: the MQTT username, and the HTTP Basic user id.' }),
    password: z.string().openapi({
      description:
        'The device secret (32 random bytes, base64url): the MQTT password and the HTTP Basic password. Shown once.',
    }),
    client_id: z
      .string()
      .optional()
      .openapi({ description: 'Sensors only: the MQTT client id the broker accepts.' }),
    topics: z
      .object({
        state: z.string().openapi({ example: 'parking/sensors/lot1-l2-s042/state' }),
        heartbeat: z.string().openapi({ example: 'parking/sensors/lot1-l2-s042/heartbeat' }),
      })
      .optional()
      .openapi({ description: 'Sensors only: where it publishes; any other topic is refused.' }),
  })
  .openapi('DeviceCredentials')

export const DeviceWithCredentialsSchema = DeviceSchema.extend({
  credentials: DeviceCredentialsSchema,
}).openapi('DeviceWithCredentials')

const optionalLabels = {
  model: label.optional().openapi({ example: 'PS-200' }),
  firmware: label.optional().openapi({ example: '2.4.1' }),
}

export const DeviceCreateSchema = z
  .discriminatedUnion('kind', [
    z
      .strictObject({
        id: deviceId,
        kind: z.literal('sensor'),
        space_id: spaceId
          .nullable()
          .optional()
          .openapi({ description: 'Binds the sensor to this space at once.' }),
        ...optionalLabels,
      })
      .openapi('SensorCreate'),
    z
      .strictObject({
        id: deviceId,
        kind: z.literal('charger'),
        space_id: spaceId.nullable().optional().openapi({
          description:
            'The EV bay it charges. Bound like a sensor: its readings are taken only once it is bound, and an `occupied` in them senses the bay.',
        }),
        ...optionalLabels,
      })
      .openapi('ChargerCreate', {
        description: 'An EV charger that reports its energy meter (`energy_wh`) over MQTT like a sensor.',
      }),
    z.strictObject({ id: deviceId, kind: z.literal('gateway'), ...optionalLabels }).openapi('GatewayCreate', {
      description: 'Gateways relay readings over HTTP; they are bound to no space.',
    }),
  ])
  .openapi('DeviceCreate')

export const DeviceReplaceSchema = z
  .strictObject({
    space_id: spaceId.nullable().openapi({ description: 'The space to bind to, or null to unbind.' }),
    ...optionalLabels,
  })
  .openapi('DeviceReplace', {
    description:
      'A full replacement of what may change: a label left out is cleared. Gateways take space_id null only.',
  })

export const DeviceListQuerySchema = PageQuerySchema.extend({
  kind: z.enum(deviceKinds).optional(),
  space_id: spaceId.optional().openapi({ description: 'The device bound to this space.' }),
  stale: z.enum(['true', 'false']).optional().openapi({
    description: 'Only stale (or only fresh) devices; such a page may hold fewer than `limit` items.',
  }),
})

export const DeviceListSchema = pageSchema(DeviceSchema, 'DeviceList')

export const DeviceIdParamSchema = z.object({
  id: deviceId.openapi({ param: { name: 'id', in: 'path' } }),
})

export const deviceProblems = ['never_seen', 'stale', 'low_battery'] as const

export const SensorHealthSummarySchema = z
  .object({
    generated_at: z.iso.datetime(),
    sensors: z.int().openapi({ description: 'Sensors in the registry.' }),
    gateways: z
      .int()
      .openapi({ description: 'Gateways in the registry (they report no health of their own).' }),
    ok: z.int().openapi({ description: 'Sensors heard from and not stale.' }),
    stale: z.int().openapi({ description: 'Sensors heard from once, silent since.' }),
    never_seen: z.int().openapi({ description: 'Sensors the platform never heard from.' }),
    low_battery: z.int().openapi({ description: 'Sensors that last reported a battery under 20 %.' }),
    problem_devices: z
      .array(DeviceSchema.extend({ problems: z.array(z.enum(deviceProblems)) }))
      .openapi({ description: 'The first 100 sensors with a problem, by id.' }),
  })
  .openapi('SensorHealthSummary')

/** A reading as the message contract has it (see the folder README); `occupied` absent: a heartbeat. */
export const ReadingSchema = z
  .strictObject({
    device_id: deviceId,
    boot_id: z.string().min(1).max(64).openapi({ description: 'Changes at every boot of the device.' }),
    seq: z.int().min(0).openapi({ description: 'Increases within one boot.' }),
    measured_at: z
      .union([z.iso.datetime({ offset: true }), z.int().min(0)])
      .openapi({ description: 'RFC 3339 time, or epoch milliseconds.' }),
    occupied: z.boolean().optional().openapi({ description: 'Left out in a heartbeat.' }),
    battery: z.number().min(0).max(100).optional().openapi({ description: 'Percent.' }),
    signal: z.number().min(-150).max(0).optional().openapi({ description: 'dBm.' }),
    energy_wh: z
      .number()
      .min(0)
      .max(1e12)
      .optional()
      .openapi({ description: "A charger's cumulative energy meter, watt-hours." }),
  })
  .openapi('Reading')

export const IngestBodySchema = z
  .strictObject({ readings: z.array(ReadingSchema).min(1).max(1000) })
  .openapi('ReadingBatch')

export const IngestOutcomeSchema = z
  .object({
    accepted: z.int(),
    duplicates: z.int().openapi({ description: 'Already seen: same device, boot and sequence number.' }),
    stale: z.int().openapi({ description: 'Older than what the device reported last.' }),
    rejected: z
      .array(z.object({ index: z.int(), reason: z.string() }))
      .openapi({ description: 'Readings the pipeline refused, by index in the batch, with the reason.' }),
  })
  .openapi('IngestOutcome')
