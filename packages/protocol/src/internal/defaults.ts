/**
 * Defaults shared by the transport drivers, kept apart from `Transport.ts` so the drivers need no value from
 * the module that imports them.
 */

/** Bytes a connection holds for a slow reader before it stops reading: a few 1 MiB frames. */
export const READ_BUFFER = 4 * 1024 * 1024

/** Connections that may wait to be accepted. */
export const BACKLOG = 128
