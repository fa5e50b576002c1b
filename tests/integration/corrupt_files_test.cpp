// Fault sweep: hundreds of truncated and bit-flipped variants of the real checkpoint and tokenizer. Each is
// refused with an error naming the file, or (a flipped weight bit that still gives a finite float) loads
// and generates; none crashes or hangs (a crash fails this test, a hang hits the CTest timeout).
#include <gtest/gtest.h>

#include <random>

#include "tandem/engine/pipeline.hpp"
#include "tandem/engine/transformer.hpp"
#include "tandem/model/checkpoint.hpp"
#include "tandem/text/tokenizer.hpp"
#include "test_env.hpp"

namespace tandem {
namespace {

constexpr int kVariantsPerKind = 60;  // per file: 60 truncated + 60 bit-flipped

enum class Damage { kTruncate, kFlipHeaderBit, kFlipAnyBit };

std::vector<char> Damaged(const std::vector<char>& original, Damage damage, std::mt19937& rng) {
  std::vector<char> bytes = original;
  auto pick = [&](size_t limit) { return std::uniform_int_distribution<size_t>(0, limit - 1)(rng); };
  switch (damage) {
    case Damage::kTruncate:
      bytes.resize(pick(bytes.size()));
      break;
    case Damage::kFlipHeaderBit:
    case Damage::kFlipAnyBit: {
      const size_t limit =
          damage == Damage::kFlipHeaderBit ? std::min<size_t>(64, bytes.size()) : bytes.size();
      for (int flips = 1 + static_cast<int>(pick(3)); flips > 0; --flips) {
        bytes[pick(limit)] ^= static_cast<char>(1 << pick(8));
      }
      break;
    }
  }
  return bytes;
}

// Loads a damaged checkpoint and, when it loads, generates a few tokens. Returns whether it was refused.
bool ExerciseCheckpoint(const std::string& path, const Tokenizer& tokenizer) {
  auto checkpoint = Checkpoint::Load(path);
  if (!checkpoint.ok()) {
    EXPECT_NE(checkpoint.status().message().find(path), std::string::npos) << checkpoint.status().message();
    return true;
  }
  auto model = Transformer::Create(*checkpoint);
  if (!model.ok()) {
    EXPECT_NE(model.status().message().find(path), std::string::npos) << model.status().message();
    return true;
  }
  EdgeRunner edge(*model, 2, 16);
  LocalTail tail(*model, 2, 16, SamplingParams{0.0f, 1.0f, 0});
  const auto prompt = tokenizer.Encode("Once upon a time", true, false);
  auto generation = Generate(edge, tail, prompt, {.steps = 16});
  if (generation.ok()) {
    for (int id : generation->ids) EXPECT_TRUE(id >= 0 && id < (*checkpoint)->config().vocab_size);
  }
  return false;
}

TEST(CorruptFilesTest, CheckpointVariantsNeverCrash) {
  if (testing::SharedDir().empty()) GTEST_SKIP() << "shared folder not found";
  auto tokenizer = Tokenizer::Load(testing::Stories260KTokenizer().string(), 512);
  ASSERT_TRUE(tokenizer.ok());
  const auto original = testing::ReadBytes(testing::Stories260KModel());
  testing::TempDir dir;
  std::mt19937 rng(2024);
  int refused = 0, variants = 0;
  for (Damage damage : {Damage::kTruncate, Damage::kFlipHeaderBit, Damage::kFlipAnyBit}) {
    for (int i = 0; i < kVariantsPerKind; ++i, ++variants) {
      const std::string path = (dir / ("model-" + std::to_string(variants) + ".bin")).string();
      testing::WriteBytes(path, Damaged(original, damage, rng));
      refused += ExerciseCheckpoint(path, *tokenizer);
    }
  }
  // Every truncation and almost every header flip is caught before a tensor is read.
  EXPECT_GE(refused, kVariantsPerKind + kVariantsPerKind / 2);
}

TEST(CorruptFilesTest, TokenizerVariantsNeverCrash) {
  if (testing::SharedDir().empty()) GTEST_SKIP() << "shared folder not found";
  const auto original = testing::ReadBytes(testing::Stories260KTokenizer());
  testing::TempDir dir;
  std::mt19937 rng(7);
  int refused = 0, variants = 0;
  for (Damage damage : {Damage::kTruncate, Damage::kFlipHeaderBit, Damage::kFlipAnyBit}) {
    for (int i = 0; i < kVariantsPerKind; ++i, ++variants) {
      const std::string path = (dir / ("tok-" + std::to_string(variants) + ".bin")).string();
      testing::WriteBytes(path, Damaged(original, damage, rng));
      auto tokenizer = Tokenizer::Load(path, 512);
      if (!tokenizer.ok()) {
        EXPECT_NE(tokenizer.status().message().find(path), std::string::npos) << tokenizer.status().message();
        ++refused;
        continue;
      }
      const auto ids = tokenizer->Encode("Lily and Ben went to the park. 日本", true, true);
      EXPECT_FALSE(tokenizer->DecodeAll(ids).empty() && ids.size() > 2);
    }
  }
  EXPECT_GE(refused, kVariantsPerKind);  // at least every truncation
}

}  // namespace
}  // namespace tandem
