/**
 * JSON lines as `inspect` prints them and `craft` reads them.
 *
 * @since 0.1.0
 */

/**
 * One record as one line; bigints (64-bit ids) print as numbers when exact, otherwise as decimal strings.
 *
 * @since 0.1.0
 * @category formatting
 */
export const stringify = (record: unknown): string =>
  JSON.stringify(record, (_key, value) =>
    typeof value === "bigint"
      ? (value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER)
        ? Number(value)
        : value.toString())
      : value) + "\n"
