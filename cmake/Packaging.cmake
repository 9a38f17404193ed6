# Install rules and the Debian package (CPack DEB): `scripts/package.sh`, or `cpack -G DEB`
# in a build folder. The package's layout is the unit's: /usr/bin/runner,
# /lib/systemd/system/proctor-runner.service, /etc/proctor/runner.yaml (a conffile).
include(GNUInstallDirs)

install(TARGETS runner RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
# Absolute: where Debian 12's systemd and dpkg look, whatever the install prefix.
install(FILES ${PROJECT_SOURCE_DIR}/packaging/proctor-runner.service DESTINATION /lib/systemd/system)
install(FILES ${PROJECT_SOURCE_DIR}/packaging/runner.yaml DESTINATION /etc/proctor)
# /usr/share/doc/PACKAGE, as Debian has it (the unit's Documentation= points there).
install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/proctor-runner)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME proctor-runner)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "Proctor maintainers <proctor@example.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Proctor remote test-execution agent")
set(CPACK_PACKAGE_DESCRIPTION
  "runner polls a backend for test tasks, fetches the submission (git, svn, http, s3), runs a test service against it and posts the JUnit results. Runs as the systemd service proctor-runner.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # proctor-runner_VERSION_ARCH.deb
set(CPACK_DEBIAN_PACKAGE_SECTION devel)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Shared libraries found by dpkg-shlibdeps (libc, OpenSSL, libgit2, ...) are appended to
# these. libarchive and libsystemd are dlopen'ed (agent/archive.cpp, service_notifier.cpp),
# so dpkg-shlibdeps cannot see them; svn repositories run the `svn` client; the postinst
# uses adduser.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser, libarchive13, libsystemd0, subversion")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "ca-certificates, python3-pytest")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${PROJECT_SOURCE_DIR}/packaging/debian/conffiles
  ${PROJECT_SOURCE_DIR}/packaging/debian/postinst
  ${PROJECT_SOURCE_DIR}/packaging/debian/prerm
  ${PROJECT_SOURCE_DIR}/packaging/debian/postrm)
# Maintainer scripts 0755 and conffiles 0644 whatever the checkout's modes.
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
