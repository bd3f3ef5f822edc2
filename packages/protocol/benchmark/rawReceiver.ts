/**
 * Raw baseline, receiving side: on `go`, dials the sender and counts bytes until the end of the stream; timed
 * from just before the dial to the end. With `store`, every chunk is also copied into a buffer of the transfer's
 * size allocated (untouched) just before the dial, as a memory device would be: the cost of storing the bytes
 * into fresh memory, page faults included, without any protocol.
 */
import * as Net from "node:net"
import { performance } from "node:perf_hooks"
import { config, runRole, sampler, send, usage, vmHWM, waitForGo } from "./child.ts"

runRole(async () => {
  send({ type: "ready", address: "", rss: process.memoryUsage.rss() })
  const address = await waitForGo()
  const port = Number(address.slice(address.lastIndexOf(":") + 1))
  const rssBefore = process.memoryUsage.rss()
  const memory = sampler()
  const used = usage()
  const started = performance.now()
  const store = config.store === true ? new Uint8Array(config.size) : undefined
  const bytes = await new Promise<number>((resolve, reject) => {
    let count = 0
    const socket = Net.connect({ port, host: "127.0.0.1" })
    socket.on("data", (data: Buffer) => {
      store?.set(data, count)
      count += data.length
    })
    socket.on("end", () => {
      socket.end()
      resolve(count)
    })
    socket.on("error", reject)
  })
  const seconds = (performance.now() - started) / 1e3
  const cpuUsed = used()
  if (bytes !== config.size) throw new Error(`received ${bytes} bytes of ${config.size}`)
  send({ type: "received", bytes, seconds, ...cpuUsed, rssBefore, ...memory.stop(), vmHWM: vmHWM() })
})
