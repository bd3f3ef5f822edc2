/**
 * The root `tessera` command and its subcommands.
 *
 * @since 0.1.0
 */
import * as Command from "effect/cli/Command"
import * as Cdm from "./Cdm.ts"
import * as Craft from "./Craft.ts"
import * as Demo from "./Demo.ts"
import * as DeviceCommand from "./DeviceCommand.ts"
import * as Dnet from "./Dnet.ts"
import * as Inspect from "./Inspect.ts"
import * as Migrate from "./Migrate.ts"
import * as Nbd from "./Nbd.ts"
import * as Tile from "./Tile.ts"

/**
 * The `tessera` command.
 *
 * @since 0.1.0
 * @category commands
 */
export const tessera = Command.make("tessera").pipe(
  Command.withDescription("Move and serve storage between machines"),
  Command.withSubcommands([
    Inspect.command,
    Craft.command,
    DeviceCommand.command,
    Migrate.command,
    Nbd.command,
    Dnet.command,
    Cdm.command,
    Tile.command,
    Demo.command
  ])
)
