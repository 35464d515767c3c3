import { randomBytes } from 'node:crypto'
import type { SpaceType } from '../../src/modules/occupancy/occupancy.contract.ts'
import type { Account } from './accounts.ts'
import { bearer, json, jsonBody } from './http.ts'
import type { TestPlatform } from './platform.ts'

export type TestLot = { lotId: string; levelId: string; zoneId: string; timeZone: string; currency: string }

/**
 * A lot with one level and one zone holding `spaces` (type -> how many), made through the API by
 * an admin, so that every capability sees it as a user would.
 */
export async function createLot(
  platform: TestPlatform,
  admin: Account,
  options: { spaces?: Partial<Record<SpaceType, number>>; timeZone?: string; currency?: string } = {},
): Promise<TestLot> {
  const post = async (path: string, body: unknown) => {
    const res = await platform.request(path, { method: 'POST', ...jsonBody(body, bearer(admin.token)) })
    if (res.status !== 201) throw new Error(`POST ${path}: ${res.status} ${await res.text()}`)
    return await json(res)
  }
  const timeZone = options.timeZone ?? 'Europe/Berlin'
  const currency = options.currency ?? 'EUR'
  const lot = await post('/api/v1/lots', {
    name: `Lot ${randomBytes(3).toString('hex')}`,
    address: '1 Test Street',
    latitude: 52.5,
    longitude: 13.4,
    time_zone: timeZone,
    currency,
  })
  const level = await post('/api/v1/levels', { lot_id: lot.id, name: 'Level 1', floor: 1 })
  const zone = await post('/api/v1/zones', { level_id: level.id, name: 'Zone A' })
  let from = 1
  for (const [type, count] of Object.entries(options.spaces ?? { STANDARD: 3 })) {
    if (!count) continue
    await post('/api/v1/spaces/bulk', {
      zone_id: zone.id,
      prefix: `${type.slice(0, 1)}-`,
      from,
      to: from + count - 1,
      pad: 3,
      type,
    })
    from += count
  }
  return { lotId: lot.id, levelId: level.id, zoneId: zone.id, timeZone, currency }
}

/** An hourly rate of `amount` minor units per started hour, no grace, made by an admin; throws unless it is a 201. */
export async function createHourlyRate(
  platform: TestPlatform,
  admin: Account,
  lotId: string,
  amount: number,
) {
  const res = await platform.request('/api/v1/rates', {
    method: 'POST',
    ...jsonBody(
      {
        name: 'Hourly',
        lot_id: lotId,
        rate_type: 'hourly',
        amount,
        grace_period_minutes: 0,
        effective_from: '2024-01-01T00:00:00Z',
      },
      bearer(admin.token),
    ),
  })
  if (res.status !== 201) throw new Error(`rate: ${res.status} ${await res.text()}`)
  return await json(res)
}

/** A plate no other test uses. */
export const uniquePlate = () => `P${randomBytes(4).toString('hex').toUpperCase()}`

/** An entry through the API; throws unless it is a 201. */
export async function enterVehicle(
  platform: TestPlatform,
  operator: Account,
  body: { license_plate: string; lot_id: string } & Record<string, unknown>,
) {
  const res = await platform.request('/api/v1/sessions/entry', {
    method: 'POST',
    ...jsonBody(body, bearer(operator.token)),
  })
  if (res.status !== 201) throw new Error(`entry: ${res.status} ${await res.text()}`)
  return await json(res)
}
