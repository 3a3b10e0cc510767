# Installs Cozy to a scratch prefix, builds examples/hello-plugin against the
# installed SDK (find_package(Cozy)), and runs a graph that uses its node;
# then the scaffold, and the agriculture and medical packs with their own tests.
file(REMOVE_RECURSE "${WORK_DIR}")
function(run_step)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(step_output "${out}" PARENT_SCOPE)
endfunction()

run_step(${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${WORK_DIR}/prefix")
run_step(${CMAKE_COMMAND} -S "${SOURCE_DIR}/examples/hello-plugin" -B "${WORK_DIR}/build" -G "${GENERATOR}"
         -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix -DCMAKE_BUILD_TYPE=Release)
run_step(${CMAKE_COMMAND} --build "${WORK_DIR}/build")
# Its own test, with the SDK's harness (cozy/testing.hpp).
run_step(${CTEST} --test-dir "${WORK_DIR}/build" --output-on-failure)

# The installed cozy finds its own plugins in ../lib/cozy/plugins.
set(installed_cozy "${WORK_DIR}/prefix/bin/cozy")
run_step(${installed_cozy} nodes HelloTint --plugins "${WORK_DIR}/build")
if(NOT step_output MATCHES "HelloTint \\(Hello Tint\\)")
  message(FATAL_ERROR "cozy nodes does not describe HelloTint:\n${step_output}")
endif()
run_step(${installed_cozy} run "${SOURCE_DIR}/examples/hello-plugin/hello.json" --plugins "${WORK_DIR}/build"
         --output-dir "${WORK_DIR}/out" --progress none)
if(NOT EXISTS "${WORK_DIR}/out/hello_00001.png")
  message(FATAL_ERROR "the graph did not write hello_00001.png")
endif()
message(STATUS "out-of-tree plugin built, tested, loaded and run")

# The scaffold: `cozy new-plugin` writes a project that builds against the
# installed SDK and passes its own test as written; its graph runs.
run_step(${installed_cozy} new-plugin scaffolded --dir "${WORK_DIR}")
run_step(${CMAKE_COMMAND} -S "${WORK_DIR}/scaffolded" -B "${WORK_DIR}/scaffolded/build" -G "${GENERATOR}"
         -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix -DCMAKE_BUILD_TYPE=Release)
run_step(${CMAKE_COMMAND} --build "${WORK_DIR}/scaffolded/build")
run_step(${CTEST} --test-dir "${WORK_DIR}/scaffolded/build" --output-on-failure)
run_step(${installed_cozy} run "${WORK_DIR}/scaffolded/graphs/scaffolded.json" --plugins "${WORK_DIR}/scaffolded/build"
         --output-dir "${WORK_DIR}/scaffolded/out" --progress none)
if(NOT EXISTS "${WORK_DIR}/scaffolded/out/scaffolded_00001.png")
  message(FATAL_ERROR "the scaffold's graph did not write scaffolded_00001.png")
endif()
message(STATUS "scaffolded plugin built, tested and run")

# The domain packs, as their READMEs build them: against the installed SDK,
# their tests run on the files scripts/data.sh fetched (they skip, saying so,
# where one is missing), their graphs by the installed cozy. `skip`: tests the
# in-tree run has run already and that take long (a training graph).
function(build_pack name data skip)
  run_step(${CMAKE_COMMAND} -S "${SOURCE_DIR}/plugins/${name}" -B "${WORK_DIR}/${name}" -G "${GENERATOR}"
           -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix -DCMAKE_BUILD_TYPE=Release
           -D${data}=${SOURCE_DIR}/input/${name})
  run_step(${CMAKE_COMMAND} --build "${WORK_DIR}/${name}")
  run_step(${CTEST} --test-dir "${WORK_DIR}/${name}" --output-on-failure -E "${skip}")
  message(STATUS "${name} pack built against the installed SDK and tested:\n${step_output}")
endfunction()
if(AGRICULTURE)
  build_pack(agriculture AGRICULTURE_DATA_DIR "^$")
endif()
if(MEDICAL)
  build_pack(medical MEDICAL_DATA_DIR "TheAnomalyGraphFindsTheLesions")
endif()
