/**
 * What an NBD server offers under one name: a block device, whether clients may write it, the block sizes it
 * advertises in `NBD_INFO_BLOCK_SIZE`, and the transmission flags that follow from them.
 *
 * Allocation (`base:allocation` block status) comes from the device's own `allocation` when it has one (a
 * sparse file knows which blocks were never written); a device without it reports everything as data.
 *
 * @since 0.1.0
 */
import * as NbdConstants from "@tessera/codec/NbdConstants"
import * as NbdTransmission from "@tessera/codec/NbdTransmission"
import type { BlockDevice } from "@tessera/storage/Provider"

/**
 * Block size constraints (`NBD_INFO_BLOCK_SIZE`): requests should be aligned to `minimum`, are best in
 * multiples of `preferred`, and carry at most `maximum` bytes of data.
 *
 * @since 0.1.0
 * @category models
 */
export interface BlockSizes {
  readonly minimum: number
  readonly preferred: number
  readonly maximum: number
}

/**
 * One export.
 *
 * @since 0.1.0
 * @category models
 */
export interface NbdExport {
  /** The name clients ask for (the empty name reaches the server's first export). */
  readonly name: string
  /** Text for people, sent as `NBD_INFO_DESCRIPTION` and after the name in `NBD_OPT_LIST`. */
  readonly description: string
  readonly device: BlockDevice
  /** Writes, trims and zeroes fail with `NBD_EPERM`. */
  readonly readOnly: boolean
  readonly blockSizes: BlockSizes
}

/**
 * Options of `make`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly description?: string | undefined
  readonly readOnly?: boolean | undefined
  /** Default preferred block size: 4096 bytes (or the device size, when smaller and a power of two). */
  readonly preferredBlockSize?: number | undefined
  /** Largest request payload; default and upper bound 32 MiB (`NbdTransmission.DEFAULT_MAX_DATA_LENGTH`). */
  readonly maxPayload?: number | undefined
}

/**
 * The default preferred block size.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_PREFERRED_BLOCK_SIZE = 4096

const isPowerOfTwo = (n: number): boolean => Number.isSafeInteger(n) && n > 0 && (n & (n - 1)) === 0

/**
 * An export of `device` under `name`. The preferred block size is rounded down to a power of two (the
 * protocol requires it) and kept within the maximum payload.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (name: string, device: BlockDevice, options: Options = {}): NbdExport => {
  const maximum = Math.max(
    1,
    Math.min(options.maxPayload ?? NbdTransmission.DEFAULT_MAX_DATA_LENGTH, NbdTransmission.DEFAULT_MAX_DATA_LENGTH)
  )
  let preferred = options.preferredBlockSize ?? DEFAULT_PREFERRED_BLOCK_SIZE
  while (!isPowerOfTwo(preferred) && preferred > 1) preferred = 2 ** Math.floor(Math.log2(preferred))
  preferred = Math.max(1, Math.min(preferred, 2 ** Math.floor(Math.log2(maximum))))
  return {
    name,
    description: options.description ?? "",
    device,
    readOnly: options.readOnly ?? false,
    blockSizes: { minimum: 1, preferred, maximum }
  }
}

/**
 * The transmission flags of an export. Flush is device-wide, so writes made through any connection are
 * flushed by a flush on any other: `CAN_MULTI_CONN` holds for every export.
 *
 * @since 0.1.0
 * @category getters
 */
export const transmissionFlags = (nbdExport: NbdExport): number => {
  const F = NbdConstants.TransmissionFlags
  let flags = F.HAS_FLAGS | F.SEND_FLUSH | F.SEND_FUA | F.SEND_DF | F.CAN_MULTI_CONN | F.SEND_CACHE
  if (nbdExport.readOnly) flags |= F.READ_ONLY
  else flags |= F.SEND_TRIM | F.SEND_WRITE_ZEROES
  return flags
}
