// Google Benchmark of fetching code: a fresh git clone against reusing the cached clone
// (fetch + hard reset + clean) of the same repository, side by side in one run, and an
// http archive download + unpack (the URL from PROCTOR_BENCH_ARCHIVE_URL; see
// bench/fetch_vs_curl.sh, which compares it with curl | bsdtar).

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <benchmark/benchmark.h>

#include "agent/archive_fetcher.hpp"
#include "agent/git_fetcher.hpp"

namespace fs = std::filesystem;

namespace {

// A git repository of `files` small source files, made once per process.
const fs::path& repository(int files) {
  static const fs::path root = [files] {
    const fs::path dir = fs::temp_directory_path() / ("proctor-bench-git-" + std::to_string(::getpid()));
    fs::create_directories(dir / "src");
    for (int i = 0; i < files; ++i) {
      std::ofstream(dir / "src" / ("module_" + std::to_string(i) + ".py"))
          << "def f_" << i << "(x):\n    return x * " << i << "  # " << std::string(200, 'x') << "\n";
    }
    const std::string git = "cd '" + dir.string() +
                            "' && git init -q -b main && git add -A && "
                            "git -c user.name=b -c user.email=b@x commit -q -m files";
    if (std::system(git.c_str()) != 0) std::abort();
    return dir;
  }();
  return root;
}

void BM_git_fresh_clone(benchmark::State& state) {
  const fs::path& repo = repository(static_cast<int>(state.range(0)));
  proctor::GitFetcher fetcher;
  const fs::path cache = repo.parent_path() / (repo.filename().string() + "-fresh");
  for (auto _ : state) {
    state.PauseTiming();
    fs::remove_all(cache);
    state.ResumeTiming();
    auto checkout = fetcher.fetch(proctor::SourceSpec("file://" + repo.string()), cache, {});
    if (!checkout) state.SkipWithError(checkout.error().message.c_str());
  }
  fs::remove_all(cache);
  state.counters["files"] = static_cast<double>(state.range(0));
}
BENCHMARK(BM_git_fresh_clone)->Arg(5000)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_git_cached_reuse(benchmark::State& state) {
  const fs::path& repo = repository(static_cast<int>(state.range(0)));
  proctor::GitFetcher fetcher;
  const fs::path cache = repo.parent_path() / (repo.filename().string() + "-reuse");
  fs::remove_all(cache);
  const proctor::SourceSpec source("file://" + repo.string());
  if (!fetcher.fetch(source, cache, {})) state.SkipWithError("the first clone failed");
  for (auto _ : state) {
    auto checkout = fetcher.fetch(source, cache, {});
    if (!checkout || !checkout->reused) state.SkipWithError("the cached clone was not reused");
  }
  fs::remove_all(cache);
  state.counters["files"] = static_cast<double>(state.range(0));
}
BENCHMARK(BM_git_cached_reuse)->Arg(5000)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_http_archive_fetch_unpack(benchmark::State& state) {
  const char* url = std::getenv("PROCTOR_BENCH_ARCHIVE_URL");
  if (url == nullptr) {
    state.SkipWithError("set PROCTOR_BENCH_ARCHIVE_URL (bench/fetch_vs_curl.sh does)");
    return;
  }
  proctor::HttpArchiveFetcher fetcher(proctor::ArchiveFetchSettings{});
  const fs::path cache = fs::temp_directory_path() / ("proctor-bench-http-" + std::to_string(::getpid()));
  for (auto _ : state) {
    auto checkout = fetcher.fetch(proctor::SourceSpec(url), cache, {});
    if (!checkout) state.SkipWithError(checkout.error().message.c_str());
  }
  fs::remove_all(cache);
}
BENCHMARK(BM_http_archive_fetch_unpack)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(5);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  std::error_code ec;
  fs::remove_all(fs::temp_directory_path() / ("proctor-bench-git-" + std::to_string(::getpid())), ec);
  return 0;
}
