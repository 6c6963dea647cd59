// A thin extern "C" layer over MLPerf LoadGen's C++ API, for the Rust side
// of loadgen-official (src/ffi.rs declares the same functions).
//
// LoadGen's own C API (bindings/c_api.h) takes TestSettings by C++
// reference, always uses default LogSettings (logs in the working
// directory) and gives the flush callback no client data, so this shim has
// its own trampolines. It calls LoadGen unmodified: every sample, response
// and setting goes through LoadGen's public functions.

#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>
#include <vector>

#include "loadgen.h"
#include "query_sample.h"
#include "query_sample_library.h"
#include "system_under_test.h"
#include "test_settings.h"
#include "version.h"

namespace {

// The Rust side mirrors these layouts (#[repr(C)]); keep them checked.
static_assert(sizeof(mlperf::QuerySample) == 2 * sizeof(uintptr_t),
              "QuerySample layout");
static_assert(sizeof(mlperf::QuerySampleResponse) == 4 * sizeof(uint64_t),
              "QuerySampleResponse layout");

using IssueCb = void (*)(uintptr_t, const mlperf::QuerySample*, size_t);
using FlushCb = void (*)(uintptr_t);
using SamplesCb = void (*)(uintptr_t, const size_t*, size_t);

class Sut : public mlperf::SystemUnderTest {
 public:
  Sut(uintptr_t ctx, std::string name, IssueCb issue, FlushCb flush)
      : ctx_(ctx), name_(std::move(name)), issue_(issue), flush_(flush) {}
  const std::string& Name() override { return name_; }
  void IssueQuery(const std::vector<mlperf::QuerySample>& samples) override {
    issue_(ctx_, samples.data(), samples.size());
  }
  void FlushQueries() override { flush_(ctx_); }

 private:
  uintptr_t ctx_;
  std::string name_;
  IssueCb issue_;
  FlushCb flush_;
};

class Qsl : public mlperf::QuerySampleLibrary {
 public:
  Qsl(uintptr_t ctx, std::string name, size_t total, size_t performance,
      SamplesCb load, SamplesCb unload)
      : ctx_(ctx),
        name_(std::move(name)),
        total_(total),
        performance_(performance),
        load_(load),
        unload_(unload) {}
  const std::string& Name() override { return name_; }
  size_t TotalSampleCount() override { return total_; }
  size_t PerformanceSampleCount() override { return performance_; }
  void LoadSamplesToRam(
      const std::vector<mlperf::QuerySampleIndex>& samples) override {
    load_(ctx_, samples.data(), samples.size());
  }
  void UnloadSamplesFromRam(
      const std::vector<mlperf::QuerySampleIndex>& samples) override {
    unload_(ctx_, samples.data(), samples.size());
  }

 private:
  uintptr_t ctx_;
  std::string name_;
  size_t total_;
  size_t performance_;
  SamplesCb load_;
  SamplesCb unload_;
};

}  // namespace

extern "C" {

// Settings: LoadGen's TestSettings, filled by its own FromConfig.
mlperf::TestSettings* hlg_settings_new(int scenario, int mode) {
  auto* s = new mlperf::TestSettings();
  s->scenario = static_cast<mlperf::TestScenario>(scenario);
  s->mode = static_cast<mlperf::TestMode>(mode);
  return s;
}

void hlg_settings_free(mlperf::TestSettings* s) { delete s; }

// LoadGen's TestSettings::FromConfig with conf_type 1: the mlperf.conf
// LoadGen embeds, then the user.conf at `path`. Returns FromConfig's result
// (0: read), or -1 when it threw.
int hlg_settings_from_config(mlperf::TestSettings* s, const char* path,
                             const char* model, const char* scenario) {
  try {
    return s->FromConfig(path, model, scenario, 1);
  } catch (...) {
    return -1;
  }
}

// The flags that override the conf files, as the Rust side applies them.
void hlg_settings_set_target_qps(mlperf::TestSettings* s, double qps) {
  if (s->scenario == mlperf::TestScenario::Server) {
    s->server_target_qps = qps;
  } else {
    s->offline_expected_qps = qps;
  }
}
void hlg_settings_set_min_duration_ms(mlperf::TestSettings* s, uint64_t v) {
  s->min_duration_ms = v;
}
void hlg_settings_set_min_query_count(mlperf::TestSettings* s, uint64_t v) {
  s->min_query_count = v;
}
void hlg_settings_set_max_duration_ms(mlperf::TestSettings* s, uint64_t v) {
  s->max_duration_ms = v;
}

// mlperf::StartTest with logs in `outdir`. Blocks until the test ends; the
// callbacks run on LoadGen's threads meanwhile. Returns 0, or -1 when
// LoadGen threw.
int hlg_start_test(uintptr_t ctx, const char* sut_name, const char* qsl_name,
                   size_t total_samples, size_t performance_samples,
                   IssueCb issue, FlushCb flush, SamplesCb load,
                   SamplesCb unload, const mlperf::TestSettings* settings,
                   const char* outdir, int enable_trace,
                   const char* audit_config) {
  try {
    Sut sut(ctx, sut_name, issue, flush);
    Qsl qsl(ctx, qsl_name, total_samples, performance_samples, load, unload);
    mlperf::LogSettings log;
    log.log_output.outdir = outdir;
    log.enable_trace = enable_trace != 0;
    mlperf::StartTest(&sut, &qsl, *settings, log, audit_config);
    return 0;
  } catch (...) {
    return -1;
  }
}

void hlg_query_samples_complete(mlperf::QuerySampleResponse* responses,
                                size_t count) {
  mlperf::QuerySamplesComplete(responses, count);
}

void hlg_first_token_complete(mlperf::QuerySampleResponse* responses,
                              size_t count) {
  mlperf::FirstTokenComplete(responses, count);
}

// The library's own identity (its generated version_generated.cc).
const char* hlg_version() { return mlperf::LoadgenVersion().c_str(); }
const char* hlg_git_revision() {
  return mlperf::LoadgenGitRevision().c_str();
}

}  // extern "C"
