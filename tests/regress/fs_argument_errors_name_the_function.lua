-- Argument errors name the function even when the call site gives no
-- name (a function called through pcall): "bad argument #1 to
-- 'moonport.fs.open'", as lua says 'io.open', never '?'.
local mp = require "moonport"
local failed = 0
for _, name in ipairs { "open", "stat", "lstat", "remove", "mkdir",
                        "rmdir", "dir" } do
  local ok, err = pcall(mp.fs[name], nil)
  if ok or not err:find("'moonport.fs." .. name .. "'", 1, true) then
    failed = failed + 1
    print("FAIL " .. name .. ": " .. tostring(err))
  end
end
-- functions written in Lua name themselves and blame their caller's line
local ok, err = pcall(function() mp.fs.readfile({}) end)
if ok or not err:find("^[^:]*fs_argument_errors_name_the_function.lua:%d+: "
                      .. "bad argument #1 to 'readfile'") then
  failed = failed + 1
  print("FAIL readfile: " .. tostring(err))
end
if failed > 0 then os.exit(1) end
print("ok")
