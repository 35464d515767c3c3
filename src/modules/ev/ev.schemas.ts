import { z } from '@hono/zod-openapi'
import { pageSchema } from '../../http/openapi.ts'
import { deviceIdPattern, overlays, sensedStates } from '../occupancy/occupancy.contract.ts'
import { chargerTypes, serviceStatuses } from './ev.model.ts'

// Every rule is a pattern or a bound, so that the OpenAPI document states exactly what is accepted.

const uuidParam = (name: string) => z.uuid().openapi({ param: { name, in: 'path' } })

/** LEVEL1, LEVEL2 or DC_FAST in any case ("level2" as seed 004 sends it); answered in upper case. */
const chargerType = z
  .string()
  .regex(
    /^(?:[Ll][Ee][Vv][Ee][Ll][12]|[Dd][Cc]_[Ff][Aa][Ss][Tt])$/,
    'a charger type: LEVEL1, LEVEL2 or DC_FAST, in any case',
  )
  .openapi({ example: 'LEVEL2' })

const money = (description: string, example: number) =>
  z.int().min(0).max(100_000_000).openapi({ description, example })

export const StationInputSchema = z
  .strictObject({
    space_id: z.uuid().openapi({ description: 'A space of type EV; one station per space.' }),
    charger_type: chargerType,
    connector_type: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,19}$/, 'a connector type: letters, digits, _ and -, at most 20')
      .openapi({
        example: 'J1772',
        description: 'J1772, CCS1, CCS2, CHADEMO, TYPE2, NACS, TESLA ...; answered in upper case.',
      }),
    power_kw: z.number().min(0.1).max(1000).openapi({ example: 7.2 }),
    price_per_kwh: money('Minor units of the lot’s currency per kWh (25 = 0.25 EUR/kWh).', 25),
    idle_fee_per_minute: money(
      'Minor units per minute a vehicle stays on the space after its charge ended, past the grace.',
      0,
    )
      .optional()
      .openapi({ default: 0 }),
    idle_grace_minutes: z.int().min(0).max(1440).optional().openapi({ default: 10, example: 10 }),
    status: z.enum(serviceStatuses).optional().openapi({ default: 'available' }),
    meter_device_id: z
      .string()
      .regex(deviceIdPattern, 'a device id: letters, digits and _ . : -, at most 64')
      .nullable()
      .optional()
      .openapi({
        description:
          'A sensor or charger registered through /devices and bound to this station’s space (422 `meter_not_bound` otherwise), whose readings carry its cumulative meter `energy_wh`: the energy of a charge is then measured, not estimated. A bay takes one device: on an EV bay, a charger that also reports `occupied` senses the bay.',
        example: 'meter-ev-01',
      }),
  })
  .openapi('EvStationInput', {
    description: 'On update, a full replacement: a field left out takes its default.',
  })

const spaceStatuses = [...sensedStates, ...overlays] as const

export const StationSchema = z
  .object({
    id: z.string(),
    space_id: z.string(),
    space_number: z.string().openapi({ example: 'E-010' }),
    lot_id: z.string(),
    zone_id: z.string(),
    charger_type: z.enum(chargerTypes),
    connector_type: z.string().openapi({ example: 'J1772' }),
    power_kw: z.number().openapi({ example: 7.2 }),
    price_per_kwh: z.int().openapi({ example: 25 }),
    idle_fee_per_minute: z.int().openapi({ example: 0 }),
    idle_grace_minutes: z.int().openapi({ example: 10 }),
    currency: z.string().openapi({ example: 'EUR' }),
    meter_device_id: z.string().nullable(),
    service_status: z.enum(serviceStatuses).openapi({ description: 'As staff set it.' }),
    status: z.enum(['available', 'charging', 'occupied', 'out_of_service']).openapi({
      description:
        'Live: `charging` while a charge runs; `out_of_service` as set by staff, or while the space is in maintenance or closed; `occupied` while a vehicle is on the space (held by a parking session, sensed, or reserved) without a charge; `available` otherwise.',
    }),
    space_status: z
      .enum(spaceStatuses)
      .nullable()
      .openapi({ description: 'The space’s live occupancy status (null: not in the hot state).' }),
    created_at: z.iso.datetime(),
    updated_at: z.iso.datetime(),
  })
  .openapi('EvStation')

