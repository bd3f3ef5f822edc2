/**
 * Unix domain socket connections through `node:net`, for `unix:/path` addresses.
 *
 * The socket file is created by `listen` and removed when the listener closes. A file left behind by a process
 * that died makes `listen` fail with `ListenFailed` (address in use) rather than being removed silently, since
 * it may belong to a live server.
 *
 * @since 0.1.0
 */
import * as Address from "./Address.ts"
import * as NetListener from "./internal/netListener.ts"
import type { Driver } from "./Transport.ts"

const family: NetListener.Family<Address.Unix> = {
  endpoint: (address) => ({ path: address.path }),
  bound: (_server, requested) => requested,
  // Unix sockets have no per-connection peer name; both ends are named by the path.
  names: (_socket, address, side) =>
    side === "dial"
      ? { remote: Address.format(address), local: "unix:(client)" }
      : { remote: "unix:(client)", local: Address.format(address) },
  format: Address.format
}

/**
 * The Unix socket driver.
 *
 * @since 0.1.0
 * @category drivers
 */
export const driver: Driver<Address.Unix> = {
  dial: (address, options) => NetListener.dial(family, address, options),
  listen: (address, options) => NetListener.listen(family, address, options)
}
