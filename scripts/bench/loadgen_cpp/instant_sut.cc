// A LoadGen C++ driver whose SUT answers every sample inside IssueQuery, for
// measuring LoadGen's own overhead next to our Rust reimplementation
// (scripts/bench/loadgen_issue.sh). Compiled against LoadGen's sources.
//
// usage: instant_sut <server|offline> <target_qps> <min_duration_ms>
//                    <min_query_count> <outdir> [target_latency_ms=10]
//                    [performance_sample_count=1024]
// Prints one JSON line on stdout: the StartTest wall time (the whole test),
// RSS before the test and peak RSS (VmHWM) after it, and the timer slack the
// test ran with. The results are in <outdir>/mlperf_log_summary.txt and
// mlperf_log_detail.txt.
//
// Like for like with the Rust twin (harness/examples/issue_bench.rs):
// - timer slack: set to 1 ns before StartTest, so LoadGen's threads (which
//   inherit it) sleep as precisely as the Rust issuer, which sets 1 ns on its
//   own thread; TIMER_SLACK_NS=<n> in the environment overrides it (0 keeps
//   the process default, 50 us);
// - responses: both answer in chunks of at most 4096 samples from a buffer
//   allocated before the test starts (Offline's one query holds millions of
//   samples; nothing is allocated inside the timed window).

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include <sys/prctl.h>

#include "loadgen.h"
#include "query_sample.h"
#include "query_sample_library.h"
#include "system_under_test.h"
#include "test_settings.h"

namespace {

// Responses handed to QuerySamplesComplete at once: the Rust twin's chunk.
constexpr size_t kChunk = 4096;

// A /proc/self/status field in bytes (VmRSS, VmHWM), or 0.
uint64_t ProcStatusBytes(const char* field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  const size_t len = std::strlen(field);
  while (std::getline(status, line)) {
    if (line.compare(0, len, field) == 0 && line.size() > len &&
        line[len] == ':') {
      return std::strtoull(line.c_str() + len + 1, nullptr, 10) * 1024;
    }
  }
  return 0;
}

class InstantSut : public mlperf::SystemUnderTest {
 public:
  const std::string& Name() override { return name_; }

  InstantSut() : responses_(kChunk, mlperf::QuerySampleResponse{0, 0, 0}) {}

  void IssueQuery(const std::vector<mlperf::QuerySample>& samples) override {
    for (size_t at = 0; at < samples.size(); at += kChunk) {
      const size_t n = std::min(kChunk, samples.size() - at);
      for (size_t i = 0; i < n; ++i) {
        responses_[i].id = samples[at + i].id;
      }
      mlperf::QuerySamplesComplete(responses_.data(), n);
    }
  }

  void FlushQueries() override {}

 private:
  std::string name_ = "instant_sut";
  // IssueQuery is only ever called from LoadGen's single issue thread here
  // (server_num_issue_query_threads = 0), so one buffer, sized before the
  // test, is enough.
  std::vector<mlperf::QuerySampleResponse> responses_;
};

class Qsl : public mlperf::QuerySampleLibrary {
 public:
  explicit Qsl(size_t count) : count_(count) {}
  const std::string& Name() override { return name_; }
  size_t TotalSampleCount() override { return count_; }
  size_t PerformanceSampleCount() override { return count_; }
  void LoadSamplesToRam(
      const std::vector<mlperf::QuerySampleIndex>&) override {}
  void UnloadSamplesFromRam(
      const std::vector<mlperf::QuerySampleIndex>&) override {}

 private:
  std::string name_ = "instant_qsl";
  size_t count_;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr,
                 "usage: %s <server|offline> <target_qps> <min_duration_ms> "
                 "<min_query_count> <outdir> [target_latency_ms=10] "
                 "[performance_sample_count=1024]\n",
                 argv[0]);
    return 2;
  }
  const std::string scenario = argv[1];
  const double qps = std::strtod(argv[2], nullptr);
  const uint64_t min_duration_ms = std::strtoull(argv[3], nullptr, 10);
  const uint64_t min_query_count = std::strtoull(argv[4], nullptr, 10);
  const std::string outdir = argv[5];
  const double target_latency_ms = argc > 6 ? std::strtod(argv[6], nullptr) : 10;
  const size_t samples = argc > 7 ? std::strtoull(argv[7], nullptr, 10) : 1024;

  mlperf::TestSettings settings;
  if (scenario == "server") {
    settings.scenario = mlperf::TestScenario::Server;
  } else if (scenario == "offline") {
    settings.scenario = mlperf::TestScenario::Offline;
  } else {
    std::fprintf(stderr, "unknown scenario %s\n", scenario.c_str());
    return 2;
  }
  settings.mode = mlperf::TestMode::PerformanceOnly;
  settings.server_target_qps = qps;
  settings.offline_expected_qps = qps;
  settings.server_target_latency_ns =
      static_cast<uint64_t>(target_latency_ms * 1e6);
  settings.server_target_latency_percentile = 0.99;
  settings.min_duration_ms = min_duration_ms;
  settings.min_query_count = min_query_count;
  // MLPerf's seeds (mlperf.conf), the same ones the Rust side uses.
  settings.qsl_rng_seed = 2085463073848966840ULL;
  settings.sample_index_rng_seed = 2747215439041700203ULL;
  settings.schedule_rng_seed = 16159082839903944936ULL;

  mlperf::LogSettings log;
  log.log_output.outdir = outdir;
  log.enable_trace = false;

  // 1 ns unless TIMER_SLACK_NS says otherwise; 0 keeps the default.
  const char* slack_env = std::getenv("TIMER_SLACK_NS");
  const unsigned long slack =
      slack_env != nullptr ? std::strtoul(slack_env, nullptr, 10) : 1;
  if (slack > 0 && prctl(PR_SET_TIMERSLACK, slack, 0, 0, 0) != 0) {
    std::perror("prctl(PR_SET_TIMERSLACK)");
    return 1;
  }
  const long timer_slack_ns = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);

  InstantSut sut;
  Qsl qsl(samples);
  const uint64_t rss_before = ProcStatusBytes("VmRSS");
  const auto start = std::chrono::steady_clock::now();
  mlperf::StartTest(&sut, &qsl, settings, log);
  const double wall_s = std::chrono::duration<double>(
                            std::chrono::steady_clock::now() - start)
                            .count();
  std::printf(
      "{\"start_test_wall_s\": %.6f, \"rss_before_bytes\": %llu, "
      "\"peak_rss_bytes\": %llu, \"timer_slack_ns\": %ld}\n",
      wall_s, static_cast<unsigned long long>(rss_before),
      static_cast<unsigned long long>(ProcStatusBytes("VmHWM")),
      timer_slack_ns);
  return 0;
}
