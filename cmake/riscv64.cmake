# Cross build for the kd-edge target "riscv64": cmake -DCMAKE_TOOLCHAIN_FILE=cmake/riscv64.cmake ...
# Needs Debian's g++-riscv64-linux-gnu; ctest runs the tests under qemu-riscv64 (Debian's qemu-user).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR riscv64)
set(CMAKE_C_COMPILER riscv64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER riscv64-linux-gnu-g++)
set(CMAKE_FIND_ROOT_PATH /usr/riscv64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)  # a bundle outside the sysroot: -DCMAKE_PREFIX_PATH=bundle
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-riscv64 -L /usr/riscv64-linux-gnu)
set(KD_EDGE_TARGET riscv64 CACHE STRING "kd_edge.compile target of the test artifacts")
