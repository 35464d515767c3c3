import { existsSync, readFileSync, rmSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

/**
 * One platform process per data directory: a second `npm start` on the same data would otherwise
 * take over the first one's embedded services. A lock whose process is gone is stale and taken over.
 */
export async function lockDataDir(dir: string): Promise<() => void> {
  await mkdir(dir, { recursive: true })
  const file = join(dir, 'platform.pid')
  if (existsSync(file)) {
    const pid = Number(readFileSync(file, 'utf8'))
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
      throw new Error(
        `another smart-parking process (pid ${pid}) is using ${dir}; stop it first, or give this one its own DATA_DIR`,
      )
    }
  }
  await writeFile(file, String(process.pid))
  return () => rmSync(file, { force: true })
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}
