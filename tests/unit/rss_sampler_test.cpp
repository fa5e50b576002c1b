// tandem loadgen's process watching on this test's own process: --watch specs, reading VmRSS, and the
// sampler's series (a sample at the start and one at Stop, whatever the interval).
#include "rss_sampler.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace tandem::cli {
namespace {

TEST(RssSamplerTest, ParsesWatchSpecs) {
  const std::string self = std::to_string(getpid());
  auto watched = ParseWatch({"edge=" + self, "tail=" + self});
  ASSERT_TRUE(watched.ok()) << watched.status().ToString();
  ASSERT_EQ(watched->size(), 2u);
  EXPECT_EQ((*watched)[0].name, "edge");
  EXPECT_EQ((*watched)[1].pid, getpid());
  EXPECT_EQ((*watched)[1].peak_kb, -1);
}

TEST(RssSamplerTest, RefusesMalformedSpecs) {
  for (const std::string spec : {"edge", "=12", "edge=", "edge=12x", "edge=0", "edge=-3"}) {
    const auto watched = ParseWatch({spec});
    ASSERT_FALSE(watched.ok()) << spec;
    EXPECT_EQ(watched.status().code(), StatusCode::kInvalidArgument) << spec;
  }
  EXPECT_EQ(ParseWatch({"gone=2147483646"}).status().message(),
            "--watch: cannot read /proc/2147483646/status");
}

TEST(RssSamplerTest, ReadsResidentMemory) {
  EXPECT_GT(ReadRssKb(getpid()), 0);
  EXPECT_EQ(ReadRssKb(2147483646), -1);
  EXPECT_EQ(KibToMb(-1), -1);
  EXPECT_EQ(KibToMb(2048), 2.0);
}

TEST(RssSamplerTest, SamplesAtTheStartAndAtStop) {
  std::vector<WatchedProcess> watched = {{.name = "self", .pid = getpid()}};
  int calls = 0;
  RssSampler sampler(watched, std::chrono::hours(1), /*progress=*/false, [&calls] {
    ++calls;
    return RequestCounts{.requests = 3, .ok = 2};
  });
  sampler.Stop();
  sampler.Stop();  // idempotent
  const nlohmann::json& series = sampler.series();
  ASSERT_EQ(series.size(), 2u);
  EXPECT_EQ(calls, 2);
  EXPECT_GT(series[1]["self_mb"].get<double>(), 0);
  EXPECT_EQ(series[1]["requests"], 3);
  EXPECT_EQ(series[1]["ok"], 2);
  EXPECT_GE(series[1]["t_s"].get<double>(), series[0]["t_s"].get<double>());
  EXPECT_GT(watched[0].peak_kb, 0);
}

}  // namespace
}  // namespace tandem::cli
