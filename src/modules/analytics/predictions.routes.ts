import { access, defineRoute } from '../../http/access.ts'
import { jsonResponse, problemResponses } from '../../http/openapi.ts'
import { PredictionQuerySchema, PredictionSchema } from './predictions.schemas.ts'

export const getPredictions = defineRoute(access.roles('operator', 'admin'), {
  method: 'get',
  path: '/api/v1/analytics/predictions',
  operationId: 'getOccupancyPredictions',
  summary: 'Occupancy forecast of a lot or zone: the next hour by 15 minutes, and tomorrow by the hour',
  description:
    "A weekday x time-of-day profile learnt from the 15-minute rollups, blended with today's gap to it, which decays over the horizon. The answer names the model and how many days of history it used; see src/modules/analytics/README.md for the backtest against naive baselines.",
  tags: ['Reports'],
  request: { query: PredictionQuerySchema },
  responses: {
    200: jsonResponse(PredictionSchema, 'The forecast'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND', 'DEPENDENCY_UNAVAILABLE'),
  },
})
