# Interface targets every Proctor target links: language level, definitions, warnings
# and sanitizers live here once instead of in each folder (as ccache does).
add_library(project_settings INTERFACE)
target_compile_features(project_settings INTERFACE cxx_std_20)
target_include_directories(project_settings INTERFACE ${PROJECT_SOURCE_DIR})
target_compile_definitions(project_settings INTERFACE
  # Asio and Beast are compiled once, in common/boost_impl.cpp.
  BOOST_ASIO_SEPARATE_COMPILATION
  BOOST_BEAST_SEPARATE_COMPILATION
  BOOST_ASIO_NO_DEPRECATED
  PROCTOR_VERSION="${PROJECT_VERSION}")
set(CMAKE_CXX_EXTENSIONS OFF)
# Load only the shared libraries a binary really calls: each one mapped costs the idle
# agent resident pages (relocations) even when unused.
target_link_options(project_settings INTERFACE -Wl,--as-needed -Wl,-O1)

if(PROCTOR_SANITIZE)
  target_compile_options(project_settings INTERFACE
    -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  target_link_options(project_settings INTERFACE -fsanitize=address,undefined)
endif()

add_library(project_warnings INTERFACE)
target_compile_options(project_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
  -Wunused -Woverloaded-virtual -Wdouble-promotion -Wformat=2
  -Wimplicit-fallthrough)
# GCC 12 at -O2 warns wrongly on `"literal" + std::string` (-Wrestrict, GCC bug 105651,
# fixed in 13): silenced there rather than rewriting every concatenation.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
  target_compile_options(project_warnings INTERFACE -Wno-restrict)
endif()
if(PROCTOR_WERROR)
  target_compile_options(project_warnings INTERFACE -Werror)
endif()

# proctor_module(NAME SOURCES... [LINK libs...]): one static library per module.
function(proctor_module name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LINK" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_link_libraries(${name} PUBLIC project_settings ${ARG_LINK} PRIVATE project_warnings)
endfunction()
