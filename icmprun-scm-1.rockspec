-- SPDX-License-Identifier: MIT
-- LuaRocks package of icmprun, built with CMake from a checkout:
--   luarocks --lua-version 5.4 make icmprun-scm-1.rockspec
-- installs the icmprun command, the Lua module icmprun.so and the library
-- (icmprun.*) into the rocks tree, so that rocks depending on icmprun can add
-- commands and modules beside it (see examples/shared-library/).
rockspec_format = "3.0"
package = "icmprun"
version = "scm-1"
source = {
  url = "git+https://github.com/icmprun/icmprun.git",
}
description = {
  summary = "Lua-scriptable ICMP echo (ping) runner on a libuv loop",
  detailed = [[
icmprun runs probe campaigns written as Lua scripts on a C engine: one
IPv4 and one IPv6 ICMP socket, any timeout per probe, sweeps at line
rate, and bundled ping, fping, sweep and Prometheus exporter commands.
]],
  license = "MIT",
  labels = { "network", "icmp", "ping", "monitoring" },
}
dependencies = {
  "lua >= 5.4, < 5.5",
  "argparse",
  "lua-cjson",
  "lyaml",
}
-- libuv and luv are linked into the command and the module, so they come
-- from the system with their headers (Debian: libuv1-dev, lua-luv-dev).
external_dependencies = {
  LIBUV = { header = "uv.h" },
}
build = {
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "Release",
    CMAKE_INSTALL_PREFIX = "$(PREFIX)",
    CMAKE_INSTALL_BINDIR = "$(BINDIR)",
    -- The engine library, its header and pkg-config file stay in the rock's
    -- own folder; only the command and the Lua parts go into the tree.
    CMAKE_INSTALL_LIBDIR = "engine/lib",
    CMAKE_INSTALL_INCLUDEDIR = "engine/include",
    ICMPRUN_INSTALL_LUADIR = "$(LUADIR)",
    ICMPRUN_INSTALL_CMODDIR = "$(LIBDIR)",
    BUILD_TESTING = "OFF",
  },
}
