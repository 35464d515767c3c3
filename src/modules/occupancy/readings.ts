import { z } from 'zod'
import { deviceIdPattern } from './occupancy.contract.ts'

/**
 * The JSON a sensor sends (topic scheme in occupancy.contract.ts). Extra fields are ignored, so
 * that newer firmware can add some without being refused.
 */
export const ReadingMessageSchema = z.object({
  device_id: z.string().regex(deviceIdPattern, 'a device id: letters, digits and _ . : -, at most 64'),
  boot_id: z.string().regex(/^[\w.:-]{1,64}$/, 'a boot id: letters, digits, and _ . : -, at most 64'),
  seq: z.int().min(0).max(Number.MAX_SAFE_INTEGER),
  measured_at: z.union([z.iso.datetime({ offset: true }), z.int().min(0)]),
  occupied: z.boolean().optional(),
  battery: z.number().min(0).max(100).optional(),
  signal: z.number().min(-150).max(0).optional(),
  /** A charger's cumulative energy meter, in watt-hours (EV charging bills from its differences). */
  energy_wh: z.number().min(0).max(1e12).optional(),
})
export type ReadingMessage = z.infer<typeof ReadingMessageSchema>

/** Readings measured further ahead than this of the platform's clock are refused. */
export const MAX_CLOCK_SKEW_MS = 5 * 60_000

const topicPattern = /^parking\/sensors\/([^/]+)\/(state|heartbeat)$/

/**
 * One batch in the Redis step's argument layout, 8 strings per reading:
 * device, boot, seq, measured-at ms, occupied ('1', '0', or '' for a heartbeat), battery, signal,
 * energy meter (Wh; '' when not sent).
 */
export type NormalisedBatch = {
  args: string[]
  /** For each reading in `args`, its index in the batch. */
  indexes: number[]
  rejects: { index: number; reason: string }[]
}

type Source = { topic?: string | undefined; onlyDevice?: string | null | undefined }

/**
 * Validates and normalises one message; a string is the reason it is refused. Pure: runs in the
 * worker pool, and inline in the offload benchmark.
 */
export function normaliseReading(body: unknown, now: number, source: Source): string[] | string {
  let kind: 'state' | 'heartbeat' | undefined
  let topicDevice: string | undefined
  if (source.topic !== undefined) {
    const match = topicPattern.exec(source.topic)
    if (!match) return `topic ${source.topic} is not parking/sensors/{device}/state or /heartbeat`
    topicDevice = match[1]
    kind = match[2] as 'state' | 'heartbeat'
  }
  const parsed = ReadingMessageSchema.safeParse(body)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    return `${issue?.path.join('.') || 'message'}: ${issue?.message ?? 'invalid'}`
  }
  const m = parsed.data
  if (topicDevice !== undefined && m.device_id !== topicDevice)
    return `device_id ${m.device_id} does not match the topic's device ${topicDevice}`
  if (source.onlyDevice && m.device_id !== source.onlyDevice)
    return `device_id: a device sends only its own readings (${source.onlyDevice})`
  if (kind === 'state' && m.occupied === undefined) return 'occupied: required in a state message'
  if (kind === 'heartbeat' && m.occupied !== undefined) return 'occupied: not allowed in a heartbeat'
  const at = typeof m.measured_at === 'number' ? m.measured_at : Date.parse(m.measured_at)
  if (at > now + MAX_CLOCK_SKEW_MS) return 'measured_at: more than 5 minutes in the future'
  return [
    m.device_id,
    m.boot_id,
    String(m.seq),
    String(at),
    m.occupied === undefined ? '' : m.occupied ? '1' : '0',
    m.battery === undefined ? '' : String(m.battery),
    m.signal === undefined ? '' : String(m.signal),
    m.energy_wh === undefined ? '' : String(m.energy_wh),
  ]
}

/** Raw MQTT payloads, packed in one buffer so that a batch crosses to a worker in one copy. */
export type RawBatch = { now: number; topics: string[]; payloads: Uint8Array; ends: number[] }
/** Already parsed JSON objects (the HTTP ingest endpoint). */
export type ObjectBatch = { now: number; objects: readonly unknown[]; onlyDevice: string | null }

const decoder = new TextDecoder('utf-8', { fatal: true })

export function normaliseBatch(batch: RawBatch | ObjectBatch): NormalisedBatch {
  const out: NormalisedBatch = { args: [], indexes: [], rejects: [] }
  const take = (index: number, result: string[] | string) => {
    if (typeof result === 'string') out.rejects.push({ index, reason: result })
    else {
      out.indexes.push(index)
      for (const value of result) out.args.push(value)
    }
  }
  if ('objects' in batch) {
    batch.objects.forEach((body, index) => {
      take(index, normaliseReading(body, batch.now, { onlyDevice: batch.onlyDevice }))
    })
    return out
  }
  let start = 0
  for (let index = 0; index < batch.topics.length; index++) {
    const end = batch.ends[index] ?? start
    const bytes = batch.payloads.subarray(start, end)
    start = end
    let body: unknown
    try {
      body = JSON.parse(decoder.decode(bytes))
    } catch {
      take(index, 'payload: not UTF-8 JSON')
      continue
    }
    take(index, normaliseReading(body, batch.now, { topic: batch.topics[index] }))
  }
  return out
}

/** Packs MQTT payloads for a worker (see RawBatch). */
export function packRaw(now: number, messages: readonly { topic: string; payload: Uint8Array }[]): RawBatch {
  let size = 0
  for (const m of messages) size += m.payload.byteLength
  const payloads = new Uint8Array(size)
  const ends: number[] = []
  const topics: string[] = []
  let offset = 0
  for (const m of messages) {
    payloads.set(m.payload, offset)
    offset += m.payload.byteLength
    ends.push(offset)
    topics.push(m.topic)
  }
  return { now, topics, payloads, ends }
}
