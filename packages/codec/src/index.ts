/**
 * @since 0.1.0
 */
// @barrel: exports every public module of @tessera/codec as a namespace.

/**
 * @since 0.1.0
 */
export * as CdmDeletions from "./CdmDeletions.ts"

/**
 * @since 0.1.0
 */
export * as CdmMapHeader from "./CdmMapHeader.ts"

/**
 * @since 0.1.0
 */
export * as CdmPacket from "./CdmPacket.ts"

/**
 * @since 0.1.0
 */
export * as CdmSlotstamp from "./CdmSlotstamp.ts"

/**
 * @since 0.1.0
 */
export * as CircuitFragment from "./CircuitFragment.ts"

/**
 * @since 0.1.0
 */
export * as DecodeError from "./DecodeError.ts"

/**
 * @since 0.1.0
 */
export * as DnetConstants from "./DnetConstants.ts"

/**
 * @since 0.1.0
 */
export * as DnetJson from "./DnetJson.ts"

/**
 * @since 0.1.0
 */
export * as DnetPacket from "./DnetPacket.ts"

/**
 * @since 0.1.0
 */
export * as DnetStructs from "./DnetStructs.ts"

/**
 * @since 0.1.0
 */
export * as FlashPacket from "./FlashPacket.ts"

/**
 * @since 0.1.0
 */
export * as NbdConstants from "./NbdConstants.ts"

/**
 * @since 0.1.0
 */
export * as NbdHandshake from "./NbdHandshake.ts"

/**
 * @since 0.1.0
 */
export * as NbdStream from "./NbdStream.ts"

/**
 * @since 0.1.0
 */
export * as NbdTransmission from "./NbdTransmission.ts"

/**
 * @since 0.1.0
 */
export * as SiloCompression from "./SiloCompression.ts"

/**
 * @since 0.1.0
 */
export * as SiloFrame from "./SiloFrame.ts"

/**
 * @since 0.1.0
 */
export * as SiloJson from "./SiloJson.ts"

/**
 * @since 0.1.0
 */
export * as SiloPacket from "./SiloPacket.ts"

/**
 * @since 0.1.0
 */
export * as StreamParser from "./StreamParser.ts"

/**
 * @since 0.1.0
 */
export * as T2Direction from "./T2Direction.ts"

/**
 * @since 0.1.0
 */
export * as T2Json from "./T2Json.ts"

/**
 * @since 0.1.0
 */
export * as T2Packet from "./T2Packet.ts"
