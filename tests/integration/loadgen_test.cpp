// `tandem loadgen` against a real tail and edge on loopback: a short mixed plain/streamed load completes
// without unexpected errors, and the JSON report holds the counts, latency percentiles and RSS readings;
// over HTTPS it passes with the edge's CA (--ca) and fails, saying why, without it.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <string>
#include <vector>

#include "cloud_tail_process.hpp"
#include "http_client.hpp"
#include "test_env.hpp"

namespace tandem {
namespace {

using nlohmann::json;
using testing::CloudTailProcess;
using testing::EdgeProcess;

TEST(LoadgenTest, ShortLoadPassesAndReportsLatencyAndRss) {
  if (testing::SharedDir().empty()) GTEST_SKIP() << "shared folder not found";
  CloudTailProcess tail;
  ASSERT_TRUE(tail.started()) << tail.log();
  // A queue deep enough for all 8 clients, so no request needs to be shed.
  EdgeProcess edge(tail, {"--split", "2", "--max-concurrent", "2", "--max-queue", "16"});
  ASSERT_TRUE(edge.started()) << edge.log();
  ASSERT_TRUE(testing::AwaitReady(edge)) << edge.log();

  testing::TempDir dir;
  const std::string report_path = (dir / "report.json").string();
  const testing::CommandResult run = testing::RunProgram(
      "tandem",
      {"loadgen", "--url", "http://" + edge.address(), "--clients", "8", "--requests", "3", "--warmup", "1",
       "--max-tokens", "16", "--watch", "edge=" + std::to_string(edge.process().pid()), "--watch",
       "cloud=" + std::to_string(tail.process().pid()), "--report", report_path, "--timeout-ms", "20000"},
      60);
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err << edge.log();
  EXPECT_NE(run.out.find("PASS"), std::string::npos) << run.out;

  std::ifstream file(report_path);
  const json report = json::parse(file, nullptr, false);
  ASSERT_TRUE(report.is_object()) << run.out;
  // The queue holds all 8 clients, but the edge's slot wait is not FIFO: on a loaded machine a request
  // may still time out in the queue, which is a deliberate 503, not an error.
  const int ok = report["ok"];
  EXPECT_EQ(report["requests"], 24);
  EXPECT_EQ(report["errors"]["total"], 0);
  EXPECT_EQ(ok + report["deliberate_503"]["total"].get<int>(), 24);
  EXPECT_GE(ok, 20);
  EXPECT_TRUE(report["passed"].get<bool>());
  const json& total = report["latency_ms"]["total"];
  EXPECT_EQ(total["count"], ok);
  EXPECT_GT(total["p50"].get<double>(), 0);
  EXPECT_LE(total["p50"].get<double>(), total["p99"].get<double>());
  EXPECT_LE(total["p99"].get<double>(), total["max"].get<double>());
  // Half the requests stream (deterministically per index): some TTFTs, never above their totals' max.
  const json& ttft = report["latency_ms"]["ttft"];
  EXPECT_GT(ttft["count"].get<int>(), 0);
  EXPECT_LT(ttft["count"].get<int>(), ok);
  EXPECT_LE(ttft["max"].get<double>(), total["max"].get<double>());
  EXPECT_GT(report["tokens"].get<int>(), 0);
  for (const char* name : {"edge", "cloud"}) {
    EXPECT_GT(report["rss"][name]["before_mb"].get<double>(), 1) << name;
    EXPECT_GT(report["rss"][name]["after_mb"].get<double>(), 1) << name;
  }
  EXPECT_FALSE(report["rss_series"].empty());
}

// A stopped edge is an unexpected error (transport), not a pass: the exit code makes loadgen a test.
TEST(LoadgenTest, UnreachableEdgeFails) {
  const testing::CommandResult run = testing::RunProgram(
      "tandem", {"loadgen", "--url", "http://127.0.0.1:" + std::to_string(testing::FreePort()), "--clients",
                 "2", "--requests", "1", "--timeout-ms", "2000"});
  EXPECT_EQ(run.exit_code, 1) << run.out << run.err;
  EXPECT_NE(run.out.find("transport:UNAVAILABLE"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("FAIL"), std::string::npos) << run.out;
}

TEST(LoadgenTest, HttpsWithTheCaPassesAndWithoutItFails) {
  if (testing::SharedDir().empty()) GTEST_SKIP() << "shared folder not found";
  testing::TempDir dir;
  const std::string prefix = (dir / "dev").string();
  const testing::CommandResult made = testing::RunProgram("tandem", {"tls-selfsigned", "--out", prefix});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  EdgeProcess edge({"--tls-cert", prefix + "-cert.pem", "--tls-key", prefix + "-key.pem"});
  ASSERT_TRUE(edge.started()) << edge.log();
  const std::vector<std::string> load = {
      "loadgen",      "--url", "https://" + edge.address(), "--clients", "2", "--requests", "2",
      "--max-tokens", "8"};
  std::vector<std::string> with_ca = load;
  with_ca.insert(with_ca.end(), {"--ca", prefix + "-ca.pem"});
  const testing::CommandResult trusted = testing::RunProgram("tandem", with_ca, 60);
  EXPECT_EQ(trusted.exit_code, 0) << trusted.out << trusted.err << edge.log();
  EXPECT_NE(trusted.out.find("PASS"), std::string::npos) << trusted.out;

  const testing::CommandResult untrusted = testing::RunProgram("tandem", load, 60);
  EXPECT_EQ(untrusted.exit_code, 1) << untrusted.out << untrusted.err;
  EXPECT_NE(untrusted.out.find("FAIL"), std::string::npos) << untrusted.out;
  EXPECT_NE(untrusted.out.find("certificate verify failed"), std::string::npos) << untrusted.out;

  const testing::CommandResult missing_ca = testing::RunProgram(
      "tandem", {"loadgen", "--url", "https://" + edge.address(), "--ca", prefix + "-none.pem"});
  EXPECT_EQ(missing_ca.exit_code, 2) << missing_ca.err;
  EXPECT_NE(missing_ca.err.find(prefix + "-none.pem"), std::string::npos) << missing_ca.err;
}

}  // namespace
}  // namespace tandem
