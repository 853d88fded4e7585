# extract_c.cmake: writes OUT with the C block that follows the
# "<!-- embed-host -->" marker in IN (docs/embedding.md), so the tests
# build the host program exactly as the documentation shows it.
file(READ ${IN} text)
set(marker "<!-- embed-host -->\n```c\n")
string(FIND "${text}" "${marker}" start)
if(start LESS 0)
  message(FATAL_ERROR "${IN}: no <!-- embed-host --> C block")
endif()
string(LENGTH "${marker}" len)
math(EXPR start "${start} + ${len}")
string(SUBSTRING "${text}" ${start} -1 rest)
string(FIND "${rest}" "\n```" end)
string(SUBSTRING "${rest}" 0 ${end} code)
file(WRITE ${OUT} "${code}\n")
