# BPF CO-RE objects as CMake custom commands (after libbpf-bootstrap's
# tools/cmake/FindBpfObject.cmake):
#
#   /sys/kernel/btf/vmlinux --bpftool btf dump--> <gen>/vmlinux.h
#   x.bpf.c --clang -g -O2 -target bpf--> x.tmp.bpf.o
#           --bpftool gen object--> x.bpf.o --bpftool gen skeleton--> <gen>/x.skel.h
#
# The link step (as libbpf-bootstrap's Makefile does) drops the DWARF that
# -g adds, keeping BTF: the skeleton embeds the object, 60 KiB instead of 2 MiB.
#
# Everything generated lives in the build tree. vmlinux.h comes from the BTF
# of the kernel we build on; CO-RE relocations let the objects load on other
# BTF kernels. The skeleton of x.bpf.c is `struct x_bpf` (x_bpf__open() ...).
#
# Use:
#   include(BpfObject)
#   bpf_skeletons(<target> SOURCES a.bpf.c ... [DEPENDS header ...])
# makes <target> an INTERFACE library whose include dir holds every x.skel.h
# and that links libbpf; linking it builds the skeletons first.
#
# Cache variables: FLOWSTORE_BPF_CLANG, FLOWSTORE_BPFTOOL (the tools),
# FLOWSTORE_BTF_FILE (the BTF to dump, default the running kernel's), and
# FLOWSTORE_VMLINUX_H (a ready vmlinux.h: no BTF needed on the build host).
#
# This file is also its own helper script: the build runs it with
# `cmake -P` to write each generated file through a temporary name, so a
# failed step never leaves a half-written output that looks up to date.

if(CMAKE_SCRIPT_MODE_FILE)
  # cmake -DSTEP=vmlinux|object|skeleton -DTOOL=bpftool -DIN=... -DOUT=... [-DNAME=...]
  #       -P BpfObject.cmake
  set(stdout_file "${OUT}.tmp")
  if(STEP STREQUAL "vmlinux")
    if(NOT EXISTS "${IN}")
      message(FATAL_ERROR "flowstore needs a kernel with BTF type information "
        "(CONFIG_DEBUG_INFO_BTF=y): ${IN} does not exist on this machine.")
    endif()
    set(cmd "${TOOL}" btf dump file "${IN}" format c)
  elseif(STEP STREQUAL "object")
    set(cmd "${TOOL}" gen object "${OUT}.tmp" "${IN}")
    set(stdout_file /dev/null)
  elseif(STEP STREQUAL "skeleton")
    set(cmd "${TOOL}" gen skeleton "${IN}" name "${NAME}")
  else()
    message(FATAL_ERROR "BpfObject.cmake: unknown STEP '${STEP}'")
  endif()
  execute_process(COMMAND ${cmd} OUTPUT_FILE "${stdout_file}"
    RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    file(REMOVE "${OUT}.tmp")
    list(JOIN cmd " " cmdline)
    message(FATAL_ERROR "${cmdline} failed (${rc}):\n${err}")
  endif()
  file(RENAME "${OUT}.tmp" "${OUT}")
  return()
endif()

# Include it from the directory that calls bpf_skeletons() (bpf/): custom
# command outputs are only visible to targets of the same directory.
include_guard(GLOBAL)

set(FLOWSTORE_BTF_FILE "/sys/kernel/btf/vmlinux" CACHE FILEPATH
  "Kernel BTF that vmlinux.h is generated from")
set(FLOWSTORE_VMLINUX_H "" CACHE FILEPATH
  "A ready vmlinux.h to use instead of generating one from FLOWSTORE_BTF_FILE")

# ---- tools -------------------------------------------------------------------

find_program(FLOWSTORE_BPF_CLANG NAMES clang clang-19 clang-18 clang-17 clang-16
  clang-15 clang-14 clang-13 clang-12 clang-11
  DOC "clang that compiles the BPF programs")
if(NOT FLOWSTORE_BPF_CLANG)
  message(FATAL_ERROR "clang not found: flowstore compiles its BPF programs "
    "with clang (Debian: apt-get install clang; or run scripts/deps.sh), "
    "or set -DFLOWSTORE_BPF_CLANG=/path/to/clang.")
endif()
execute_process(COMMAND "${FLOWSTORE_BPF_CLANG}" --version
  OUTPUT_VARIABLE _bpf_clang_version RESULT_VARIABLE _bpf_rc ERROR_QUIET)
if(NOT _bpf_rc EQUAL 0 OR NOT _bpf_clang_version MATCHES "clang version ([0-9]+)[.0-9]*")
  message(FATAL_ERROR "${FLOWSTORE_BPF_CLANG} --version failed or is not clang")
endif()
if(CMAKE_MATCH_1 LESS 11)
  message(FATAL_ERROR "${FLOWSTORE_BPF_CLANG} is clang ${CMAKE_MATCH_1}: "
    "BPF CO-RE needs clang 11 or newer")
endif()

# Debian installs bpftool in /usr/sbin, which is not on a user's PATH.
find_program(FLOWSTORE_BPFTOOL NAMES bpftool HINTS /usr/sbin /sbin /usr/local/sbin
  DOC "bpftool that dumps vmlinux.h and generates BPF skeletons")
if(NOT FLOWSTORE_BPFTOOL)
  message(FATAL_ERROR "bpftool not found: flowstore generates vmlinux.h and its "
    "BPF skeletons with it (Debian: apt-get install bpftool; or run "
    "scripts/deps.sh), or set -DFLOWSTORE_BPFTOOL=/path/to/bpftool.")
endif()
message(STATUS "BPF: clang ${CMAKE_MATCH_1} (${FLOWSTORE_BPF_CLANG}), ${FLOWSTORE_BPFTOOL}")

# __TARGET_ARCH_x selects bpf_tracing.h's view of struct pt_regs.
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|amd64|AMD64|i.86)$")
  set(FLOWSTORE_BPF_ARCH x86)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64)$")
  set(FLOWSTORE_BPF_ARCH arm64)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^arm")
  set(FLOWSTORE_BPF_ARCH arm)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^ppc64")
  set(FLOWSTORE_BPF_ARCH powerpc)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^s390")
  set(FLOWSTORE_BPF_ARCH s390)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^riscv")
  set(FLOWSTORE_BPF_ARCH riscv)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^loongarch")
  set(FLOWSTORE_BPF_ARCH loongarch)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^mips")
  set(FLOWSTORE_BPF_ARCH mips)
