# cozy_add_plugin(NAME SOURCES...) for out-of-tree plugins: a MODULE library
# named cozy_NAME that links Cozy::sdk, with hidden symbols but the entry point.
function(cozy_add_plugin name)
  add_library(${name} MODULE ${ARGN})
  target_link_libraries(${name} PRIVATE Cozy::sdk)
  set_target_properties(${name} PROPERTIES OUTPUT_NAME cozy_${name}
    CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON)
endfunction()
