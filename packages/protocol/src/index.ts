/**
 * @since 0.1.0
 */
// @barrel: exports every public module of @tessera/protocol as a namespace.

/**
 * @since 0.1.0
 */
export * as Address from "./Address.ts"

/**
 * @since 0.1.0
 */
export * as Circuit from "./Circuit.ts"

/**
 * @since 0.1.0
 */
export * as CircuitConnection from "./CircuitConnection.ts"

/**
 * @since 0.1.0
 */
export * as CircuitError from "./CircuitError.ts"

/**
 * @since 0.1.0
 */
export * as DeviceSchema from "./DeviceSchema.ts"

/**
 * @since 0.1.0
 */
export * as DnetClient from "./DnetClient.ts"

/**
 * @since 0.1.0
 */
export * as DnetError from "./DnetError.ts"

/**
 * @since 0.1.0
 */
export * as DnetNode from "./DnetNode.ts"

/**
 * @since 0.1.0
 */
export * as DnetRing from "./DnetRing.ts"

/**
 * @since 0.1.0
 */
export * as FromProtocol from "./FromProtocol.ts"

/**
 * @since 0.1.0
 */
export * as MemoryTransport from "./MemoryTransport.ts"

/**
 * @since 0.1.0
 */
export * as MigrationDestination from "./MigrationDestination.ts"

/**
 * @since 0.1.0
 */
export * as MigrationError from "./MigrationError.ts"

/**
 * @since 0.1.0
 */
export * as MigrationProgress from "./MigrationProgress.ts"

/**
 * @since 0.1.0
 */
export * as MigrationSource from "./MigrationSource.ts"

/**
 * @since 0.1.0
 */
export * as Migrator from "./Migrator.ts"

/**
 * @since 0.1.0
 */
export * as NbdClient from "./NbdClient.ts"

/**
 * @since 0.1.0
 */
export * as NbdDeviceSpec from "./NbdDeviceSpec.ts"

/**
 * @since 0.1.0
 */
export * as NbdError from "./NbdError.ts"

/**
 * @since 0.1.0
 */
export * as NbdExport from "./NbdExport.ts"

/**
 * @since 0.1.0
 */
export * as NbdServer from "./NbdServer.ts"

/**
 * @since 0.1.0
 */
export * as PacketConnection from "./PacketConnection.ts"

/**
 * @since 0.1.0
 */
export * as Peer from "./Peer.ts"

/**
 * @since 0.1.0
 */
export * as PeerIdentity from "./PeerIdentity.ts"

/**
 * @since 0.1.0
 */
export * as PeerService from "./PeerService.ts"

/**
 * @since 0.1.0
 */
export * as PeerUrl from "./PeerUrl.ts"

/**
 * @since 0.1.0
 */
export * as ProtocolError from "./ProtocolError.ts"

/**
 * @since 0.1.0
 */
export * as TcpTransport from "./TcpTransport.ts"

/**
 * @since 0.1.0
 */
export * as ToProtocol from "./ToProtocol.ts"

/**
 * @since 0.1.0
 */
export * as Transport from "./Transport.ts"

/**
 * @since 0.1.0
 */
export * as TransportError from "./TransportError.ts"

/**
 * @since 0.1.0
 */
export * as UnixTransport from "./UnixTransport.ts"