export const StationListSchema = pageSchema(StationSchema, 'EvStationList')

const flag = z.enum(['true', 'false']).transform((v) => v === 'true')

export const StationListQuerySchema = z.object({
  lot_id: z.uuid().optional(),
  charger_type: chargerType.optional(),
  available_only: flag.optional().openapi({ description: 'Only stations whose live status is available.' }),
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,400}$/)
    .optional()
    .openapi({ description: 'The `next_cursor` of the previous page.' }),
})

export const IdParamSchema = z.object({ id: uuidParam('id') })

export const StartInputSchema = z
  .strictObject({
    station_id: z.uuid(),
    parking_session_id: z
      .uuid()
      .openapi({ description: 'An active parking session on the station’s space.' }),
    vehicle_id: z.uuid().optional().openapi({ description: 'When given, the parking session’s vehicle.' }),
    max_power_requested: z.number().min(0.1).max(1000).optional().openapi({
      example: 7.2,
      description:
        'kW; information only, kept on the charge: nothing enforces it at the charger, so an estimate uses the station’s `power_kw`.',
    }),
  })
  .openapi('EvChargeStart')

export const ChargeSchema = z
  .object({
    id: z.string(),
    station_id: z.string(),
    parking_session_id: z.string(),
    vehicle_id: z.string().nullable(),
    user_id: z.string().nullable(),
    lot_id: z.string(),
    space_id: z.string(),
    charger_type: z.enum(chargerTypes),
    status: z.enum(['charging', 'completed']),
    started_at: z.iso.datetime(),
    stopped_at: z.iso.datetime().nullable(),
    duration_minutes: z.int().openapi({ example: 104 }),
    power_kw: z
      .number()
      .openapi({ description: 'The station’s power at the start: the one an estimate uses.', example: 7.2 }),
    max_power_requested: z.number().nullable().openapi({ description: 'As requested; information only.' }),
    price_per_kwh: z.int().openapi({ example: 25 }),
    idle_fee_per_minute: z.int(),
    idle_grace_minutes: z.int(),
    currency: z.string().openapi({ example: 'EUR' }),
    energy_kwh: z.number().openapi({ example: 12.5, description: 'So far while charging; three decimals.' }),
    energy_source: z.enum(['meter', 'estimated']).openapi({
      description:
        '`meter`: the station’s meter advance; `estimated`: power x time charged, an upper bound of what the vehicle drew.',
    }),
    cost: z.int().openapi({
      example: 313,
      description: 'round(kWh x price_per_kwh), minor units; so far while charging.',
    }),
    meter_device_id: z.string().nullable(),
    meter_start_wh: z.number().nullable(),
    meter_end_wh: z.number().nullable(),
    stop_reason: z.enum(['stopped', 'exit']).nullable().openapi({
      description: '`exit`: stopped by the vehicle’s exit.',
    }),
  })
  .openapi('EvChargingSession')

export const ChargeListSchema = pageSchema(ChargeSchema, 'EvChargingSessionList')

export const ChargeListQuerySchema = z.object({
  station_id: z.uuid().optional(),
  status: z.enum(['charging', 'completed']).optional(),
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,400}$/)
    .optional()
    .openapi({ description: 'The `next_cursor` of the previous page.' }),
})

export const StopSchema = z
  .object({
    session: ChargeSchema,
    energy_used: z.number().openapi({ example: 12.5, description: 'kWh.' }),
    energy_source: z.enum(['meter', 'estimated']),
    cost: z.int().openapi({ example: 313 }),
    currency: z.string().openapi({ example: 'EUR' }),
    duration_minutes: z.int().openapi({ example: 104 }),
  })
  .openapi('EvChargeStop')
