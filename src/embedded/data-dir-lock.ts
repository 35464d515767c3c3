import { readFileSync, rmSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

/**
 * One platform process per data directory: a second `npm start` on the same data would otherwise
 * take over the first one's embedded services. A lock whose process is gone is stale and taken over.
 */
export async function lockDataDir(dir: string): Promise<() => void> {
  await mkdir(dir, { recursive: true })
  const file = join(dir, 'platform.pid')
  for (let attempt = 0; ; attempt++) {
    try {
      // Exclusive create: of two processes starting at once, exactly one gets the file.
      await writeFile(file, String(process.pid), { flag: 'wx' })
      return () => rmSync(file, { force: true })
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0)
        throw lockedError(file, dir, error)
    }
    const pid = Number(readFileSync(file, 'utf8'))
    if (Number.isInteger(pid) && pid > 0 && isAlive(pid)) throw lockedError(file, dir)
    rmSync(file, { force: true })
  }
}

function lockedError(file: string, dir: string, cause?: unknown): Error {
  let owner = 'another process'
  try {
    owner = `another smart-parking process (pid ${Number(readFileSync(file, 'utf8'))})`
  } catch {}
  return new Error(`${owner} is using ${dir}; stop it first, or give this one its own DATA_DIR`, { cause })
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}
