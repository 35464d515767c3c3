import { chmod } from 'node:fs/promises'
import { relative } from 'node:path'
import { parseArgs } from 'node:util'
import { loadDotEnv } from '../src/config.ts'
import type { SpaceType } from '../src/modules/occupancy/occupancy.contract.ts'
import { type DemoDevice, defaultDevicesFile, readDevicesFile, writeDevicesFile } from './demo-devices.ts'

// `npm run demo`: a demo facility made through the public API, as an admin would make it, and the
// credentials of its sensors for `npm run simulate`. Everything is looked up before it is made, so
// a second run changes nothing, and a run cut short is finished by the next one.

const usage = `Usage: npm run demo -- [options]

Creates, when absent, the lot "Demo Garage" with its levels, zones, spaces and one sensor per
space, through the API of a running platform, as the admin (ADMIN_EMAIL and ADMIN_PASSWORD, from
the environment or .env). Writes the sensors' broker credentials to DATA_DIR/demo/devices.json.

Options:
  --url URL       the platform (default: PUBLIC_URL, else http://HOST:PORT, else http://127.0.0.1:3000)
  --lots N        lots to make: "Demo Garage", "Demo Garage 2", ... (default 1, at most 50)
  --levels N      levels per lot (default 3, at most 20)
  --zones N       zones per level (default 2, at most 26)
  --spaces N      spaces per zone (default 50, at most 5000)
  --out FILE      the devices file (default DATA_DIR/demo/devices.json)
  --rotate        issue new credentials to every demo sensor (when the file's are out of date)
  -h, --help      this text`

class DemoError extends Error {}

function fail(message: string): never {
  throw new DemoError(message)
}

function count(name: string, raw: string | undefined, fallback: number, max: number): number {
  if (raw === undefined) return fallback
  const value = Number(raw)
  if (!Number.isInteger(value) || value < 1 || value > max) fail(`--${name}: a whole number from 1 to ${max}`)
  return value
}

type Options = {
  url: string
  lots: number
  levels: number
  zones: number
  spaces: number
  out: string
  rotate: boolean
  email: string
  password: string
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      url: { type: 'string' },
      lots: { type: 'string' },
      levels: { type: 'string' },
      zones: { type: 'string' },
      spaces: { type: 'string' },
      out: { type: 'string' },
      rotate: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  })
  if (values.help) {
    console.log(usage)
    process.exit(0)
  }
  loadDotEnv()
  const env = process.env
  const host = !env.HOST || env.HOST === '0.0.0.0' || env.HOST === '::' ? '127.0.0.1' : env.HOST
  const url = (values.url ?? env.PUBLIC_URL ?? `http://${host}:${env.PORT || 3000}`).replace(/\/+$/, '')
  if (!URL.canParse(url) || !/^https?:$/.test(new URL(url).protocol))
    fail(`--url: an http(s) URL, not ${url}`)
  const sized = {
    lots: count('lots', values.lots, 1, 50),
    levels: count('levels', values.levels, 3, 20),
    zones: count('zones', values.zones, 2, 26),
    spaces: count('spaces', values.spaces, 50, 5000),
  }
  if (sized.lots * sized.levels * sized.zones * sized.spaces > 100_000)
    fail('at most 100,000 spaces in all (lots x levels x zones x spaces)')
  if (!env.ADMIN_EMAIL || !env.ADMIN_PASSWORD)
    fail(
      [
        'ADMIN_EMAIL and ADMIN_PASSWORD are not set.',
        'The demo signs in as the admin: set both (in the environment or in .env) to the ones the first',
        'admin was created with, e.g. ADMIN_EMAIL=admin@example.com ADMIN_PASSWORD="a long passphrase"',
        '(npm start creates that admin from the same two variables when there is no admin yet).',
      ].join('\n'),
    )
  return {
    url,
    ...sized,
    out: values.out ?? defaultDevicesFile(env),
    rotate: values.rotate === true,
    email: env.ADMIN_EMAIL,
    password: env.ADMIN_PASSWORD,
  }
}

