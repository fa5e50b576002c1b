# tandem_add_test(NAME <name> LABEL <unit|integration|fault|load> SOURCES <files...> [TIMEOUT <s>])
# One GoogleTest executable per call, registered with CTest under its label so CI can pick by label.
# Tests find ../shared through TANDEM_SHARED (set here to the folder beside the checkout unless the
# environment already names one), the CLI through TANDEM_BIN_DIR and the checkout (deployment files,
# scripts) through TANDEM_SOURCE_DIR.
function(tandem_add_test)
  cmake_parse_arguments(ARG "" "NAME;LABEL;TIMEOUT" "SOURCES;LIBS" ${ARGN})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 120)
  endif()
  add_executable(${ARG_NAME} ${ARG_SOURCES})
  target_link_libraries(${ARG_NAME} PRIVATE tandem_testing tandem_kernel_environment ${ARG_LIBS} GTest::gtest_main)
  add_test(NAME ${ARG_NAME} COMMAND ${ARG_NAME})
  set(test_environment
    TANDEM_BIN_DIR=${CMAKE_BINARY_DIR}/bin
    TANDEM_SOURCE_DIR=${PROJECT_SOURCE_DIR}
    OMP_NUM_THREADS=1)
  # A shared folder named here must hold the data: tests then fail rather than skip without it.
  if(DEFINED ENV{TANDEM_SHARED})
    list(APPEND test_environment TANDEM_SHARED=$ENV{TANDEM_SHARED})
  elseif(IS_DIRECTORY ${PROJECT_SOURCE_DIR}/../shared)
    get_filename_component(shared_dir ${PROJECT_SOURCE_DIR}/../shared ABSOLUTE)
    list(APPEND test_environment TANDEM_SHARED=${shared_dir})
  endif()
  # ctest counts a skipped GoogleTest case as passed unless told: any skip shows the test as skipped.
  set_tests_properties(${ARG_NAME} PROPERTIES
    LABELS ${ARG_LABEL}
    TIMEOUT ${ARG_TIMEOUT}
    ENVIRONMENT "${test_environment}"
    SKIP_REGULAR_EXPRESSION "\\[  SKIPPED \\]")
endfunction()

# tandem_add_kernel_variants(<test>): the test again under TANDEM_KERNELS=<table> for every table of this
# build (<test>_<table>); a table this CPU lacks skips (test_env.cpp), and ctest shows it skipped.
function(tandem_add_kernel_variants test)
  get_test_property(${test} LABELS labels)
  get_test_property(${test} TIMEOUT timeout)
  get_test_property(${test} ENVIRONMENT environment)
  foreach(table ${TANDEM_KERNEL_TABLES})
    add_test(NAME ${test}_${table} COMMAND ${test})
    set_tests_properties(${test}_${table} PROPERTIES
      LABELS "${labels}"
      TIMEOUT ${timeout}
      ENVIRONMENT "${environment};TANDEM_KERNELS=${table}"
      SKIP_REGULAR_EXPRESSION "\\[  SKIPPED \\]")
  endforeach()
endfunction()
