import { type ChildProcess, spawn } from 'node:child_process'
import { createWriteStream, existsSync, readFileSync } from 'node:fs'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { createConnection, createServer } from 'node:net'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

// A local service run as a child process: its own process group (so that a Ctrl-C in the
// terminal reaches only the platform, which then stops the services in order), output in a log
// file, a pid file so that a crashed run's leftovers are cleaned up, and a TCP readiness probe.

export type ServiceSpec = {
  name: string
  command: string
  args: string[]
  env?: Record<string, string>
  /** Working and data directory; the log and pid files live here too. */
  dir: string
  port: number
  /** Hint shown when the port is taken by someone else. */
  portHint?: string
  startTimeoutMs?: number
}

export type Exit = { code: number | null; signal: NodeJS.Signals | null }

export class ServiceProcess {
  readonly spec: ServiceSpec
  #child: ChildProcess | undefined
  #exited: Promise<void> = Promise.resolve()
  #stopping = false
  /**
   * Called when the process exits without being asked to; the embedded stack restarts it, so
   * that a crashed Redis comes back by itself the way a supervised one would.
   */
  onCrash: ((exit: Exit) => void) | undefined

  constructor(spec: ServiceSpec) {
    this.spec = spec
  }

  get name(): string {
    return this.spec.name
  }

  get running(): boolean {
    return this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null
  }

  get pid(): number | undefined {
    return this.#child?.pid
  }

  get #pidFile(): string {
    return join(this.spec.dir, `${this.spec.name}.pid`)
  }

  get logFile(): string {
    return join(this.spec.dir, `${this.spec.name}.log`)
  }

  async start(): Promise<void> {
    if (this.running) return
    const { spec } = this
    await mkdir(spec.dir, { recursive: true })
    await stopLeftover(this.#pidFile, spec.command)
    await assertPortFree(
      spec.port,
      `${spec.name}: port ${spec.port} is already in use. ${spec.portHint ?? ''}`,
    )

    const log = createWriteStream(this.logFile, { flags: 'a' })
    await new Promise((resolve) => log.once('open', resolve))
    const child = spawn(spec.command, spec.args, {
      cwd: spec.dir,
      env: { ...process.env, ...spec.env },
      stdio: ['ignore', log, log],
      detached: true,
    })
    this.#child = child
    this.#stopping = false
    this.#exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        resolve()
        if (!this.#stopping && this.#child === child) this.onCrash?.({ code, signal })
      }),
    )
    const spawned = await new Promise<Error | undefined>((resolve) => {
      child.once('spawn', () => resolve(undefined))
      child.once('error', resolve)
    })
    // The child has its own copy of the descriptor; ours would leak on every restart.
    log.close()
    if (spawned) throw new Error(`${spec.name}: could not start ${spec.command}: ${spawned.message}`)
    await writeFile(this.#pidFile, String(child.pid))

    const deadline = Date.now() + (spec.startTimeoutMs ?? 20_000)
    while (!(await canConnect(spec.port))) {
      if (!this.running) throw new Error(`${spec.name} exited during start-up:\n${tail(this.logFile)}`)
      if (Date.now() > deadline) {
        await this.stop()
        throw new Error(
          `${spec.name} did not accept connections on port ${spec.port}:\n${tail(this.logFile)}`,
        )
      }
      await sleep(50)
    }
  }

  /** SIGTERM (each of our services shuts down cleanly on it), then SIGKILL after the timeout. */
  async stop(timeoutMs = 10_000): Promise<void> {
    this.#stopping = true
    const child = this.#child
    if (child && this.running) {
      child.kill('SIGTERM')
      const killed = await Promise.race([this.#exited.then(() => false), sleep(timeoutMs).then(() => true)])
      if (killed) {
        child.kill('SIGKILL')
        await this.#exited
      }
    }
    this.#child = undefined
    await rm(this.#pidFile, { force: true })
  }

  /** Immediate SIGKILL of a running service: a crash, for tests of durability. */
  async kill(): Promise<void> {
    this.#stopping = true
    if (this.running) {
      this.#child?.kill('SIGKILL')
      await this.#exited
    }
    this.#child = undefined
  }

  /** Last resort when the parent exits without a graceful shutdown. */
  killSync(): void {
    this.#stopping = true
    if (this.running) this.#child?.kill('SIGKILL')
  }
}

export async function canConnect(port: number, host = '127.0.0.1'): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = createConnection({ port, host })
    socket.setTimeout(500)
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('timeout', () => {
      socket.destroy()
      resolve(false)
    })
    socket.once('error', () => resolve(false))
  })
}

async function assertPortFree(port: number, message: string): Promise<void> {
  const free = await new Promise<boolean>((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => server.close(() => resolve(true)))
  })
  if (!free) throw new Error(message.trim())
}

/** A port that was free a moment ago, for tests that start their own services. */
export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen({ port: 0, host: '127.0.0.1' }, () => {
      const address = server.address()
      const port = typeof address === 'object' && address ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}

/** A previous run that was killed hard may have left its child running; end it before starting. */
async function stopLeftover(pidFile: string, command: string): Promise<void> {
  if (!existsSync(pidFile)) return
  const pid = Number(readFileSync(pidFile, 'utf8'))
  if (!Number.isInteger(pid) || pid <= 0) return
  let cmdline = ''
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
  } catch {
    return
  }
  if (!cmdline.includes(command.split('/').pop() ?? command)) return
  process.kill(pid, 'SIGTERM')
  for (let i = 0; i < 100 && existsSync(`/proc/${pid}`); i++) await sleep(50)
}

function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n')
  } catch {
    return '(no log)'
  }
}
