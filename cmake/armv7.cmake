# Cross build for the kd-edge target "armv7": cmake -DCMAKE_TOOLCHAIN_FILE=cmake/armv7.cmake ...
# Needs Debian's g++-arm-linux-gnueabihf; ctest runs the tests under qemu-arm (Debian's qemu-user).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR armv7l)
set(CMAKE_C_COMPILER arm-linux-gnueabihf-gcc)
set(CMAKE_CXX_COMPILER arm-linux-gnueabihf-g++)
set(CMAKE_FIND_ROOT_PATH /usr/arm-linux-gnueabihf)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)  # a bundle outside the sysroot: -DCMAKE_PREFIX_PATH=bundle
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-arm -L /usr/arm-linux-gnueabihf)
set(KD_EDGE_TARGET armv7 CACHE STRING "kd_edge.compile target of the test artifacts")
