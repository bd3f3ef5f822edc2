/**
 * TCP connections through `node:net`, for `tcp://host:port` addresses. Nagle's algorithm is off: frames are
 * already batched by their writers, and a lone urgent frame must leave at once.
 *
 * Listening on port 0 binds a port the OS chooses; the listener's `address` has the real one.
 *
 * @since 0.1.0
 */
import type * as Net from "node:net"
import * as Address from "./Address.ts"
import * as NetListener from "./internal/netListener.ts"
import type { Driver } from "./Transport.ts"

const name = (host: string | undefined, port: number | undefined): string =>
  host === undefined || port === undefined ? "tcp://unknown" : Address.format(Address.tcp(host, port))

const family: NetListener.Family<Address.Tcp> = {
  endpoint: (address) => ({ host: address.host, port: address.port }),
  bound: (server, requested) => {
    const bound = server.address() as Net.AddressInfo
    return Address.tcp(requested.host, bound.port)
  },
  names: (socket) => ({
    remote: name(socket.remoteAddress, socket.remotePort),
    local: name(socket.localAddress, socket.localPort)
  }),
  format: Address.format
}

/**
 * The TCP driver.
 *
 * @since 0.1.0
 * @category drivers
 */
export const driver: Driver<Address.Tcp> = {
  dial: (address, options) => NetListener.dial(family, address, options),
  listen: (address, options) => NetListener.listen(family, address, options)
}
