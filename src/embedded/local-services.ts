import { execFile } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { homedir, userInfo } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { ServiceProcess } from './service-process.ts'

// The local services the platform and its tests run on: FerretDB (SQLite), Redis (append-only
// file on), Mosquitto (TCP_NODELAY, dynamic security), and for tests stripe-mock and versitygw.
// scripts/install-services.sh installs them; this module only runs them.

const run = promisify(execFile)

/** The tool versions scripts/install-services.sh builds; read when a tool is first needed. */
function toolVersion(key: string): string {
  const file = readFileSync(new URL('../../scripts/tool-versions.env', import.meta.url), 'utf8')
  const line = file.split('\n').find((l) => l.startsWith(`${key}=`))
  if (!line) throw new Error(`${key} is missing from scripts/tool-versions.env`)
  return line.slice(key.length + 1).trim()
}

const toolsDir = join(process.env.SMART_PARKING_CACHE ?? join(homedir(), '.cache/smart-parking'), 'tools')

function cachedTool(name: string, versionKey: string, binary = name): string {
  const path = join(toolsDir, `${name}-${toolVersion(versionKey)}`, binary)
  if (!existsSync(path)) {
    throw new Error(
      `${name} is not installed at ${path}: run "npm run services:install" (or "npm start" once)`,
    )
  }
  return path
}

function systemTool(name: string, debianPackage: string): string {
  for (const dir of (process.env.PATH ?? '')
    .split(':')
    .concat(['/usr/sbin', '/usr/bin', '/usr/local/sbin'])) {
    if (dir && existsSync(join(dir, name))) return join(dir, name)
  }
  throw new Error(
    `${name} is not installed: run "npm run services:install" (Debian package ${debianPackage})`,
  )
}

/**
 * k6 with the project's MQTT extension, as loadtest/build-k6.sh builds it: the directory is keyed
 * by the k6 version and the same hash of the extension's sources the script computes (sha256 of
 * the `sha256sum` lines of go.mod, go.sum and *.go in byte order, first 12 hex digits).
 */
function k6Path(): string {
  const ext = new URL('../../loadtest/xk6-mqtt/', import.meta.url).pathname
  const files = (readdirSync(ext, { recursive: true }) as string[])
    .filter((file) => /(^|\/)(go\.mod|go\.sum|[^/]+\.go)$/.test(file))
    .map((file) => `./${file}`)
    .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
  const lines = files
    .map(
      (file) =>
        `${createHash('sha256')
          .update(readFileSync(join(ext, file)))
          .digest('hex')}  ${file}\n`,
    )
    .join('')
  const hash = createHash('sha256').update(lines).digest('hex').slice(0, 12)
  const path = join(toolsDir, `k6-${toolVersion('K6_VERSION')}-mqtt-${hash}`, 'k6')
  if (!existsSync(path)) {
    throw new Error(
      `k6 with the MQTT extension is not built at ${path}: run "bash loadtest/build-k6.sh" (or "npm run services:install")`,
    )
  }
  return path
}

export const toolPaths = {
  ferretdb: () => cachedTool('ferretdb', 'FERRETDB_VERSION'),
  stripeMock: () => cachedTool('stripe-mock', 'STRIPE_MOCK_VERSION'),
  versitygw: () => cachedTool('versitygw', 'VERSITYGW_VERSION'),
  schemathesis: () => cachedTool('schemathesis', 'SCHEMATHESIS_VERSION', 'bin/schemathesis'),
  redis: () => systemTool('redis-server', 'redis-server'),
  mosquitto: () => systemTool('mosquitto', 'mosquitto'),
  mosquittoCtrl: () => systemTool('mosquitto_ctrl', 'mosquitto-clients'),
  k6: k6Path,
}

export type LocalService = { process: ServiceProcess; url: string }

export function ferretDb(dir: string, port: number, database = 'smart_parking'): LocalService {
  return {
    url: `mongodb://127.0.0.1:${port}/${database}`,
    process: new ServiceProcess({
      name: 'ferretdb',
      command: toolPaths.ferretdb(),
      args: [
        '--handler=sqlite',
        `--sqlite-url=file:${dir}/`,
        `--listen-addr=127.0.0.1:${port}`,
        '--telemetry=disable',
        // Its debug listener would take port 8088 and a second instance would fail.
        '--debug-addr=-',
        `--state-dir=${dir}`,
        '--log-level=warn',
      ],
      dir,
      port,
      portHint: 'Set MONGODB_URI to use that server, or EMBEDDED_MONGODB_PORT to move the embedded one.',
    }),
  }
}

export function redis(dir: string, port: number): LocalService {
  return {
    url: `redis://127.0.0.1:${port}`,
    process: new ServiceProcess({
      name: 'redis',
      command: toolPaths.redis(),
      args: [
        '--bind',
        '127.0.0.1',
        '--port',
        String(port),
        '--dir',
        dir,
        // Redis holds the ingest stream: an acknowledged sensor message must survive a restart.
        // `always`: with `everysec`, a Redis killed while a slow fsync made it postpone its writes
        // lost acknowledged steps (seen once under a loaded full test run); batching keeps the
        // cost to one fsync per event-loop turn.
        '--appendonly',
        'yes',
        '--appendfsync',
        'always',
        '--daemonize',
        'no',
        '--save',
        '',
        '--logfile',
        '',
      ],
      dir,
      port,
      portHint: 'Set REDIS_URL to use that server, or EMBEDDED_REDIS_PORT to move the embedded one.',
    }),
  }
}

