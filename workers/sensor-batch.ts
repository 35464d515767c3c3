// The worker pool's sensor task: parse, validate and normalise one micro-batch. CPU only, no I/O.
import {
  type NormalisedBatch,
  normaliseBatch,
  type ObjectBatch,
  type RawBatch,
} from '../src/modules/occupancy/readings.ts'

export default function sensorBatch(batch: RawBatch | ObjectBatch): NormalisedBatch {
  return normaliseBatch(batch)
}
