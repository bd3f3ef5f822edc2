/**
 * Raw baseline, sending side: listens on 127.0.0.1; on a connection writes `config.size` bytes as 1 MiB
 * `socket.write`s (waiting for 'drain' when `write` says so), then ends the stream.
 */
import { getRandomValues } from "node:crypto"
import * as Net from "node:net"
import { config, MiB, runRole, send } from "./child.ts"

runRole(async () => {
  const chunk = new Uint8Array(MiB)
  getRandomValues(chunk.subarray(0, 65536))
  const server = Net.createServer((socket) => {
    let sent = 0
    const pump = () => {
      while (sent < config.size) {
        const length = Math.min(chunk.length, config.size - sent)
        sent += length
        if (!socket.write(length === chunk.length ? chunk : chunk.subarray(0, length))) {
          return socket.once("drain", pump)
        }
      }
      socket.end()
    }
    socket.on("error", (error) => {
      console.error("raw-sender:", error)
      process.exit(1)
    })
    pump()
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const { port } = server.address() as Net.AddressInfo
  send({ type: "ready", address: `tcp://127.0.0.1:${port}`, rss: process.memoryUsage.rss() })
})
