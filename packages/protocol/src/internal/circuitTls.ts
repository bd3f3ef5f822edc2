/**
 * TLS 1.3 links for peer hosts through `node:tls`: both sides present their Ed25519 certificate, and each
 * checks the other's key against its `Trust` right after the handshake, before a byte of the connection is
 * read (certificate chains are not used: see `PeerIdentity`). TCP addresses only.
 */
import type * as Net from "node:net"
import * as Tls from "node:tls"
import * as PeerIdentity from "../PeerIdentity.ts"
import type { Connector } from "./circuitHost.ts"
import * as CircuitLink from "./circuitLink.ts"

const peerKey = (socket: Net.Socket): string | undefined => {
  const certificate = (socket as Tls.TLSSocket).getPeerX509Certificate()
  return certificate === undefined ? undefined : PeerIdentity.keyText(certificate.publicKey)
}

/**
 * The TLS connector of a host with this identity and trust.
 */
export const connector = (identity: PeerIdentity.Identity, trust: PeerIdentity.Trust): Connector => {
  const secure = {
    key: identity.privateKeyPem,
    cert: identity.certificatePem,
    minVersion: "TLSv1.3" as Tls.SecureVersion,
    // Authentication is the known-keys check, not a certificate chain.
    rejectUnauthorized: false
  }
  const sockets: CircuitLink.Sockets = {
    connect: (address) => ({
      socket: Tls.connect({ ...secure, host: address.host, port: address.port, servername: "localhost" }),
      ready: "secureConnect"
    }),
    server: () => ({ server: Tls.createServer({ ...secure, requestCert: true }), event: "secureConnection" }),
    check: (socket, address) => PeerIdentity.check(trust, address, peerKey(socket))
  }
  return {
    dial: (address) => CircuitLink.dial(sockets, address),
    listen: (address, onRefused) => CircuitLink.listen(sockets, address, onRefused)
  }
}
