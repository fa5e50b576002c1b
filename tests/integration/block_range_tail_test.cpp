// A tail with a block-range checkpoint (`tandem convert --blocks A:B`): it holds only those blocks, serves
// private-output sessions within them with the golden outputs, refuses any other cut or a session that
// needs the head it lacks, refuses an edge whose weights differ in those blocks, and holds less memory than
// a tail with the whole model.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <memory>
#include <string>

#include "test_env.hpp"

namespace tandem {
namespace {

using testing::BackgroundProcess;
using testing::RunProgram;

// tandem-cloud on a free loopback port, plaintext (CURVE has its own tests), no HTTP.
struct Tail {
  explicit Tail(const std::string& model)
      : process("tandem-cloud", {"--model", model, "--insecure", "--bind", "tcp://127.0.0.1:0", "--http", "",
                                 "--workers", "1"}) {
    serving = process.WaitForLine("msg=serving", 120000);
    endpoint = testing::LogField(serving, "endpoint");
  }
  BackgroundProcess process;
  std::string serving;  // the log line: endpoint, blocks, head, resident_mb
  std::string endpoint;
};

std::string ConvertBlocks(const std::string& model, const std::string& blocks,
                          const std::filesystem::path& out) {
  const auto result =
      RunProgram("tandem", {"convert", "--model", model, "--blocks", blocks, "--out", out.string()});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  return out.string();
}

class BlockRangeTailTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (testing::SharedDir().empty()) GTEST_SKIP() << "shared folder not found";
  }
  testing::TempDir dir_;
};

TEST_F(BlockRangeTailTest, ServesItsBlocksWithTheGoldenOutputsAndRefusesTheRest) {
  Tail tail(ConvertBlocks(testing::Stories260KModel().string(), "1:3", dir_.path() / "blocks-1-3"));
  ASSERT_FALSE(tail.endpoint.empty()) << tail.process.Stderr();
  EXPECT_EQ(testing::LogField(tail.serving, "blocks"), "1:3");
  EXPECT_EQ(testing::LogField(tail.serving, "head"), "no");
  const auto generate = [&](const nlohmann::json& golden, std::vector<std::string> split) {
    std::vector<std::string> flags = {"--temperature", "0", "--cloud", tail.endpoint, "--insecure"};
    flags.insert(flags.end(), split.begin(), split.end());
    return RunProgram("tandem", testing::GenerateArgs(golden["prompt"], golden["steps"], flags), 60);
  };
  for (const nlohmann::json& golden : testing::GoldenRecords()) {
    const auto result = generate(golden, {"--split", "1", "--tail-end", "3"});
    ASSERT_EQ(result.exit_code, 0) << result.err;
    EXPECT_EQ(nlohmann::json::parse(result.out)["ids"], golden["ids"]) << golden["prompt"];
  }
  const nlohmann::json golden = testing::GoldenRecords().front();
  for (const auto& [split, problem] :
       {std::pair<std::vector<std::string>, std::string>{{"--split", "1"}, "holds blocks 1:3 only, not 1:5"},
        {{"--split", "0", "--tail-end", "3"}, "holds blocks 1:3 only, not 0:3"},
        {{"--split", "2", "--tail-end", "4"}, "holds blocks 1:3 only, not 2:4"}}) {
    const auto refused = generate(golden, split);
    EXPECT_NE(refused.exit_code, 0);
    EXPECT_NE(refused.err.find(problem), std::string::npos) << refused.err;
  }
}

TEST_F(BlockRangeTailTest, AnEdgeWithOtherWeightsInThoseBlocksIsRefusedAtHello) {
  const std::string ours = (dir_.path() / "ours.bin").string(),
                    theirs = (dir_.path() / "theirs.bin").string();
  for (const auto& [path, seed] : {std::pair{ours, "1"}, {theirs, "2"}}) {
    const auto made = RunProgram(
        "tandem", {"make-model", "--shape", "tiny", "--vocab", "512", "--seed", seed, "--out", path});
    ASSERT_EQ(made.exit_code, 0) << made.err;
  }
  Tail tail(ConvertBlocks(theirs, "1:2", dir_.path() / "theirs-1-2"));
  ASSERT_FALSE(tail.endpoint.empty()) << tail.process.Stderr();
  const auto result =
      RunProgram("tandem", {"generate", "--model", ours, "--tokenizer",
                            testing::Stories260KTokenizer().string(), "--prompt", "Once", "--steps", "8",
                            "--split", "1", "--tail-end", "2", "--cloud", tail.endpoint, "--insecure"});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.err.find("fingerprint_mismatch"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("block 1 differs"), std::string::npos) << result.err;
}

// Weights are mapped and paged in as they are read: a tail that holds two blocks of six keeps the rest
// (and the 32000-row embedding) out of memory altogether.
TEST_F(BlockRangeTailTest, HoldsLessMemoryThanATailWithTheWholeModel) {
  const std::string whole = (dir_.path() / "stories15M.bin").string();
  const auto made =
      RunProgram("tandem", {"make-model", "--shape", "stories15M", "--seed", "3", "--out", whole});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const std::string part = ConvertBlocks(whole, "1:3", dir_.path() / "blocks-1-3");
  double resident_mb[2] = {0, 0};
  for (int i = 0; i < 2; ++i) {
    Tail tail(i == 0 ? whole : part);
    ASSERT_FALSE(tail.endpoint.empty()) << tail.process.Stderr();
    resident_mb[i] = std::stod(testing::LogField(tail.serving, "resident_mb"));
  }
  std::printf("resident after start-up: whole model %.0f MiB, blocks 1:3 %.0f MiB\n", resident_mb[0],
              resident_mb[1]);
  // stories15M: 58 MiB of weights, of which blocks 1:3 are 6.6 MiB.
  EXPECT_LT(resident_mb[1], resident_mb[0] - 30);
}

TEST_F(BlockRangeTailTest, ConvertRefusesARangeOutsideTheModel) {
  for (const char* blocks : {"3:3", "0:6", "4:2", "x"}) {
    const auto result = RunProgram("tandem", {"convert", "--model", testing::Stories260KModel().string(),
                                              "--blocks", blocks, "--out", (dir_.path() / "out").string()});
    EXPECT_EQ(result.exit_code, 2) << blocks;
    EXPECT_NE(result.err.find("--blocks must be A:B"), std::string::npos) << result.err;
  }
}

}  // namespace
}  // namespace tandem