else()
  message(FATAL_ERROR "BPF: no __TARGET_ARCH_ known for CMAKE_SYSTEM_PROCESSOR "
    "'${CMAKE_SYSTEM_PROCESSOR}'")
endif()

# ---- vmlinux.h ---------------------------------------------------------------

set(FLOWSTORE_BPF_GEN_DIR "${CMAKE_BINARY_DIR}/bpf/gen")
file(MAKE_DIRECTORY "${FLOWSTORE_BPF_GEN_DIR}")
set(_bpf_self "${CMAKE_CURRENT_LIST_FILE}")  # the helper script: this file

if(FLOWSTORE_VMLINUX_H)
  if(NOT EXISTS "${FLOWSTORE_VMLINUX_H}")
    message(FATAL_ERROR "FLOWSTORE_VMLINUX_H=${FLOWSTORE_VMLINUX_H} does not exist")
  endif()
  configure_file("${FLOWSTORE_VMLINUX_H}" "${FLOWSTORE_BPF_GEN_DIR}/vmlinux.h" COPYONLY)
else()
  if(NOT EXISTS "${FLOWSTORE_BTF_FILE}")
    message(FATAL_ERROR "flowstore needs a kernel with BTF type information "
      "(CONFIG_DEBUG_INFO_BTF=y): ${FLOWSTORE_BTF_FILE} does not exist on this "
      "machine. Boot a kernel built with BTF, or pass -DFLOWSTORE_VMLINUX_H= "
      "a vmlinux.h dumped elsewhere.")
  endif()
  add_custom_command(OUTPUT "${FLOWSTORE_BPF_GEN_DIR}/vmlinux.h"
    COMMAND "${CMAKE_COMMAND}" -DSTEP=vmlinux "-DTOOL=${FLOWSTORE_BPFTOOL}"
            "-DIN=${FLOWSTORE_BTF_FILE}" "-DOUT=${FLOWSTORE_BPF_GEN_DIR}/vmlinux.h"
            -P "${_bpf_self}"
    DEPENDS "${_bpf_self}"
    COMMENT "[bpf] vmlinux.h from ${FLOWSTORE_BTF_FILE}"
    VERBATIM)
