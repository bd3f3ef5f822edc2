import { assert, describe, it } from "@effect/vitest"
import * as NbdConstants from "../src/NbdConstants.ts"

const ascii = (value: bigint) => Buffer.from(value.toString(16), "hex").toString("latin1")

describe("NbdConstants", () => {
  it("has the spec's magics", () => {
    assert.strictEqual(ascii(NbdConstants.NBDMAGIC), "NBDMAGIC")
    assert.strictEqual(ascii(NbdConstants.IHAVEOPT), "IHAVEOPT")
    assert.strictEqual(NbdConstants.OPTION_REPLY_MAGIC, 0x3e889045565a9n)
    assert.strictEqual(NbdConstants.CLISERV_MAGIC, 0x00420281861253n)
    assert.strictEqual(NbdConstants.REQUEST_MAGIC, 0x25609513)
    assert.strictEqual(NbdConstants.SIMPLE_REPLY_MAGIC, 0x67446698)
    assert.strictEqual(NbdConstants.STRUCTURED_REPLY_MAGIC, 0x668e33ef)
  })

  it("numbers error replies from 2^31 + 1 and error chunks from 2^15 + 1", () => {
    assert.strictEqual(NbdConstants.Reply.ERR_UNSUP, 2 ** 31 + 1)
    assert.strictEqual(NbdConstants.Reply.ERR_TOO_BIG, 2 ** 31 + 9)
    assert.strictEqual(NbdConstants.ChunkType.ERROR, 2 ** 15 + 1)
    assert.strictEqual(NbdConstants.ChunkType.ERROR_OFFSET, 2 ** 15 + 2)
    assert.isTrue(NbdConstants.isErrorReply(NbdConstants.Reply.ERR_SHUTDOWN))
    assert.isFalse(NbdConstants.isErrorReply(NbdConstants.Reply.META_CONTEXT))
    assert.isTrue(NbdConstants.isErrorChunk(0x8123))
    assert.isFalse(NbdConstants.isErrorChunk(NbdConstants.ChunkType.BLOCK_STATUS))
  })

  it("names numbers as the spec does, and unknown numbers by prefix", () => {
    assert.strictEqual(NbdConstants.optionName(7), "NBD_OPT_GO")
    assert.strictEqual(NbdConstants.optionName(10), "NBD_OPT_SET_META_CONTEXT")
    assert.strictEqual(NbdConstants.optionName(42), "NBD_OPT_42")
    assert.strictEqual(NbdConstants.replyName(2 ** 31 + 6), "NBD_REP_ERR_UNKNOWN")
    assert.strictEqual(NbdConstants.infoName(3), "NBD_INFO_BLOCK_SIZE")
    assert.strictEqual(NbdConstants.commandName(7), "NBD_CMD_BLOCK_STATUS")
    assert.strictEqual(NbdConstants.commandName(99), "NBD_CMD_99")
    assert.strictEqual(NbdConstants.chunkTypeName(2), "NBD_REPLY_TYPE_OFFSET_HOLE")
    assert.strictEqual(NbdConstants.errnoName(22), "NBD_EINVAL")
    assert.strictEqual(NbdConstants.errnoName(2), "NBD_ERRNO_2")
  })

  it("keeps the bit positions of the flag fields", () => {
    assert.strictEqual(NbdConstants.TransmissionFlags.SEND_FAST_ZERO, 1 << 11)
    assert.strictEqual(NbdConstants.CommandFlags.FAST_ZERO, 1 << 4)
    assert.strictEqual(NbdConstants.StateFlags.ZERO, 2)
    assert.strictEqual(NbdConstants.Errno.ESHUTDOWN, 108)
  })
})
