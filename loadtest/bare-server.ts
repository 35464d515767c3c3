// The baseline of the availability benchmark: a bare node:http server that answers every GET with
// a fixed availability body of the same shape and size, doing no work. Prints its URL.
import { createServer } from 'node:http'

const body = JSON.stringify({
  lot_id: '00000000-0000-7000-8000-00000000b001',
  total: 500,
  available: 250,
  occupied: 250,
  unknown: 0,
  reserved: 0,
  maintenance: 0,
  closed: 0,
  occupancy_rate: 50,
  as_of: new Date().toISOString(),
})
const server = createServer((_req, res) => {
  res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) })
  res.end(body)
})
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  const address = server.address()
  if (address && typeof address === 'object') console.log(`http://127.0.0.1:${address.port}`)
})
