-- luacheck configuration. Library code, examples and scripts use the
-- standard Lua 5.4 globals only; specs also get busted's. Unused-variable
-- checks stay on everywhere, but for the arguments of doc/api's functions:
-- signatures without bodies, for the reference.
std = "lua54"
files["spec/"] = { std = "+busted" }
files["doc/api/"] = { unused_args = false }
