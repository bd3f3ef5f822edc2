/**
 * Checks shared by the T2 packet encoders: field ranges and the 255-byte packet limit. Encoders validate what
 * they are given because models also come from JSON and from callers, and a silently masked field would put
 * different bytes on the wire than the caller asked for.
 */

/** Largest T2 packet: the link's byte counter and the LKM both stop at 255. */
export const MAX_PACKET = 255

/** Routed service header byte without OVR/ERR: `0x80 | dir8`. */
export const SERVICE = 0x80

export const isU8 = (n: number): boolean => Number.isInteger(n) && n >= 0 && n <= 0xff

export const isU32 = (n: number): boolean => Number.isInteger(n) && n >= 0 && n <= 0xffff_ffff

export const isIntIn = (n: number, min: number, max: number): boolean => Number.isInteger(n) && n >= min && n <= max

/** True when byte 0 is a clean routed service header (`0x80..0x87`: no MFM, OVR or ERR bit). */
export const isServiceHeader = (b0: number): boolean => (b0 & 0xf8) === SERVICE
