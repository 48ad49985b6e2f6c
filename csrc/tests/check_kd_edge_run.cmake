# kd-edge-run prints valid timings in JSON, and fails with a message on a bad artifact.
# EMULATOR (a cross build): the qemu-user command line that runs RUN.
execute_process(COMMAND ${EMULATOR} "${RUN}" --artifact "${ARTIFACT}" --batch 64 --iters 200 --json
                OUTPUT_VARIABLE out RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "kd-edge-run failed (${rc}): ${out}")
endif()
foreach(key batch iters p50_us p99_us max_us)
  string(JSON value ERROR_VARIABLE err GET "${out}" ${key})
  if(err)
    message(FATAL_ERROR "kd-edge-run --json output lacks ${key}: ${out}")
  endif()
endforeach()
string(JSON batch GET "${out}" batch)
string(JSON p50 GET "${out}" p50_us)
string(JSON p99 GET "${out}" p99_us)
string(JSON max GET "${out}" max_us)
if(NOT batch EQUAL 64 OR NOT p50 GREATER 0 OR p99 LESS p50 OR max LESS p99)
  message(FATAL_ERROR "kd-edge-run timings inconsistent: ${out}")
endif()

execute_process(COMMAND ${EMULATOR} "${RUN}" --artifact "${ARTIFACT}/does-not-exist" --iters 1
                ERROR_VARIABLE err RESULT_VARIABLE rc)
if(rc EQUAL 0 OR NOT err MATCHES "artifact directory not found")
  message(FATAL_ERROR "kd-edge-run on a missing artifact: rc=${rc}, stderr=${err}")
endif()
execute_process(COMMAND ${EMULATOR} "${RUN}" --artifact "${ARTIFACT}" --batch 0
                ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 2 OR NOT err MATCHES "--batch must be a positive integer")
  message(FATAL_ERROR "kd-edge-run --batch 0: rc=${rc}, stderr=${err}")
endif()
