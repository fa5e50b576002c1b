#include "tandem/model/checkpoint.hpp"

#include <gtest/gtest.h>

#include <cstring>

#include "test_env.hpp"

namespace tandem {
namespace {

ModelConfig SmallConfig() {
  return {.dim = 16,
          .hidden_dim = 40,
          .n_layers = 3,
          .n_heads = 4,
          .n_kv_heads = 2,
          .vocab_size = 32,
          .seq_len = 24};
}

TEST(CheckpointTest, LoadsStories260K) {
  if (testing::SharedDir().empty()) GTEST_SKIP() << "shared folder not found";
  auto checkpoint = Checkpoint::Load(testing::Stories260KModel().string());
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status().ToString();
  const ModelConfig& config = (*checkpoint)->config();
  EXPECT_EQ(config.dim, 64);
  EXPECT_EQ(config.hidden_dim, 172);
  EXPECT_EQ(config.n_layers, 5);
  EXPECT_EQ(config.n_heads, 8);
  EXPECT_EQ(config.n_kv_heads, 4);
  EXPECT_EQ(config.vocab_size, 512);
  EXPECT_EQ(config.seq_len, 512);
  EXPECT_TRUE(config.shared_classifier);
  EXPECT_EQ((*checkpoint)->classifier(), (*checkpoint)->token_embedding());
}

TEST(CheckpointTest, RandomCheckpointRoundTripsWithSeparateClassifier) {
  testing::TempDir dir;
  ModelConfig config = SmallConfig();
  config.shared_classifier = false;
  const std::string path = (dir / "m.bin").string();
  ASSERT_TRUE(WriteRandomCheckpoint(path, config, 3).ok());
  auto checkpoint = Checkpoint::Load(path);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status().ToString();
  EXPECT_FALSE((*checkpoint)->config().shared_classifier);
  EXPECT_NE((*checkpoint)->classifier(), (*checkpoint)->token_embedding());
  EXPECT_EQ((*checkpoint)->file().size(), *Checkpoint::ExpectedFileSize(config));
  EXPECT_EQ((*checkpoint)->block(2).rms_ffn[0], 1.0f);
  // The classifier is the last tensor: it ends exactly at the end of the file.
  const auto* end = reinterpret_cast<const std::byte*>((*checkpoint)->classifier() + 32 * 16);
  EXPECT_EQ(end, (*checkpoint)->file().bytes().data() + (*checkpoint)->file().size());
  // Same seed, same bytes; another seed, another fingerprint.
  ASSERT_TRUE(WriteRandomCheckpoint((dir / "same.bin").string(), config, 3).ok());
  ASSERT_TRUE(WriteRandomCheckpoint((dir / "other.bin").string(), config, 4).ok());
  EXPECT_EQ((*Checkpoint::Load((dir / "same.bin").string()))->Fingerprint(), (*checkpoint)->Fingerprint());
  EXPECT_NE((*Checkpoint::Load((dir / "other.bin").string()))->Fingerprint(), (*checkpoint)->Fingerprint());
}

struct BadFileCase {
  const char* name;
  void (*damage)(std::vector<char>&);
  const char* expected;  // in the error message, besides the path
};

class CheckpointBadFileTest : public ::testing::TestWithParam<BadFileCase> {};

TEST_P(CheckpointBadFileTest, IsRefusedWithFileAndProblem) {
  testing::TempDir dir;
  const std::string path = (dir / "bad.bin").string();
  ASSERT_TRUE(WriteRandomCheckpoint(path, SmallConfig(), 1).ok());
  auto bytes = testing::ReadBytes(path);
  GetParam().damage(bytes);
  testing::WriteBytes(path, bytes);
  auto checkpoint = Checkpoint::Load(path);
  ASSERT_FALSE(checkpoint.ok());
  EXPECT_EQ(checkpoint.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(checkpoint.status().message().find(path), std::string::npos) << checkpoint.status().message();
  EXPECT_NE(checkpoint.status().message().find(GetParam().expected), std::string::npos)
      << checkpoint.status().message();
}

void SetHeader(std::vector<char>& bytes, int index, int32_t value) {
  std::memcpy(bytes.data() + 4 * index, &value, 4);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, CheckpointBadFileTest,
    ::testing::Values(
        BadFileCase{"Empty", [](std::vector<char>& b) { b.clear(); }, "empty"},
        BadFileCase{"ShortHeader", [](std::vector<char>& b) { b.resize(20); }, "truncated"},
        BadFileCase{"TruncatedWeights", [](std::vector<char>& b) { b.resize(b.size() - 4); }, "truncated"},
        BadFileCase{"ExtraBytes", [](std::vector<char>& b) { b.resize(b.size() + 8); }, "inconsistent"},
        BadFileCase{"ZeroDim", [](std::vector<char>& b) { SetHeader(b, 0, 0); }, "corrupt header"},
        BadFileCase{"HeadsNotDividingDim", [](std::vector<char>& b) { SetHeader(b, 3, 5); }, "n_heads"},
        BadFileCase{"KvHeadsNotDividingHeads", [](std::vector<char>& b) { SetHeader(b, 4, 3); },
                    "n_kv_heads"},
        BadFileCase{"HugeLayers", [](std::vector<char>& b) { SetHeader(b, 2, 1 << 30); }, "n_layers"},
        BadFileCase{"MinIntVocab", [](std::vector<char>& b) { SetHeader(b, 5, INT32_MIN); }, "vocab_size"},
        BadFileCase{"WrongLayerCount", [](std::vector<char>& b) { SetHeader(b, 2, 2); }, "inconsistent"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(CheckpointTest, MissingFileIsNotFound) {
  auto checkpoint = Checkpoint::Load("/nonexistent/model.bin");
  ASSERT_FALSE(checkpoint.ok());
  EXPECT_EQ(checkpoint.status().code(), StatusCode::kNotFound);
  EXPECT_NE(checkpoint.status().message().find("/nonexistent/model.bin"), std::string::npos);
}

}  // namespace
}  // namespace tandem
