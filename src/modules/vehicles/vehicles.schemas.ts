import { z } from '@hono/zod-openapi'
import { pageSchema } from '../../http/openapi.ts'
import { sizeCategories } from './vehicles.model.ts'

// Every rule is a pattern or a bound, so that the OpenAPI document states exactly what is accepted
// (the API is fuzzed from it): nothing the schema allows is refused later for its shape.

/**
 * 2 to 10 letters and digits, with spaces, dashes and dots anywhere: normalised (uppercase, those
 * removed) it always matches ^[A-Z0-9]{2,10}$.
 */
export const licensePlate = z
  .string()
  .max(32)
  .regex(
    /^[ .-]*[A-Za-z0-9](?:[ .-]*[A-Za-z0-9]){1,9}[ .-]*$/,
    'a license plate: 2 to 10 letters and digits, optionally separated by spaces, dashes or dots',
  )
  .openapi({ example: 'AB-123 C' })

const vehicleTypeCode = z
  .string()
  .regex(/^[a-z][a-z0-9-]{1,31}$/, 'a vehicle type code: lowercase letters, digits and dashes')
  .openapi({ example: 'standard' })

const label = z.string().max(100)

export const VehicleTypeSchema = z
  .object({
    id: z.string().openapi({ example: 'standard', description: 'The type code.' }),
    name: z.string().openapi({ example: 'Standard car' }),
    size_category: z.enum(sizeCategories),
    description: z.string().nullable(),
    created_at: z.iso.datetime(),
  })
  .openapi('VehicleType')

export const VehicleTypeCreateSchema = z
  .strictObject({
    id: vehicleTypeCode,
    name: z.string().min(1).max(100).openapi({ example: 'Standard car' }),
    size_category: z.enum(sizeCategories),
    description: z.string().max(500).optional(),
  })
  .openapi('VehicleTypeCreate')

export const VehicleTypeListSchema = pageSchema(VehicleTypeSchema, 'VehicleTypeList')

export const VehicleSchema = z
  .object({
    id: z.string().openapi({ example: '0193a5c2-7f1e-7b3c-9a41-2f0c8e1d4b6a' }),
    license_plate: z.string().openapi({ example: 'AB-123 C', description: 'As entered, trimmed.' }),
    plate_normalized: z.string().openapi({
      example: 'AB123C',
      description: 'Uppercase, without spaces, dashes and dots; unique platform-wide.',
    }),
    vehicle_type_id: z.string().openapi({ example: 'standard' }),
    make: z.string().nullable(),
    model: z.string().nullable(),
    color: z.string().nullable(),
    is_ev: z.boolean(),
    owner_id: z.string(),
    created_at: z.iso.datetime(),
    updated_at: z.iso.datetime(),
  })
  .openapi('Vehicle')

export const VehicleInputSchema = z
  .strictObject({
    license_plate: licensePlate,
    vehicle_type_id: vehicleTypeCode,
    make: label.optional().openapi({ example: 'Toyota' }),
    model: label.optional().openapi({ example: 'Camry' }),
    color: label.optional().openapi({ example: 'Silver' }),
    is_ev: z.boolean().default(false),
  })
  .openapi('VehicleInput', {
    description: 'On update, a full replacement: a field left out is cleared (is_ev becomes false).',
  })

export const VehicleListSchema = pageSchema(VehicleSchema, 'VehicleList')

export const VehicleIdParamSchema = z.object({
  id: z.uuid().openapi({ param: { name: 'id', in: 'path' } }),
})

export const PlateParamSchema = z.object({
  plate: licensePlate.openapi({ param: { name: 'plate', in: 'path' } }),
})
