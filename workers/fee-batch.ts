// The worker pool's fee task: price a batch of stays. CPU only, no I/O.
import type { FeeQuote } from '../src/modules/sessions/operations.contract.ts'
import { type FeeTask, quoteFee } from './fee.ts'

export default function feeBatch(tasks: readonly FeeTask[]): FeeQuote[] {
  return tasks.map(quoteFee)
}
