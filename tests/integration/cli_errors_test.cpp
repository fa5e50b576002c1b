// Bad files and bad flags give a non-zero exit and one line on stderr that names the file and the problem.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

#include "tandem/model/checkpoint.hpp"
#include "test_env.hpp"

namespace tandem {
namespace {

using testing::RunProgram;

class CliErrorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (testing::SharedDir().empty()) GTEST_SKIP() << "shared folder not found";
    model_ = testing::Stories260KModel().string();
    tokenizer_ = testing::Stories260KTokenizer().string();
  }

  testing::CommandResult Generate(const std::string& model, const std::string& tokenizer) {
    return RunProgram("tandem", {"generate", "--model", model, "--tokenizer", tokenizer, "--prompt", "Hi",
                                 "--steps", "8", "--temperature", "0"});
  }

  static void ExpectOneLineError(const testing::CommandResult& result, const std::string& file,
                                 const std::string& problem) {
    EXPECT_NE(result.exit_code, 0);
    EXPECT_LT(result.exit_code, 128) << "killed by a signal: " << result.err;
    EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result.err;
    EXPECT_NE(result.err.find(file), std::string::npos) << result.err;
    EXPECT_NE(result.err.find(problem), std::string::npos) << result.err;
  }

  std::string Damaged(const std::string& source, const std::string& name,
                      void (*damage)(std::vector<char>&)) {
    auto bytes = testing::ReadBytes(source);
    damage(bytes);
    const std::string path = (dir_ / name).string();
    testing::WriteBytes(path, bytes);
    return path;
  }

  testing::TempDir dir_;
  std::string model_, tokenizer_;
};

TEST_F(CliErrorsTest, TruncatedCheckpoint) {
  const auto path = Damaged(model_, "truncated.bin", [](auto& b) { b.resize(b.size() / 2); });
  ExpectOneLineError(Generate(path, tokenizer_), path, "truncated");
}

TEST_F(CliErrorsTest, CorruptCheckpointHeader) {
  const auto path = Damaged(model_, "corrupt.bin", [](auto& b) {
    const int32_t heads = 7;  // does not divide dim 64
    std::memcpy(b.data() + 12, &heads, 4);
  });
  ExpectOneLineError(Generate(path, tokenizer_), path, "corrupt header");
}

TEST_F(CliErrorsTest, NanWeightsAreCorrupt) {
  const auto path = Damaged(model_, "nan.bin", [](auto& b) { std::memset(b.data() + 200000, 0xff, 4); });
  ExpectOneLineError(Generate(path, tokenizer_), path, "non-finite weight");
}

TEST_F(CliErrorsTest, TruncatedTokenizer) {
  const auto path = Damaged(tokenizer_, "tok.bin", [](auto& b) { b.resize(b.size() - 10); });
  ExpectOneLineError(Generate(model_, path), path, "truncated");
}

TEST_F(CliErrorsTest, TokenizerOfAnotherVocabulary) {
  // A model with 1000 tokens cannot use a 512-token tokenizer, nor a 256-token model.
  for (const int vocab : {1000, 256}) {
    const std::string path = (dir_ / ("vocab" + std::to_string(vocab) + ".bin")).string();
    ASSERT_TRUE(WriteRandomCheckpoint(path,
                                      {.dim = 16,
                                       .hidden_dim = 32,
                                       .n_layers = 1,
                                       .n_heads = 2,
                                       .n_kv_heads = 2,
                                       .vocab_size = vocab,
                                       .seq_len = 16},
                                      1)
                    .ok());
    const auto result = Generate(path, tokenizer_);
    ExpectOneLineError(result, tokenizer_, vocab > 512 ? "truncated" : "trailing");
  }
}

TEST_F(CliErrorsTest, MissingFilesAndBadFlags) {
  ExpectOneLineError(Generate("/nonexistent/m.bin", tokenizer_), "/nonexistent/m.bin", "cannot open");
  auto result = RunProgram("tandem", {"generate", "--model", model_, "--tokenizer", tokenizer_, "--bogus"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("unknown flag --bogus"), std::string::npos);
  result = RunProgram("tandem", {"generate", "--model", model_, "--tokenizer", tokenizer_, "--split", "9"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("--split 9 is not within 0..5"), std::string::npos);
  result = RunProgram("tandem", {"generate", "--model", model_, "--tokenizer", tokenizer_, "--top-p", "0"});
  EXPECT_NE(result.exit_code, 0);
  result = RunProgram("tandem", {"generate", "--tokenizer", tokenizer_});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("--model is required"), std::string::npos);
  result =
      RunProgram("tandem", {"generate", "--model", model_, "--tokenizer", tokenizer_, "--draft", "oracle"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("unknown drafter 'oracle'"), std::string::npos) << result.err;
  result = RunProgram("tandem",
                      {"generate", "--model", model_, "--tokenizer", tokenizer_, "--draft-tokens", "65"});
  EXPECT_EQ(result.exit_code, 2);
  // A draft model that cannot be loaded is named with its problem.
  result = RunProgram("tandem", {"generate", "--model", model_, "--tokenizer", tokenizer_, "--draft",
                                 "model:/nonexistent/draft.bin"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("/nonexistent/draft.bin"), std::string::npos) << result.err;
  result = RunProgram("tandem", {"frobnicate"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_EQ(RunProgram("tandem", {"generate", "--help"}).exit_code, 0);
}

// TANDEM_KERNELS naming no table of this build is one line naming the problem, and exit 2.
TEST_F(CliErrorsTest, UnknownKernelTable) {
  const auto result = RunProgram(
      "/usr/bin/env", {"TANDEM_KERNELS=sse9", (testing::BinDir() / "tandem").string(), "generate", "--model",
                       model_, "--tokenizer", tokenizer_, "--prompt", "Hi", "--steps", "4"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("TANDEM_KERNELS=sse9 names no kernel table of this build (ref, "),
            std::string::npos)
      << result.err;
  EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result.err;
}

}  // namespace
}  // namespace tandem
