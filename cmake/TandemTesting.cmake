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
  target_link_libraries(${ARG_NAME} PRIVATE tandem_testing ${ARG_LIBS} GTest::gtest_main)
  add_test(NAME ${ARG_NAME} COMMAND ${ARG_NAME})
  if(DEFINED ENV{TANDEM_SHARED})
    set(shared_dir $ENV{TANDEM_SHARED})
  else()
    get_filename_component(shared_dir ${PROJECT_SOURCE_DIR}/../shared ABSOLUTE)
  endif()
  set(test_environment
    TANDEM_SHARED=${shared_dir}
    TANDEM_BIN_DIR=${CMAKE_BINARY_DIR}/bin
    TANDEM_SOURCE_DIR=${PROJECT_SOURCE_DIR}
    OMP_NUM_THREADS=1)
  set_tests_properties(${ARG_NAME} PROPERTIES
    LABELS ${ARG_LABEL}
    TIMEOUT ${ARG_TIMEOUT}
    ENVIRONMENT "${test_environment}")
endfunction()