endif()

# ---- objects and skeletons ---------------------------------------------------

# bpf_skeletons(<target> SOURCES x.bpf.c ... [DEPENDS header ...])
function(bpf_skeletons target)
  cmake_parse_arguments(B "" "" "SOURCES;DEPENDS" ${ARGN})
  set(vmlinux_h "${FLOWSTORE_BPF_GEN_DIR}/vmlinux.h")
  set(skels)
  foreach(src IN LISTS B_SOURCES)
    get_filename_component(src "${src}" ABSOLUTE)
    get_filename_component(file "${src}" NAME)
    string(REGEX REPLACE "\\.bpf\\.c$" "" name "${file}")
    if(name STREQUAL file)
      message(FATAL_ERROR "bpf_skeletons: ${src} is not named x.bpf.c")
    endif()
    get_filename_component(src_dir "${src}" DIRECTORY)
    set(tmp_obj "${CMAKE_CURRENT_BINARY_DIR}/${name}.tmp.bpf.o")
    set(obj "${CMAKE_CURRENT_BINARY_DIR}/${name}.bpf.o")
    set(skel "${FLOWSTORE_BPF_GEN_DIR}/${name}.skel.h")
    set(include_flags -I${FLOWSTORE_BPF_GEN_DIR} -I${src_dir})
    foreach(dir IN LISTS LIBBPF_INCLUDE_DIRS)
      list(APPEND include_flags -isystem ${dir})
    endforeach()

    add_custom_command(OUTPUT "${tmp_obj}"
      COMMAND "${FLOWSTORE_BPF_CLANG}" -g -O2 -target bpf
              -D__TARGET_ARCH_${FLOWSTORE_BPF_ARCH}
              -Wall -Werror ${include_flags}
              -MD -MF "${tmp_obj}.d" -c "${src}" -o "${tmp_obj}"
      DEPENDS "${src}" ${B_DEPENDS} "${vmlinux_h}"
      DEPFILE "${tmp_obj}.d"
      COMMENT "[bpf] clang ${file} -> ${name}.tmp.bpf.o"
      COMMAND_EXPAND_LISTS VERBATIM)

    add_custom_command(OUTPUT "${obj}"
      COMMAND "${CMAKE_COMMAND}" -DSTEP=object "-DTOOL=${FLOWSTORE_BPFTOOL}"
              "-DIN=${tmp_obj}" "-DOUT=${obj}" -P "${_bpf_self}"
      DEPENDS "${tmp_obj}" "${_bpf_self}"
      COMMENT "[bpf] bpftool gen object -> ${name}.bpf.o"
      VERBATIM)

    add_custom_command(OUTPUT "${skel}"
      COMMAND "${CMAKE_COMMAND}" -DSTEP=skeleton "-DTOOL=${FLOWSTORE_BPFTOOL}"
              "-DIN=${obj}" "-DOUT=${skel}" "-DNAME=${name}_bpf" -P "${_bpf_self}"
      DEPENDS "${obj}" "${_bpf_self}"
      COMMENT "[bpf] bpftool gen skeleton -> ${name}.skel.h"
      VERBATIM)
    list(APPEND skels "${skel}")
  endforeach()

  add_custom_target(${target}_gen DEPENDS ${skels})
  add_library(${target} INTERFACE)
  add_dependencies(${target} ${target}_gen)
  # SYSTEM: the generated headers are not ours to hold to -Werror.
  target_include_directories(${target} SYSTEM INTERFACE "${FLOWSTORE_BPF_GEN_DIR}")
  target_link_libraries(${target} INTERFACE PkgConfig::LIBBPF)
  # A static libbpf brings its private dependencies along.
  if(LIBBPF_LINK_LIBRARIES MATCHES "\\.a(;|$)")
    find_library(FLOWSTORE_LIBELF NAMES elf REQUIRED)
    target_link_libraries(${target} INTERFACE ${FLOWSTORE_LIBELF} PkgConfig::ZLIB)
  endif()
endfunction()
