# CMake toolchain file: cross-compile for aarch64 Linux with Debian's
# gcc-aarch64-linux-gnu and the arm64 multiarch -dev packages
# (dpkg --add-architecture arm64; scripts/install-deps.sh --arm64).
# Used by `make test-arm64` (scripts/test-arm64.sh), which runs the suites
# under qemu-aarch64; so does ctest in that build dir (the emulator below;
# QEMU_CPU picks the CPU model, QEMU_LD_PREFIX the arm64 loader).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64)

# pkg-config must see the arm64 .pc files only
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")

set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu /usr/lib/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
