import { z } from '@hono/zod-openapi'
import { PageQuerySchema, pageSchema } from '../../http/openapi.ts'
import { spaceTypes } from '../occupancy/occupancy.contract.ts'
import { FeeQuoteSchema } from '../pricing/pricing.schemas.ts'
import { licensePlate } from '../vehicles/vehicles.schemas.ts'
import { entrySources, gateEntrySources, sessionStatuses } from './sessions.model.ts'

// Every rule is a pattern or a bound, so that the OpenAPI document states exactly what is accepted.

const ticketNumber = z
  .string()
  .regex(/^[Tt][Kk][Tt]-[0-9A-Fa-f]{12}$/, 'a ticket number: TKT- and 12 hexadecimal digits')
  .openapi({ example: 'TKT-A1B2C3D4E5F6' })

const gate = z.string().min(1).max(100).openapi({ example: 'Main Entrance' })

export const EntryInputSchema = z
  .strictObject({
    license_plate: licensePlate,
    lot_id: z.uuid().optional().openapi({ description: 'Required when the platform has several lots.' }),
    zone_id: z.uuid().optional().openapi({ description: 'Park in this zone only.' }),
    entry_gate: gate.optional(),
    vehicle_type: z
      .string()
      .regex(/^[a-z][a-z0-9-]{1,31}$/)
      .optional()
      .openapi({
        example: 'standard',
        description: 'For a plate that is not registered; a registered vehicle brings its own type.',
      }),
    space_type: z.enum(spaceTypes).optional().openapi({ description: 'Take this space type only.' }),
    is_ev: z.boolean().optional().openapi({ description: 'For a plate that is not registered.' }),
    accessible: z.boolean().optional().openapi({ description: 'The driver holds a disability permit.' }),
    source: z.enum(gateEntrySources).optional().openapi({ description: 'Default operator.' }),
    lpr_confidence: z
      .number()
      .min(0)
      .max(1)
      .optional()
      .openapi({ description: 'The license plate reader\'s confidence, 0 to 1, for source "lpr".' }),
  })
  .openapi('EntryInput')

export const ExitInputSchema = z
  .union([
    z
      .strictObject({
        ticket_number: ticketNumber,
        lost_ticket: z.literal(false).optional(),
        exit_gate: gate.optional(),
      })
      .openapi('ExitByTicket'),
    z
      .strictObject({
        license_plate: licensePlate,
        lost_ticket: z.boolean().optional().openapi({
          description: "The driver has no ticket: the tariff's lost-ticket fee is added.",
        }),
        exit_gate: gate.optional(),
      })
      .openapi('ExitByPlate'),
  ])
  .openapi('ExitInput')

export const AssignSpaceSchema = z.strictObject({ space_id: z.uuid() }).openapi('AssignSpaceInput')

export const SessionSchema = z
  .object({
    id: z.string(),
    ticket_number: z.string(),
    lot_id: z.string(),
    level_id: z.string().nullable(),
    zone_id: z.string().nullable(),
    space_id: z.string().nullable(),
    space_number: z.string().nullable(),
    license_plate: z.string(),
    plate_normalized: z.string(),
    vehicle_id: z.string().nullable(),
    vehicle_type: z.string(),
    user_id: z.string().nullable().openapi({ description: "The registered vehicle's owner." }),
    status: z.enum(sessionStatuses),
    entry_time: z.iso.datetime(),
    entry_gate: z.string().nullable(),
    entry_source: z.enum(entrySources),
    lpr_confidence: z.number().nullable(),
    exit_time: z.iso.datetime().nullable(),
    exit_gate: z.string().nullable(),
    lost_ticket: z.boolean(),
    fee_total: z.int().nullable().openapi({ description: 'The fee at exit, in minor units.' }),
    currency: z.string(),
    tariff_id: z
      .string()
      .nullable()
      .openapi({ description: 'The rate plan in force at entry: it prices the stay.' }),
    tariff_name: z.string().nullable(),
    reservation_id: z
      .string()
      .nullable()
      .openapi({ description: 'The reservation the car was checked in from, if any.' }),
  })
  .openapi('Session')

export const SessionListSchema = pageSchema(SessionSchema, 'SessionList')

export const ActiveSessionListSchema = pageSchema(
  SessionSchema.extend({
    duration_minutes: z.int(),
    fee_so_far: z.int().nullable().openapi({ description: 'Minor units, before reductions and payments.' }),
  }).openapi('ActiveSession'),
  'ActiveSessionList',
)

export const SpaceAssignedSchema = z
  .object({
    id: z.string(),
    space_number: z.string(),
    type: z.enum(spaceTypes),
    zone: z.object({
      id: z.string(),
      name: z.string(),
      level: z.object({ id: z.string(), name: z.string() }),
    }),
  })
  .openapi('SpaceAssigned')

export const SpaceAssignmentSchema = z
  .object({ session: SessionSchema, space_assigned: SpaceAssignedSchema })
  .openapi('SpaceAssignment')

export const EntrySchema = z
  .object({
    session: SessionSchema,
    ticket_number: z.string(),
    space_assigned: SpaceAssignedSchema.nullable().openapi({
      description: 'null when the lot was full and the policy admits vehicles without a space.',
    }),
  })
  .openapi('Entry')

export const ExitSchema = z
  .object({ session: SessionSchema, fee: FeeQuoteSchema, amount_paid: z.int() })
  .openapi('Exit')

export const SessionFeeSchema = FeeQuoteSchema.extend({
  session_id: z.string(),
  amount_paid: z.int().openapi({ description: 'Net of refunds.' }),
  amount_due: z.int(),
  exit_deadline: z.iso
    .datetime()
    .nullable()
    .openapi({ description: 'Until when the paid session may leave without paying more.' }),
  computed_at: z.iso.datetime(),
}).openapi('SessionFee')

export const TicketViewSchema = z
  .object({
    ticket_number: z.string(),
    status: z.enum(sessionStatuses),
    lot_id: z.string(),
    space_number: z.string().nullable(),
    entry_time: z.iso.datetime(),
    exit_time: z.iso.datetime().nullable(),
    duration_minutes: z.int(),
  })
  .openapi('TicketView', { description: 'What anyone holding the ticket may see.' })

export const SessionIdParamSchema = z.object({
  id: z.uuid().openapi({ param: { name: 'id', in: 'path' } }),
})

export const TicketParamSchema = z.object({
  ticket: ticketNumber.openapi({ param: { name: 'ticket', in: 'path' } }),
})

export const SessionListQuerySchema = PageQuerySchema.extend({
  status: z.enum(sessionStatuses).optional(),
  lot_id: z.uuid().optional(),
})

export const ActiveListQuerySchema = PageQuerySchema.extend({ lot_id: z.uuid().optional() })
