import { assert, describe, it } from "@effect/vitest"
import fc from "fast-check"
import * as DnetConstants from "../src/DnetConstants.ts"

// Values from the tables of dnet.md §2.

describe("DnetConstants", () => {
  it("command numbers (§2.1)", () => {
    assert.deepStrictEqual(Object.entries(DnetConstants.Command), [
      ["LOOKUP", 1],
      ["REVERSE_LOOKUP", 2],
      ["JOIN", 3],
      ["WRITE", 4],
      ["READ", 5],
      ["LIST", 6],
      ["EXEC", 7],
      ["ROUTE_LIST", 8],
      ["STAT", 9],
      ["NOTIFY", 10],
      ["DEL", 11],
      ["STAT_COUNT", 12],
      ["STATUS", 13],
      ["READ_RANGE", 14],
      ["DEL_RANGE", 15],
      ["AUTH", 16],
      ["BULK_READ", 17],
      ["UNKNOWN", 18]
    ])
    assert.strictEqual(DnetConstants.COMMAND_MAX, 19)
  })

  it("command names round-trip for every 32-bit number", () => {
    assert.strictEqual(DnetConstants.commandName(4), "WRITE")
    assert.strictEqual(DnetConstants.commandName(0), "CMD_0")
    assert.strictEqual(DnetConstants.commandName(19), "CMD_19")
    assert.strictEqual(DnetConstants.commandFromName("BULK_READ"), 17)
    assert.strictEqual(DnetConstants.commandFromName("CMD_4"), 4)
    for (const bad of ["write", "CMD_", "CMD_-1", "CMD_4294967296", "toString", "__proto__"]) {
      assert.isUndefined(DnetConstants.commandFromName(bad), bad)
    }
    fc.assert(fc.property(fc.integer({ min: 0, max: 0xffff_ffff }), (cmd) => {
      assert.strictEqual(DnetConstants.commandFromName(DnetConstants.commandName(cmd)), cmd)
    }))
  })

  it("header flags and the reply bit (§2.2, §2.3)", () => {
    assert.deepStrictEqual(DnetConstants.CmdFlags, { NEED_ACK: 1, MORE: 2, DESTROY: 4, DIRECT: 8, NOLOCK: 16 })
    assert.strictEqual(DnetConstants.TRANS_REPLY, 1n << 63n)
  })

  it("attribute flags (§2.4), bit 0 overloaded", () => {
    assert.deepStrictEqual(DnetConstants.AttrFlags, {
      DELETE_HISTORY: 1,
      CNTR_GLOBAL: 1,
      BULK_CHECK: 1,
      STATUS_CHANGE: 1,
      META_TIMES: 2,
      NOCSUM: 4,
      SORT: 8,
      NOLOCK: 16
    })
    assert.deepStrictEqual(DnetConstants.NodeStatusFlags, { EXIT: 1, RO: 2 })
  })

  it("IO flags (§2.5), bit 9 overloaded", () => {
    assert.deepStrictEqual(DnetConstants.IoFlags, {
      SKIP_SENDING: 1 << 0,
      APPEND: 1 << 1,
      COMPRESS: 1 << 2,
      META: 1 << 3,
      PREPARE: 1 << 4,
      COMMIT: 1 << 5,
      REMOVED: 1 << 6,
      OVERWRITE: 1 << 7,
      NOCSUM: 1 << 8,
      PLAIN_WRITE: 1 << 9,
      NODATA: 1 << 9
    })
  })

  it("counter slots follow the two per-command halves (§2.1)", () => {
    assert.strictEqual(DnetConstants.Counter.LA1, 2 * DnetConstants.COMMAND_MAX)
    const values = Object.values(DnetConstants.Counter)
    values.forEach((value, i) => assert.strictEqual(value, 38 + i))
    assert.strictEqual(DnetConstants.Counter.UNKNOWN, 64)
    assert.strictEqual(DnetConstants.Counter.MAX, 65)
  })

  it("other constants (§2.6) and errno values (§3.2)", () => {
    assert.strictEqual(DnetConstants.ID_SIZE, 64)
    assert.strictEqual(DnetConstants.ADDR_SIZE, 28)
    assert.strictEqual(DnetConstants.CSUM_SIZE, 64)
    assert.strictEqual(DnetConstants.AUTH_COOKIE_SIZE, 32)
    assert.strictEqual(DnetConstants.MAX_NAME_LEN, 64)
    assert.strictEqual(DnetConstants.MAX_TRANS_SIZE, 10 * 1024 * 1024)
    assert.strictEqual(DnetConstants.COPY_IO_SIZE, 512)
    assert.strictEqual(DnetConstants.DEFAULT_CHECK_TIMEOUT_SEC, 60)
    assert.strictEqual(DnetConstants.DEFAULT_STALL_TRANSACTIONS, 5)
    assert.strictEqual(DnetConstants.DEFAULT_NOTIFY_HASH_SIZE, 256)
    assert.strictEqual(DnetConstants.HISTORY_SUFFIX, ".history")
    assert.deepStrictEqual(DnetConstants.Errno, {
      EPERM: 1,
      ENOENT: 2,
      ENXIO: 6,
      E2BIG: 7,
      ENOMEM: 12,
      EINVAL: 22,
      EROFS: 30,
      EILSEQ: 84,
      ENOTSUP: 95,
      ECONNRESET: 104,
      ETIMEDOUT: 110
    })
  })
})
