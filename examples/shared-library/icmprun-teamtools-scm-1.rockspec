-- SPDX-License-Identifier: MIT
-- An example of a script library shared as a rock: it depends on icmprun
-- and adds one command (`icmprun checkup`) and one module
-- (`teamtools.health`). From this folder:
--   luarocks --lua-version 5.4 make icmprun-teamtools-scm-1.rockspec
rockspec_format = "3.0"
package = "icmprun-teamtools"
version = "scm-1"
source = {
  url = "git+https://github.com/icmprun/icmprun.git",
  dir = "icmprun/examples/shared-library",
}
description = {
  summary = "Example shared library for icmprun: a checkup command and a health module",
  license = "MIT",
}
dependencies = {
  "lua >= 5.4, < 5.5",
  "icmprun",
}
build = {
  type = "builtin",
  modules = {
    ["icmprun.commands.checkup"] = "icmprun/commands/checkup.lua",
    ["teamtools.health"] = "teamtools/health.lua",
  },
}
