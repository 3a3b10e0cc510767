# Fails when docs/nodes.md differs from `cozy nodes --markdown`.
execute_process(COMMAND ${COZY} nodes --markdown OUTPUT_VARIABLE generated RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cozy nodes --markdown failed (${rc})")
endif()
file(READ "${DOC}" committed)
if(NOT generated STREQUAL committed)
  message(FATAL_ERROR "docs/nodes.md is out of date: regenerate it with `build/cozy nodes --markdown > docs/nodes.md`")
endif()
