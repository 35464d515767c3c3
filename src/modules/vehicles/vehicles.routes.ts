import { access, defineRoute } from '../../http/access.ts'
import { jsonBody, jsonResponse, PageQuerySchema, problemResponses } from '../../http/openapi.ts'
import {
  PlateParamSchema,
  VehicleIdParamSchema,
  VehicleInputSchema,
  VehicleListSchema,
  VehicleSchema,
  VehicleTypeCreateSchema,
  VehicleTypeListSchema,
  VehicleTypeSchema,
} from './vehicles.schemas.ts'

const tags = ['Vehicles']
const drivers = access.roles('customer', 'operator', 'admin')

export const listVehicleTypes = defineRoute(access.anyAccount, {
  method: 'get',
  path: '/api/v1/vehicle-types',
  operationId: 'listVehicleTypes',
  summary: 'List vehicle types by code',
  tags,
  request: { query: PageQuerySchema },
  responses: {
    200: jsonResponse(VehicleTypeListSchema, 'A page of vehicle types'),
    ...problemResponses('VALIDATION_FAILED'),
  },
})

export const createVehicleType = defineRoute(access.roles('admin'), {
  method: 'post',
  path: '/api/v1/vehicle-types',
  operationId: 'createVehicleType',
  summary: 'Create a vehicle type',
  description: 'The `id` is a short code chosen by the admin; it cannot be reused.',
  tags,
  request: { body: jsonBody(VehicleTypeCreateSchema) },
  responses: {
    201: jsonResponse(VehicleTypeSchema, 'The vehicle type'),
    ...problemResponses('VALIDATION_FAILED', 'CONFLICT', 'UNSUPPORTED_MEDIA_TYPE', 'PAYLOAD_TOO_LARGE'),
  },
})

export const listVehicles = defineRoute(drivers, {
  method: 'get',
  path: '/api/v1/vehicles',
  operationId: 'listVehicles',
  summary: "List the caller's vehicles, oldest first",
  tags,
  request: { query: PageQuerySchema },
  responses: {
    200: jsonResponse(VehicleListSchema, 'A page of vehicles'),
    ...problemResponses('VALIDATION_FAILED'),
  },
})

export const createVehicle = defineRoute(drivers, {
  method: 'post',
  path: '/api/v1/vehicles',
  operationId: 'createVehicle',
  summary: 'Register a vehicle for the caller',
  description:
    'A license plate is registered once platform-wide, whatever its spelling ("ab-12 c" is "AB12C"): another registration of it is a 409.',
  tags,
  request: { body: jsonBody(VehicleInputSchema) },
  responses: {
    201: jsonResponse(VehicleSchema, 'The vehicle'),
    ...problemResponses(
      'VALIDATION_FAILED',
      'NOT_FOUND',
      'CONFLICT',
      'UNSUPPORTED_MEDIA_TYPE',
      'PAYLOAD_TOO_LARGE',
    ),
  },
})

// Registered before the `{id}` routes; the two differ in segment count and never overlap anyway.
export const findVehicleByPlate = defineRoute(access.roles('operator', 'admin'), {
  method: 'get',
  path: '/api/v1/vehicles/plate/{plate}',
  operationId: 'findVehicleByPlate',
  summary: 'Find a vehicle by its license plate, in any spelling',
  tags,
  request: { params: PlateParamSchema },
  responses: {
    200: jsonResponse(VehicleSchema, 'The vehicle'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND'),
  },
})

export const getVehicle = defineRoute(drivers, {
  method: 'get',
  path: '/api/v1/vehicles/{id}',
  operationId: 'getVehicle',
  summary: 'One vehicle',
  description: "Customers see their own vehicles only; another's is a 404.",
  tags,
  request: { params: VehicleIdParamSchema },
  responses: {
    200: jsonResponse(VehicleSchema, 'The vehicle'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND'),
  },
})

export const replaceVehicle = defineRoute(drivers, {
  method: 'put',
  path: '/api/v1/vehicles/{id}',
  operationId: 'replaceVehicle',
  summary: "Replace a vehicle's details",
  description: "The owner only; another's vehicle is a 404. A new plate that is taken is a 409.",
  tags,
  request: { params: VehicleIdParamSchema, body: jsonBody(VehicleInputSchema) },
  responses: {
    200: jsonResponse(VehicleSchema, 'The vehicle'),
    ...problemResponses(
      'VALIDATION_FAILED',
      'NOT_FOUND',
      'CONFLICT',
      'UNSUPPORTED_MEDIA_TYPE',
      'PAYLOAD_TOO_LARGE',
    ),
  },
})

export const deleteVehicle = defineRoute(drivers, {
  method: 'delete',
  path: '/api/v1/vehicles/{id}',
  operationId: 'deleteVehicle',
  summary: 'Remove a vehicle; its plate becomes free',
  description: "The owner only; another's vehicle is a 404.",
  tags,
  request: { params: VehicleIdParamSchema },
  responses: {
    204: { description: 'Deleted' },
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND'),
  },
})
