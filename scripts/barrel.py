"""Regenerates a package's src/index.ts: one namespace export per public module, alphabetically."""
import os
import sys

for package in sys.argv[1:]:
    src = os.path.join(package, "src")
    name = os.path.basename(package.rstrip("/"))
    modules = sorted(f[:-3] for f in os.listdir(src) if f.endswith(".ts") and f not in ("index.ts", "bin.ts"))
    parts = ["/**\n * @since 0.1.0\n */\n// @barrel: exports every public module of @tessera/%s as a namespace.\n" % name]
    for module in modules:
        parts.append('/**\n * @since 0.1.0\n */\nexport * as %s from "./%s.ts"\n' % (module, module))
    with open(os.path.join(src, "index.ts"), "w") as out:
        out.write("\n".join(parts))
