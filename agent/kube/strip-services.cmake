# Copies the .proto IN to OUT without its service blocks: protoc-c cannot compile the
# Registration service (its Register method becomes a C member named "register"). A service
# block runs from a line starting "service " to the next line that is only "}".
file(STRINGS ${IN} lines)
set(out "")
set(skip FALSE)
foreach(line IN LISTS lines)
  if(line MATCHES "^service ")
    set(skip TRUE)
  elseif(skip AND line STREQUAL "}")
    set(skip FALSE)
  elseif(NOT skip)
    string(APPEND out "${line}\n")
  endif()
endforeach()
file(WRITE ${OUT} "${out}")
