// Prints sequences from libstdc++'s <random> and std::shuffle as JSON, the
// expected values for loadgen/src/rng.rs (fixture: loadgen/tests/fixtures/
// libstdcxx_rng.json). Regenerate with tests/differential/gen_rng_fixture.sh.
//
// These are the same templates MLPerf LoadGen instantiates; libstdc++ >= 11
// is required (older releases use a different uniform_int_distribution).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#if !defined(_GLIBCXX_RELEASE) || _GLIBCXX_RELEASE < 11
#error "needs libstdc++ >= 11 (the Lemire uniform_int_distribution)"
#endif

static uint64_t bits(double d) {
  uint64_t u;
  std::memcpy(&u, &d, sizeof u);
  return u;
}

static const uint64_t kSeeds[] = {0ULL,
                                  1ULL,
                                  5489ULL,
                                  4294967301ULL,  // 2^32 + 5
                                  2085463073848966840ULL,
                                  2747215439041700203ULL,
                                  16159082839903944936ULL};

static void sep(bool* first) {
  if (!*first) std::printf(",");
  *first = false;
}

int main() {
  std::printf("{\n\"mt19937\": [");
  bool first = true;
  for (uint64_t seed : kSeeds) {
    std::mt19937 g(seed);
    sep(&first);
    std::printf("\n{\"seed\": %llu, \"first\": [", (unsigned long long)seed);
    for (int i = 0; i < 8; i++)
      std::printf("%s%llu", i ? "," : "", (unsigned long long)g());
    g.discard(10000 - 9);
    std::printf("], \"ten_thousandth\": %llu}", (unsigned long long)g());
  }

  // uniform_int_distribution<int>, as LoadGen's SampleDistribution uses it.
  std::printf("],\n\"uniform_int\": [");
  first = true;
  const long long kHis[] = {0, 1, 2, 6, 99, 1023, 13367, 24575, 65536, 2147483646};
  for (long long hi : kHis) {
    std::mt19937 g(hi * 7 + 3);
    std::uniform_int_distribution<int> d(0, int(hi));
    sep(&first);
    std::printf("\n{\"seed\": %lld, \"a\": 0, \"b\": %lld, \"values\": [", hi * 7 + 3, hi);
    for (int i = 0; i < 24; i++) std::printf("%s%d", i ? "," : "", d(g));
    std::printf("]}");
  }
  // Unsigned 64-bit ranges: the full 32-bit range and the upscaling path.
  const unsigned long long kWide[][2] = {{0, 4294967295ULL},
                                         {7, 4294967302ULL},
                                         {0, 1ULL << 40},
                                         {5, 18446744073709551615ULL},
                                         {0, 18446744073709551615ULL}};
  for (auto& r : kWide) {
    std::mt19937 g(r[1] ^ 0x5bd1e995);
    std::uniform_int_distribution<unsigned long long> d(r[0], r[1]);
    sep(&first);
    std::printf("\n{\"seed\": %llu, \"a\": %llu, \"b\": %llu, \"values\": [",
                (unsigned long long)(r[1] ^ 0x5bd1e995), r[0], r[1]);
    for (int i = 0; i < 24; i++) std::printf("%s%llu", i ? "," : "", d(g));
    std::printf("]}");
  }

  // std::shuffle of iota(n) with size_t elements, as LoadGen shuffles.
  std::printf("],\n\"shuffle\": [");
  first = true;
  const size_t kNs[] = {1, 2, 3, 4, 5, 10, 11, 100, 1001, 65535, 65536, 100003};
  for (size_t n : kNs) {
    std::mt19937 g(n + 11);
    std::vector<size_t> v(n);
    std::iota(v.begin(), v.end(), size_t(0));
    std::shuffle(v.begin(), v.end(), g);
    // A second shuffle continues from the first, as equal issue does.
    std::shuffle(v.begin(), v.end(), g);
    uint64_t h = 1469598103934665603ULL;  // FNV-1a over the values
    for (size_t x : v) {
      for (int b = 0; b < 8; b++) {
        h ^= (x >> (8 * b)) & 0xff;
        h *= 1099511628211ULL;
      }
    }
    sep(&first);
    std::printf("\n{\"seed\": %zu, \"n\": %zu, \"fnv1a\": %llu, \"next\": %llu, \"head\": [",
                n + 11, n, (unsigned long long)h, (unsigned long long)g());
    for (size_t i = 0; i < std::min<size_t>(n, 64); i++)
      std::printf("%s%zu", i ? "," : "", v[i]);
    std::printf("]}");
  }

  // Real distributions, as bit patterns of the doubles.
  std::printf("],\n\"canonical\": [");
  first = true;
  for (uint64_t seed : kSeeds) {
    std::mt19937 g(seed);
    sep(&first);
    std::printf("\n{\"seed\": %llu, \"bits\": [", (unsigned long long)seed);
    for (int i = 0; i < 16; i++)
      std::printf("%s%llu", i ? "," : "",
                  (unsigned long long)bits(std::generate_canonical<double, 53>(g)));
    std::printf("]}");
  }
  std::printf("],\n\"uniform_real\": [");
  first = true;
  for (uint64_t seed : kSeeds) {
    std::mt19937 g(seed);
    std::uniform_real_distribution<double> d(0.0, 1.0);
    sep(&first);
    std::printf("\n{\"seed\": %llu, \"bits\": [", (unsigned long long)seed);
    for (int i = 0; i < 16; i++)
      std::printf("%s%llu", i ? "," : "", (unsigned long long)bits(d(g)));
    std::printf("]}");
  }
  // Server arrivals: exponential_distribution, then duration_cast to ns.
  std::printf("],\n\"exponential\": [");
  first = true;
  const double kLambdas[] = {1.0, 0.5, 1000.0, 12345.678, 1e6};
  for (double lambda : kLambdas) {
    std::mt19937 g(16159082839903944936ULL);
    std::exponential_distribution<> d(lambda);
    sep(&first);
    std::printf("\n{\"seed\": 16159082839903944936, \"lambda_bits\": %llu, \"bits\": [",
                (unsigned long long)bits(lambda));
    std::vector<long long> ns;
    for (int i = 0; i < 16; i++) {
      double x = d(g);
      ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(
                       std::chrono::duration<double>(x))
                       .count());
      std::printf("%s%llu", i ? "," : "", (unsigned long long)bits(x));
    }
    std::printf("], \"ns\": [");
    for (size_t i = 0; i < ns.size(); i++)
      std::printf("%s%lld", i ? "," : "", ns[i]);
    std::printf("]}");
  }
  std::printf("]\n}\n");
  return 0;
}
