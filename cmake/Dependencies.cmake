# Every dependency is a Debian 12 package (scripts/install-deps.sh installs them).
find_package(Threads REQUIRED)
# An idle agent's resident memory is mostly the pages of the shared libraries it maps
# (issue #2 asks for under 10 MB). The C++ libraries are linked statically, spdlog and
# fmt as headers, so that with -static-libstdc++ (agent/CMakeLists.txt) `runner` maps no
# C++ shared library at all; the C libraries (OpenSSL, libgit2) stay shared.
set(Boost_USE_STATIC_LIBS ON)
find_package(Boost 1.81 REQUIRED)
find_package(OpenSSL REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(spdlog REQUIRED)
find_package(fmt REQUIRED)
add_library(proctor_logging INTERFACE)
target_link_libraries(proctor_logging INTERFACE spdlog::spdlog_header_only fmt::fmt-header-only)
find_package(pugixml REQUIRED)
find_package(CLI11 REQUIRED)
find_package(yaml-cpp REQUIRED)
find_library(YAML_CPP_STATIC NAMES libyaml-cpp.a REQUIRED)
add_library(proctor_yaml_cpp STATIC IMPORTED)
set_target_properties(proctor_yaml_cpp PROPERTIES IMPORTED_LOCATION ${YAML_CPP_STATIC})
find_package(LibArchive REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(LIBGIT2 REQUIRED IMPORTED_TARGET libgit2)
if(PROCTOR_BUILD_TESTS)
  find_package(doctest REQUIRED)
endif()
if(PROCTOR_BUILD_BENCH)
  find_package(benchmark REQUIRED)
endif()
