# Cross-compiling the whole engine for ARM64 with Debian's g++-aarch64-linux-gnu against a sysroot of
# Debian's arm64 packages, extracted rather than installed (scripts/arm64-engine.sh makes it): the amd64
# libtorch-dev and its arm64 twin cannot be installed side by side (libtorch-dev is not Multi-Arch: same).
include(${CMAKE_CURRENT_LIST_DIR}/aarch64-linux-gnu.cmake)  # the compilers and the find modes
set(TANDEM_ARM64_SYSROOT "" CACHE PATH "the extracted arm64 packages (scripts/arm64-engine.sh)")
# try_compile projects read this file again: without the sysroot they would point pkg-config (whose
# environment is the whole process's) at the wrong place.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES TANDEM_ARM64_SYSROOT)
if(NOT IS_DIRECTORY "${TANDEM_ARM64_SYSROOT}/usr/lib/aarch64-linux-gnu")
  message(FATAL_ERROR "TANDEM_ARM64_SYSROOT=${TANDEM_ARM64_SYSROOT} holds no arm64 libraries")
endif()
list(APPEND CMAKE_FIND_ROOT_PATH ${TANDEM_ARM64_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(ENV{PKG_CONFIG_SYSROOT_DIR} ${TANDEM_ARM64_SYSROOT})
set(ENV{PKG_CONFIG_LIBDIR}
    ${TANDEM_ARM64_SYSROOT}/usr/lib/aarch64-linux-gnu/pkgconfig:${TANDEM_ARM64_SYSROOT}/usr/share/pkgconfig)
# The multiarch headers (openssl/opensslconf.h and the like) are not on the cross compiler's own path.
set(CMAKE_C_FLAGS_INIT "-isystem ${TANDEM_ARM64_SYSROOT}/usr/include/aarch64-linux-gnu")
set(CMAKE_CXX_FLAGS_INIT "${CMAKE_C_FLAGS_INIT}")
# libtorch's own dependencies (OpenCV, GDAL, ...) are found through rpath-link; their undefined symbols
# belong to libraries the dynamic loader resolves at run time (under qemu, from the same sysroot).
set(CMAKE_EXE_LINKER_FLAGS_INIT
    "-Wl,--allow-shlib-undefined -Wl,-rpath-link,${TANDEM_ARM64_SYSROOT}/usr/lib/aarch64-linux-gnu -Wl,-rpath-link,${TANDEM_ARM64_SYSROOT}/lib/aarch64-linux-gnu")
set(CMAKE_SHARED_LINKER_FLAGS_INIT "${CMAKE_EXE_LINKER_FLAGS_INIT}")
