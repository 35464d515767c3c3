import { access, defineRoute } from '../../http/access.ts'
import { jsonResponse, problemResponses } from '../../http/openapi.ts'
import {
  DayRangeQuerySchema,
  OccupancyQuerySchema,
  OccupancyStatsSchema,
  RevenueSchema,
  StaysSchema,
  TrendsQuerySchema,
  TrendsSchema,
} from './analytics.schemas.ts'

const tags = ['Reports']
const staff = access.roles('operator', 'admin')

export const getOccupancyStats = defineRoute(staff, {
  method: 'get',
  path: '/api/v1/analytics/occupancy',
  operationId: 'getOccupancyStats',
  summary: 'Current occupancy per lot, level and zone',
  tags,
  request: { query: OccupancyQuerySchema },
  responses: {
    200: jsonResponse(OccupancyStatsSchema, 'The current statistics'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND'),
  },
})

export const getOccupancyTrends = defineRoute(staff, {
  method: 'get',
  path: '/api/v1/analytics/trends',
  operationId: 'getOccupancyTrends',
  summary: 'Occupancy by hour or by day of a lot or a zone',
  description:
    'From the 15-minute rollups (kept every 5 minutes by the analytics.rollup job, up to a few minutes behind). Give exactly one of lot_id and zone_id; at most 366 days.',
  tags,
  request: { query: TrendsQuerySchema },
  responses: {
    200: jsonResponse(TrendsSchema, 'The trend'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND'),
  },
})

export const getRevenue = defineRoute(staff, {
  method: 'get',
  path: '/api/v1/analytics/revenue',
  operationId: 'getRevenue',
  summary: 'Revenue by local day, payment method and lot',
  description: 'From the daily rollups (the analytics.rollup job); at most 366 days.',
  tags,
  request: { query: DayRangeQuerySchema },
  responses: {
    200: jsonResponse(RevenueSchema, 'The revenue'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND'),
  },
})

export const getStays = defineRoute(staff, {
  method: 'get',
  path: '/api/v1/analytics/stays',
  operationId: 'getStays',
  summary: 'Average stay and turnover by local day and lot',
  description: 'Turnover is sessions closed per space per day. From the daily rollups; at most 366 days.',
  tags,
  request: { query: DayRangeQuerySchema },
  responses: {
    200: jsonResponse(StaysSchema, 'Stays and turnover'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND'),
  },
})
