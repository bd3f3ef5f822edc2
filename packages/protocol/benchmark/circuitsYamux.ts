/**
 * The yamux side of the circuits benchmark: `@chainsafe/libp2p-yamux` (8.x, the libp2p 3 message-stream API)
 * over a plain `node:net` socket, with no other libp2p component. The socket is wrapped as the
 * `MultiaddrConnection` the muxer expects: bytes in through `onData`, out through `socket.write`, the socket's
 * own back-pressure reported as `canSendMore` and its 'drain' as the stream's.
 */
import { yamux } from "@chainsafe/libp2p-yamux"
import { defaultLogger } from "@libp2p/logger"
import { AbstractMultiaddrConnection } from "@libp2p/utils"
import { multiaddr } from "@multiformats/multiaddr"
import type * as Net from "node:net"

class SocketConnection extends AbstractMultiaddrConnection {
  readonly socket: Net.Socket

  constructor(socket: Net.Socket, direction: "inbound" | "outbound") {
    super({
      remoteAddr: multiaddr(`/ip4/127.0.0.1/tcp/${socket.remotePort ?? 0}`),
      direction,
      log: defaultLogger().forComponent(`bench:yamux:${direction}`),
      // Idle streams must not time out between the benchmark's rounds.
      inactivityTimeout: 0
    })
    this.socket = socket
    socket.on("data", (chunk: Uint8Array) => this.onData(chunk))
    socket.on("drain", () => this.safeDispatchEvent("drain"))
    socket.on("close", () => this.onTransportClosed())
    socket.on("error", () => {})
  }

  sendData(data: Parameters<AbstractMultiaddrConnection["sendData"]>[0]) {
    let canSendMore = true
    for (const chunk of data) canSendMore = this.socket.write(chunk)
    return { sentBytes: data.byteLength, canSendMore }
  }

  sendReset(): void {
    this.socket.destroy()
  }

  sendPause(): void {
    this.socket.pause()
  }

  sendResume(): void {
    this.socket.resume()
  }

  async sendClose(): Promise<void> {
    this.socket.end()
  }
}

/** The muxer type `@chainsafe/libp2p-yamux` makes (its class is not exported by name). */
export type YamuxMuxer = ReturnType<ReturnType<ReturnType<typeof yamux>>["createStreamMuxer"]>

/** A yamux muxer over a connected socket (`client` for the dialling side). */
export const muxer = (socket: Net.Socket, client: boolean): YamuxMuxer =>
  yamux({ enableKeepAlive: false, maxInboundStreams: 10_000, maxOutboundStreams: 10_000 })().createStreamMuxer(
    new SocketConnection(socket, client ? "outbound" : "inbound")
  )
