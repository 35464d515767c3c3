import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'

// The demo's devices file: broker credentials of the sensors `npm run demo` made, read by
// `npm run simulate` and by the k6 ingest script. Secrets, so mode 600 and written atomically.

export type DemoDevice = {
  device_id: string
  username: string
  password: string
  space_id: string
  lot_id: string
}

/** DATA_DIR/demo/devices.json, DATA_DIR as the platform resolves it (default .data, from the cwd). */
export function defaultDevicesFile(env: Record<string, string | undefined> = process.env): string {
  return resolve(join(env.DATA_DIR || '.data', 'demo', 'devices.json'))
}

const isText = (value: unknown): value is string => typeof value === 'string' && value.length > 0

/** The entries of a devices file; undefined when there is none. Throws on a file of another shape. */
export async function readDevicesFile(path: string): Promise<DemoDevice[] | undefined> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    throw new Error(`${path} is not JSON`)
  }
  if (!Array.isArray(parsed)) throw new Error(`${path} is not a JSON array of devices`)
  return parsed.map((entry: Record<string, unknown>, index) => {
    if (!isText(entry?.device_id) || !isText(entry.username) || !isText(entry.password))
      throw new Error(`${path}: entry ${index} lacks device_id, username or password`)
    return {
      device_id: entry.device_id,
      username: entry.username,
      password: entry.password,
      space_id: isText(entry.space_id) ? entry.space_id : '',
      lot_id: isText(entry.lot_id) ? entry.lot_id : '',
    }
  })
}

export async function writeDevicesFile(path: string, devices: readonly DemoDevice[]): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 })
  const temporary = `${path}.${process.pid}.tmp`
  await writeFile(temporary, `${JSON.stringify(devices, null, 2)}\n`, { mode: 0o600 })
  await chmod(temporary, 0o600)
  await rename(temporary, path)
}
