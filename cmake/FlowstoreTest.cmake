# flowstore_test(NAME SOURCES src... LIBS lib... LABELS label...)
#
# One cmocka executable per module. Labels: `unit` (fast, no privileges),
# `root` (needs root and the kernel), `e2e` (whole daemon, slower). Exit code
# 77 means SKIPPED; tests that skip print why, and under CI=true they fail
# instead (tests/skip.h).
function(flowstore_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} PkgConfig::CMOCKA)
  target_include_directories(${name} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS "${T_LABELS}" SKIP_RETURN_CODE 77
    ENVIRONMENT "FLOWSTORE_TEST_TMP=${CMAKE_CURRENT_BINARY_DIR}/tmp")
endfunction()

# flowstore_script_test(NAME script LABELS label...): a shell test, given the
# build dir's binaries through the environment (FLOWSTORED, FLOWQ, TCP_PEER, TCP_LOAD,
# MAKE_FIXTURE).
function(flowstore_script_test name script)
  cmake_parse_arguments(T "" "" "LABELS" ${ARGN})
  add_test(NAME ${name} COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/${script})
  set_tests_properties(${name} PROPERTIES LABELS "${T_LABELS}" SKIP_RETURN_CODE 77
    ENVIRONMENT "FLOWSTORED=$<TARGET_FILE:flowstored>;TCP_PEER=$<TARGET_FILE:tcp_peer>;TCP_LOAD=$<TARGET_FILE:tcp_load>;FLOWQ=$<TARGET_FILE:flowq>;MAKE_FIXTURE=$<TARGET_FILE:make_fixture>;FLOWSTORE_TEST_TMP=${CMAKE_CURRENT_BINARY_DIR}/tmp;FLOWSTORE_SRC=${PROJECT_SOURCE_DIR}")
endfunction()
