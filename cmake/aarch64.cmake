# Cross build for the kd-edge target "aarch64": cmake -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64.cmake ...
# Needs Debian's g++-aarch64-linux-gnu; ctest runs the tests under qemu-aarch64 (Debian's qemu-user).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)  # a bundle outside the sysroot: -DCMAKE_PREFIX_PATH=bundle
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L /usr/aarch64-linux-gnu)
set(KD_EDGE_TARGET aarch64 CACHE STRING "kd_edge.compile target of the test artifacts")