const dynsecPlugin = [
  '/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so',
  '/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so',
  '/usr/lib/mosquitto_dynamic_security.so',
  '/usr/local/lib/mosquitto_dynamic_security.so',
]

/**
 * Mosquitto with the dynamic-security plugin: anonymous clients are refused, and the platform
 * connects as the plugin's admin user, whose password is generated once and kept in the data dir.
 */
export async function mosquitto(dir: string, port: number): Promise<LocalService> {
  await mkdir(dir, { recursive: true })
  const plugin = dynsecPlugin.find((path) => existsSync(path))
  if (!plugin)
    throw new Error('mosquitto_dynamic_security.so not found: install the Debian package mosquitto')
  const credentialsFile = join(dir, 'platform-credentials.json')
  const dynsecFile = join(dir, 'dynamic-security.json')
  if (!existsSync(credentialsFile) || !existsSync(dynsecFile)) {
    // Credentials first, then a fresh init (which refuses to overwrite): a crash in between
    // leaves a state the next start repairs.
    const credentials = { username: 'platform', password: randomBytes(24).toString('base64url') }
    await writeFile(credentialsFile, JSON.stringify(credentials), { mode: 0o600 })
    await rm(dynsecFile, { force: true })
    await run(toolPaths.mosquittoCtrl(), [
      'dynsec',
      'init',
      dynsecFile,
      credentials.username,
      credentials.password,
    ])
  }
  await allowPlatformToPublish(dynsecFile)
  const { username, password } = JSON.parse(await readFile(credentialsFile, 'utf8')) as {
    username: string
    password: string
  }
  const configFile = join(dir, 'mosquitto.conf')
  await writeFile(
    configFile,
    [
      `listener ${port} 127.0.0.1`,
      // With Nagle on, a QoS 1 round trip takes about 40 ms instead of under 1.
      'set_tcp_nodelay true',
      'allow_anonymous false',
      `plugin ${plugin}`,
      `plugin_opt_config_file ${dynsecFile}`,
      // The ingest session queues sensor messages while its instance is away: keep them (the
      // default keeps 1,000 per client and drops the rest).
      'max_queued_messages 1000000',
      'persistence true',
      `persistence_location ${dir}/`,
      'log_dest stdout',
      'log_type error',
      'log_type warning',
      // Run as whoever owns the data directory; as root, Mosquitto would switch to its own user.
      `user ${userInfo().username}`,
      '',
    ].join('\n'),
  )
  return {
    url: `mqtt://${encodeURIComponent(username)}:${encodeURIComponent(password)}@127.0.0.1:${port}`,
    process: new ServiceProcess({
      name: 'mosquitto',
      command: toolPaths.mosquitto(),
      args: ['-c', configFile],
      dir,
      port,
      portHint: 'Set MQTT_URL to use that broker, or EMBEDDED_MQTT_PORT to move the embedded one.',
    }),
  }
}

/**
 * The init gives the admin role every right but publishing; the platform publishes too (commands
 * to gates and displays). Devices get narrow roles of their own at run time.
 */
async function allowPlatformToPublish(dynsecFile: string): Promise<void> {
  type Acl = { acltype: string; topic: string; allow: boolean }
  const dynsec = JSON.parse(await readFile(dynsecFile, 'utf8')) as {
    roles: { rolename: string; acls: Acl[] }[]
  }
  const admin = dynsec.roles.find((role) => role.rolename === 'admin')
  if (!admin || admin.acls.some((acl) => acl.acltype === 'publishClientSend' && acl.topic === '#')) return
  admin.acls.push({ acltype: 'publishClientSend', topic: '#', allow: true })
  await writeFile(dynsecFile, JSON.stringify(dynsec, null, 2), { mode: 0o600 })
}

/**
 * stripe-mock also serves HTTPS, by default on 12112 on every interface: that port is given
 * explicitly, on loopback, so that two runs side by side do not collide.
 */
export function stripeMock(dir: string, port: number, httpsPort: number): LocalService {
  return {
    url: `http://127.0.0.1:${port}`,
    process: new ServiceProcess({
      name: 'stripe-mock',
      command: toolPaths.stripeMock(),
      args: ['-http-addr', `127.0.0.1:${port}`, '-https-addr', `127.0.0.1:${httpsPort}`],
      dir,
      port,
    }),
  }
}

export const s3TestCredentials = {
  accessKeyId: 'smart-parking-test',
  secretAccessKey: 'smart-parking-test-secret',
}

export function versitygw(dir: string, port: number): LocalService {
  const root = join(dir, 'buckets')
  mkdirSync(root, { recursive: true })
  return {
    url: `http://127.0.0.1:${port}`,
    process: new ServiceProcess({
      name: 'versitygw',
      command: toolPaths.versitygw(),
      args: ['--port', `127.0.0.1:${port}`, 'posix', root],
      env: {
        ROOT_ACCESS_KEY: s3TestCredentials.accessKeyId,
        ROOT_SECRET_KEY: s3TestCredentials.secretAccessKey,
      },
      dir,
      port,
    }),
  }
}
