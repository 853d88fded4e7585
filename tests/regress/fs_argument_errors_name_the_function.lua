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
if failed > 0 then os.exit(1) end
print("ok")
