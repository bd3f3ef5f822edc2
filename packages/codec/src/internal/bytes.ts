/**
 * Integer access on byte arrays by shifts, so no `DataView` is created per small message, plus a writer that
 * fills a buffer whose exact size the encoder computed first.
 */

/** Largest and smallest integers a JS number holds exactly; 64-bit wire fields outside this are rejected. */
const SAFE_HIGH = 0x1f_ffff

export const u16le = (b: Uint8Array, o: number): number => b[o]! | (b[o + 1]! << 8)

export const u32le = (b: Uint8Array, o: number): number =>
  (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0

export const i32le = (b: Uint8Array, o: number): number =>
  b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)

export const u16be = (b: Uint8Array, o: number): number => (b[o]! << 8) | b[o + 1]!

export const u32be = (b: Uint8Array, o: number): number =>
  ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0

/** An unsigned 64-bit little-endian value as a number, or `undefined` when it exceeds 2^53 - 1. */
export const u64le = (b: Uint8Array, o: number): number | undefined => {
  const high = u32le(b, o + 4)
  return high > SAFE_HIGH ? undefined : high * 0x1_0000_0000 + u32le(b, o)
}

/** A signed 64-bit little-endian value as a number, or `undefined` when it is outside the safe integer range. */
export const i64le = (b: Uint8Array, o: number): number | undefined => {
  const high = i32le(b, o + 4)
  if (high > SAFE_HIGH || high < -SAFE_HIGH - 1) return undefined
  const value = high * 0x1_0000_0000 + u32le(b, o)
  return Number.isSafeInteger(value) ? value : undefined
}

/** An unsigned 64-bit little-endian value as a bigint (for opaque ids and flag words). */
export const u64leBig = (b: Uint8Array, o: number): bigint => {
  const high = u32le(b, o + 4)
  const low = u32le(b, o)
  // Most 64-bit words on the wire are small or only carry a top flag bit; skip the BigInt shift for those.
  if (high === 0) return BigInt(low)
  if (high === 0x8000_0000) return TOP_BIT | BigInt(low)
  return (BigInt(high) << 32n) | BigInt(low)
}

const TOP_BIT = 1n << 63n

/** An unsigned 64-bit big-endian value as a number, or `undefined` when it exceeds 2^53 - 1. */
export const u64be = (b: Uint8Array, o: number): number | undefined => {
  const high = u32be(b, o)
  return high > SAFE_HIGH ? undefined : high * 0x1_0000_0000 + u32be(b, o + 4)
}

export const putU16le = (b: Uint8Array, o: number, v: number): void => {
  b[o] = v
  b[o + 1] = v >>> 8
}

export const putU32le = (b: Uint8Array, o: number, v: number): void => {
  b[o] = v
  b[o + 1] = v >>> 8
  b[o + 2] = v >>> 16
  b[o + 3] = v >>> 24
}

export const putU16be = (b: Uint8Array, o: number, v: number): void => {
  b[o] = v >>> 8
  b[o + 1] = v
}

export const putU32be = (b: Uint8Array, o: number, v: number): void => {
  b[o] = v >>> 24
  b[o + 1] = v >>> 16
  b[o + 2] = v >>> 8
  b[o + 3] = v
}

/** Writes a safe integer (negative values as two's complement) as 64-bit little-endian. */
export const putI64le = (b: Uint8Array, o: number, v: number): void => {
  // ToUint32 is exact modulo 2^32 for every safe integer, negative ones included, so the division is exact.
  const low = v >>> 0
  putU32le(b, o, low)
  putU32le(b, o + 4, (v - low) / 0x1_0000_0000)
}

export const putU64leBig = (b: Uint8Array, o: number, v: bigint): void => {
  if (v >= 0n && v <= 0xffff_ffffn) {
    putU32le(b, o, Number(v))
    putU32le(b, o + 4, 0)
    return
  }
  putU32le(b, o, Number(v & 0xffff_ffffn))
  putU32le(b, o + 4, Number((v >> 32n) & 0xffff_ffffn))
}

// One 8-byte scratch buffer with one persistent DataView: its native 64-bit accessors are about three times
// faster than assembling a bigint from two 32-bit halves with BigInt shifts.
const scratch = new Uint8Array(8)
const scratchView = new DataView(scratch.buffer)

/** An unsigned 64-bit big-endian value as a bigint (for opaque ids such as NBD cookies). */
export const u64beBig = (b: Uint8Array, o: number): bigint => {
  for (let i = 0; i < 8; i++) scratch[i] = b[o + i]!
  return scratchView.getBigUint64(0)
}

/** Writes a bigint modulo 2^64 (the DataView setter wraps) as 64-bit big-endian. */
export const putU64beBig = (b: Uint8Array, o: number, v: bigint): void => {
  scratchView.setBigUint64(0, v)
  for (let i = 0; i < 8; i++) b[o + i] = scratch[i]!
}

/** Writes a safe non-negative integer as 64-bit big-endian. */
export const putU64be = (b: Uint8Array, o: number, v: number): void => {
  putU32be(b, o, Math.floor(v / 0x1_0000_0000))
  putU32be(b, o + 4, v % 0x1_0000_0000)
}

/**
 * Sequential writer over a buffer the encoder sized exactly beforehand. Encoders compute the length, allocate
 * once and fill it, so nothing is copied twice.
 */
export class ByteWriter {
  readonly bytes: Uint8Array
  offset = 0
  constructor(size: number) {
    this.bytes = new Uint8Array(size)
  }
  u8(v: number): this {
    this.bytes[this.offset++] = v
    return this
  }
  u16le(v: number): this {
    putU16le(this.bytes, this.offset, v)
    this.offset += 2
    return this
  }
  u32le(v: number): this {
    putU32le(this.bytes, this.offset, v)
    this.offset += 4
    return this
  }
  i64le(v: number): this {
    putI64le(this.bytes, this.offset, v)
    this.offset += 8
    return this
  }
  u64leBig(v: bigint): this {
    putU64leBig(this.bytes, this.offset, v)
    this.offset += 8
    return this
  }
  u16be(v: number): this {
    putU16be(this.bytes, this.offset, v)
    this.offset += 2
    return this
  }
  u32be(v: number): this {
    putU32be(this.bytes, this.offset, v)
    this.offset += 4
    return this
  }
  u64be(v: number): this {
    putU64be(this.bytes, this.offset, v)
    this.offset += 8
    return this
  }
  raw(data: Uint8Array): this {
    this.bytes.set(data, this.offset)
    this.offset += data.length
    return this
  }
}

/**
 * A view of `length` bytes of `bytes` from `start`, like `subarray` but built with the constructor, which skips
 * subarray's species lookup and costs about half as much; this matters for the per-frame payload views.
 */
export const view = (bytes: Uint8Array, start: number, length: number): Uint8Array =>
  new Uint8Array(bytes.buffer, bytes.byteOffset + start, length)

const utf8Encoder = new TextEncoder()
const utf8Decoder = new TextDecoder("utf-8", { fatal: false })

export const utf8 = (text: string): Uint8Array => utf8Encoder.encode(text)
export const fromUtf8 = (bytes: Uint8Array): string => utf8Decoder.decode(bytes)

/** Concatenates byte arrays into one new array. */
export const concat = (parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  let size = 0
  for (const part of parts) size += part.length
  const out = new Uint8Array(size)
  let offset = 0
  for (const part of parts) {
    out.set(part, offset)
    offset += part.length
  }
  return out
}
