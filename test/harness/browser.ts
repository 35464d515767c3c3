import { existsSync } from 'node:fs'
import { createServer, connect as netConnect, type Socket } from 'node:net'
import { type Browser, chromium } from 'playwright-core'

// A real browser for tests of pages: Debian's chromium driven by playwright-core (which cannot
// download a browser here). A missing chromium fails the test with what to install, never skips it.

export const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(chromiumPath)) {
    throw new Error(
      `Chromium is missing at ${chromiumPath}: run scripts/install-services.sh --all as root ` +
        '(it installs the Debian packages chromium and fonts-dejavu-core), or set CHROMIUM_PATH',
    )
  }
  return await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  })
}

export type TcpProxy = {
  /** http://127.0.0.1:<port>, forwarding to the target. */
  url: string
  /** Cuts every connection and turns new ones away (accepted, then closed at once) until restore(). */
  cut(): void
  restore(): void
  close(): Promise<void>
}

/**
 * A loopback TCP proxy in front of a server, to take a browser's connection away and give it back
 * (the platform keeps running; only the path to it breaks).
 */
export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const sockets = new Set<Socket>()
  let refusing = false
  const server = createServer((client) => {
    if (refusing) {
      client.destroy()
      return
    }
    const upstream = netConnect(targetPort, '127.0.0.1')
    client.setNoDelay(true)
    upstream.setNoDelay(true)
    sockets.add(client)
    sockets.add(upstream)
    const drop = () => {
      client.destroy()
      upstream.destroy()
      sockets.delete(client)
      sockets.delete(upstream)
    }
    for (const socket of [client, upstream]) {
      socket.on('error', drop)
      socket.on('close', drop)
    }
    client.pipe(upstream)
    upstream.pipe(client)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', resolve)
  })
  const address = server.address()
  if (!address || typeof address === 'string') throw new Error('the proxy has no port')
  return {
    url: `http://127.0.0.1:${address.port}`,
    cut() {
      refusing = true
      for (const socket of sockets) socket.destroy()
      sockets.clear()
    },
    restore() {
      refusing = false
    },
    async close() {
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
