// The one translation unit that compiles Asio and Beast (their
// *_SEPARATE_COMPILATION macros are defined for every target in project_settings), so
// that no other file pays for their implementation.
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
#include <boost/beast/src.hpp>
