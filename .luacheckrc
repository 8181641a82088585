-- luacheck configuration. Library code, examples and scripts use the
-- standard Lua 5.4 globals only; specs also get busted's. Unused-variable
-- checks stay on everywhere.
std = "lua54"
files["spec/"] = { std = "+busted" }