// biome-ignore lint/suspicious/noExplicitAny: API answers are read field by field
type Json = any

type Problem = { detail?: string; title?: string; errors?: { field?: string; reason?: string }[] }

/** The API as an admin sees it: JSON in and out, a fresh sign-in when the access token expires. */
function apiClient(base: string, email: string, password: string) {
  let token: string | undefined

  async function send(method: string, path: string, body?: unknown): Promise<Response> {
    try {
      return await fetch(`${base}${path}`, {
        method,
        headers: {
          accept: 'application/json',
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(30_000),
      })
    } catch (error) {
      const { cause } = error as { cause?: { code?: string; message?: string } }
      const reason = cause?.code ?? cause?.message ?? (error as Error).message
      fail(`cannot reach the platform at ${base} (${reason}): start it with npm start, or pass --url`)
    }
  }

  async function explain(method: string, path: string, res: Response): Promise<never> {
    const problem = (await res.json().catch(() => ({}))) as Problem
    const fields = (problem.errors ?? []).map((e) => `${e.field}: ${e.reason}`).join('; ')
    fail(
      `${method} ${path} answered ${res.status}: ${problem.detail ?? problem.title ?? res.statusText}${fields ? ` (${fields})` : ''}`,
    )
  }

  async function signIn(): Promise<void> {
    token = undefined
    const res = await send('POST', '/api/v1/auth/login', { email, password })
    if (res.status === 401)
      fail(
        `sign-in as ${email} was refused: ADMIN_EMAIL and ADMIN_PASSWORD must be those of an admin of the platform at ${base}`,
      )
    if (!res.ok) await explain('POST', '/api/v1/auth/login', res)
    const session = (await res.json()) as Json
    if (session.user?.role !== 'admin') fail(`${email} is not an admin (role ${session.user?.role})`)
    token = session.access_token
  }

  /** The status and JSON body; statuses outside `expected` end the demo with the problem. */
  async function call(method: string, path: string, body: unknown, expected: number[]) {
    let res = await send(method, path, body)
    if (res.status === 401) {
      await signIn()
      res = await send(method, path, body)
    }
    if (!expected.includes(res.status)) await explain(method, path, res)
    return { status: res.status, body: (res.status === 204 ? null : await res.json()) as Json }
  }

  return {
    signIn,
    call,
    get: async (path: string) => (await call('GET', path, undefined, [200])).body,
    post: async (path: string, body: unknown) => (await call('POST', path, body, [200, 201])).body,
    /** Every item of a list, page after page. */
    async all(path: string): Promise<Json[]> {
      const items: Json[] = []
      let cursor: string | null = null
      do {
        const sep = path.includes('?') ? '&' : '?'
        const page: Json = await this.get(
          `${path}${sep}limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
        )
        items.push(...page.data)
        cursor = page.next_cursor
      } while (cursor)
      return items
    },
  }
}

type Api = ReturnType<typeof apiClient>

/** Runs `work` on every item, `width` at a time. */
async function inParallel<T>(items: readonly T[], width: number, work: (item: T) => Promise<void>) {
  let next = 0
  const lane = async () => {
    while (next < items.length) {
      const item = items[next++] as T
      await work(item)
    }
  }
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, lane))
}

/** A zone's spaces by type, in runs of numbers: accessible spaces near the lifts, bikes at the end. */
export function spacePlan(spaces: number): { type: SpaceType; count: number; flags: string[] }[] {
  const share = (fraction: number, atLeastOne: boolean) =>
    Math.max(atLeastOne && spaces >= 10 ? 1 : 0, Math.round(spaces * fraction))
  const handicapped = share(0.04, true)
  const ev = share(0.1, true)
  const compact = share(0.16, false)
  const motorcycle = share(0.06, false)
  const standard = Math.max(0, spaces - handicapped - ev - compact - motorcycle)
  return [
    { type: 'HANDICAPPED' as const, count: handicapped, flags: ['wide'] },
    { type: 'EV' as const, count: ev, flags: ['ev_charger'] },
    { type: 'STANDARD' as const, count: standard, flags: [] },
    { type: 'COMPACT' as const, count: compact, flags: [] },
    { type: 'MOTORCYCLE' as const, count: motorcycle, flags: [] },
  ].filter((run) => run.count > 0)
}

const lotName = (index: number) => (index === 1 ? 'Demo Garage' : `Demo Garage ${index}`)
const zoneLetter = (index: number) => String.fromCharCode(65 + index)

/** Unique per lot (a lot made again after a delete gets new ones), and the same on every run. */
export const demoDeviceId = (lotId: string, spaceNumber: string) =>
  `demo-${lotId.replaceAll('-', '').slice(-8)}-${spaceNumber}`

const openingHours = [
  ...['mon', 'tue', 'wed', 'thu', 'fri', 'sat'].map((day) => ({ day, opens: '06:00', closes: '24:00' })),
  { day: 'sun', opens: '08:00', closes: '22:00' },
]

type Tally = { made: number; existing: number }
type LotReport = {
  lot: Json
  created: boolean
  levels: Tally
  zones: Tally
  spaces: Tally
  devices: Tally & { rebound: number; rotated: number; skipped: string[] }
  entries: DemoDevice[]
}

const tally = (): Tally => ({ made: 0, existing: 0 })

async function ensureLot(
  api: Api,
  index: number,
  size: Options,
  known: Map<string, DemoDevice>,
): Promise<LotReport> {
  const name = lotName(index)
  const found = (await api.all(`/api/v1/lots?name_prefix=${encodeURIComponent(name)}`)).find(
    (lot) => lot.name === name,
  )
  const lot =
    found ??
    (await api.post('/api/v1/lots', {
      name,
      address: `Friedrichstraße ${100 + index}, 10117 Berlin`,
      latitude: Number((52.5206 + index * 0.002).toFixed(4)),
      longitude: Number((13.3869 + index * 0.003).toFixed(4)),
      time_zone: 'Europe/Berlin',
      currency: 'EUR',
      opening_hours: openingHours,
    }))
  const report: LotReport = {
    lot,
    created: !found,
    levels: tally(),
    zones: tally(),
    spaces: tally(),
    devices: { ...tally(), rebound: 0, rotated: 0, skipped: [] },
    entries: [],
  }

  const spacesOfLot = () => api.all(`/api/v1/spaces?lot_id=${lot.id}`)
  let spaces = found ? await spacesOfLot() : []
  const numbers = new Set(spaces.map((space) => space.number as string))
  const levels = new Map((await api.all(`/api/v1/levels?lot_id=${lot.id}`)).map((l) => [l.name, l]))
  for (let floor = 0; floor < size.levels; floor++) {
    let level = levels.get(`Level ${floor}`)
    if (level) report.levels.existing++
    else {
      level = await api.post('/api/v1/levels', { lot_id: lot.id, name: `Level ${floor}`, floor })
      report.levels.made++
    }
    const zones = new Map((await api.all(`/api/v1/zones?level_id=${level.id}`)).map((z) => [z.name, z]))
    for (let z = 0; z < size.zones; z++) {
      const zoneName = `Zone ${zoneLetter(z)}`
      let zone = zones.get(zoneName)
      if (zone) report.zones.existing++
      else {
        zone = await api.post('/api/v1/zones', {
          level_id: level.id,
          name: zoneName,
          description: `Demo: level ${floor}, zone ${zoneLetter(z)}`,
        })
        report.zones.made++
      }
      // The bulk call skips numbers that exist, so a repeat is harmless; it is left out when every
      // number exists already. 2,000 numbers per call.
      const prefix = `L${floor}${zoneLetter(z)}-`
      const pad = Math.max(3, String(size.spaces).length)
      let from = 1
      for (const run of spacePlan(size.spaces)) {
        for (let start = from; start < from + run.count; start += 2000) {
          const to = Math.min(from + run.count - 1, start + 1999)
          let missing = false
          for (let n = start; n <= to && !missing; n++)
            missing = !numbers.has(`${prefix}${String(n).padStart(pad, '0')}`)
          if (!missing) {
            report.spaces.existing += to - start + 1
            continue
          }
          const result = await api.post('/api/v1/spaces/bulk', {
            zone_id: zone.id,
            prefix,
            from: start,
            to,
            pad,
            type: run.type,
            flags: run.flags,
          })
          report.spaces.made += result.created
          report.spaces.existing += result.skipped.length
        }
        from += run.count
      }
    }
  }

  if (report.spaces.made > 0) spaces = await spacesOfLot()
  await ensureDevices(api, report, spaces, known)
  return report
}

/** One sensor per space of the lot, and credentials for each in the devices file. */
async function ensureDevices(api: Api, report: LotReport, lotSpaces: Json[], known: Map<string, DemoDevice>) {
  const lotId: string = report.lot.id
  const spaces = [...lotSpaces].sort((a, b) => (a.number < b.number ? -1 : a.number > b.number ? 1 : 0))
  const prefix = demoDeviceId(lotId, '')
  const devices = new Map(
    (await api.all('/api/v1/devices?kind=sensor'))
      .filter((d) => d.id.startsWith(prefix))
      .map((d) => [d.id, d]),
  )
  const entries = new Map<string, DemoDevice>()
  const entryOf = (device: Json, spaceId: string): DemoDevice => ({
    device_id: device.id,
    username: device.credentials.username,
    password: device.credentials.password,
    space_id: spaceId,
    lot_id: lotId,
  })
  const labels = { model: 'Demo PS-1', firmware: '1.0.0' }

  await inParallel(spaces, 8, async (space) => {
    const id = demoDeviceId(lotId, space.number)
    let device = devices.get(id)
    if (!device) {
      const created = await api.call(
        'POST',
        '/api/v1/devices',
        { id, kind: 'sensor', space_id: space.id, ...labels },
        [201, 409],
      )
      if (created.status === 201) {
        report.devices.made++
        entries.set(id, entryOf(created.body, space.id))
        return
      }
      // 409: the id exists (another run at the same time), or the space has a device of its own.
      const existing = await api.call(
        'GET',
        `/api/v1/devices/${encodeURIComponent(id)}`,
        undefined,
        [200, 404],
      )
      if (existing.status === 404) {
        report.devices.skipped.push(space.number)
        return
      }
      device = existing.body
    }
    report.devices.existing++
    if (device.space_id !== space.id) {
      await api.call(
        'PUT',
        `/api/v1/devices/${encodeURIComponent(id)}`,
        { space_id: space.id, ...labels },
        [200],
      )
      report.devices.rebound++
    }
    const entry = known.get(id)
    if (entry && entry.space_id === space.id && entry.lot_id === lotId) {
      entries.set(id, entry)
      return
    }
    // The secret was shown once, at creation, and is not in the file: issue a new one.
    const rotated = await api.post(`/api/v1/devices/${encodeURIComponent(id)}/credentials`, undefined)
    report.devices.rotated++
    entries.set(id, entryOf(rotated, space.id))
  })
  report.entries = spaces.flatMap((space) => {
    const entry = entries.get(demoDeviceId(lotId, space.number))
    return entry ? [entry] : []
  })
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`
const tallied = (t: Tally, word: string) =>
  `${plural(t.made + t.existing, word)}${t.made > 0 ? ` (${t.made} new)` : ''}`

async function main() {
  const opts = options()
  const api = apiClient(opts.url, opts.email, opts.password)
  await api.signIn()
  const previous = (await readDevicesFile(opts.out).catch((error: Error) => fail(error.message))) ?? []
  const known = new Map(opts.rotate ? [] : previous.map((entry) => [entry.device_id, entry]))

  console.log(`Demo facility on ${opts.url}, as ${opts.email}`)
  const reports: LotReport[] = []
  for (let index = 1; index <= opts.lots; index++) {
    const report = await ensureLot(api, index, opts, known)
    reports.push(report)
    const { lot, devices } = report
    console.log(
      `  ${lot.name} (lot ${lot.id})${report.created ? ' created' : ''}: ${tallied(report.levels, 'level')}, ${tallied(report.zones, 'zone')}, ${tallied(report.spaces, 'space')}, ${tallied(devices, 'sensor')}`,
    )
    if (devices.rebound > 0) console.log(`    ${plural(devices.rebound, 'sensor')} bound again to its space`)
    if (devices.rotated > 0)
      console.log(
        `    ${plural(devices.rotated, 'sensor')} given new credentials (${opts.rotate ? '--rotate' : 'they were not in the file'})`,
      )
    if (devices.skipped.length > 0)
      console.log(
        `    ${plural(devices.skipped.length, 'space')} left without a demo sensor: another device watches ${devices.skipped.slice(0, 5).join(', ')}${devices.skipped.length > 5 ? ', ...' : ''}`,
      )
  }

  // The file keeps other lots' entries while those lots exist (say, after a run with more --lots).
  const ours = new Set(reports.map((r) => r.lot.id as string))
  const others: DemoDevice[] = []
  const lotExists = new Map<string, boolean>()
  for (const entry of previous) {
    if (ours.has(entry.lot_id)) continue
    if (!lotExists.has(entry.lot_id)) {
      const res = entry.lot_id
        ? await api.call('GET', `/api/v1/lots/${entry.lot_id}`, undefined, [200, 400, 404])
        : { status: 404 }
      lotExists.set(entry.lot_id, res.status === 200)
    }
    if (lotExists.get(entry.lot_id)) others.push(entry)
  }
  const entries = [...reports.flatMap((r) => r.entries), ...others]
  const fileChanged = JSON.stringify(entries) !== JSON.stringify(previous)
  if (fileChanged) await writeDevicesFile(opts.out, entries)
  else await chmod(opts.out, 0o600).catch(() => {})

  const shownFile = relative(process.cwd(), opts.out).startsWith('..')
    ? opts.out
    : relative(process.cwd(), opts.out)
  const changed = reports.some(
    (r) =>
      Number(r.created) +
        r.levels.made +
        r.zones.made +
        r.spaces.made +
        r.devices.made +
        r.devices.rebound +
        r.devices.rotated >
      0,
  )
  if (!changed && !fileChanged) {
    console.log(
      `Nothing to do: it was all there already; credentials of ${plural(entries.length, 'sensor')} in ${shownFile}`,
    )
  } else {
    console.log(
      `Credentials of ${plural(entries.length, 'sensor')} ${fileChanged ? 'written to' : 'in'} ${shownFile} (mode 600)`,
    )
  }

  const lotId = reports[0]?.lot.id
  console.log(
    [
      '',
      'Try next:',
      `  curl -s ${opts.url}/api/v1/lots/${lotId}/availability`,
      `  curl -sN ${opts.url}/api/v1/lots/${lotId}/feed      # live changes (Server-Sent Events)`,
      '  npm run simulate                                     # the sensors publish over MQTT for 60 s',
      '  npm run simulate -- --rate 200 --speed 60 --flap 0.1 --malformed 0.01',
    ].join('\n'),
  )
}

try {
  await main()
} catch (error) {
  if (!(error instanceof DemoError)) throw error
  console.error(`demo: ${error.message}`)
  process.exitCode = 1
}
