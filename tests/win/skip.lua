-- skip.lua: what the specs cannot do on Windows, per spec file: the full
-- name of a test (its describe blocks' names and its own, joined by
-- spaces) or of a describe block (all its tests), and why. busted.lua
-- prints each skip with its reason and fails on an entry that names no
-- test. docs/windows.md lists the same differences for users.
return {
}
