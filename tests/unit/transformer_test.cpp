// The runtime's composition contract: any cut is the monolithic model; prefill equals decode.
#include "tandem/engine/transformer.hpp"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "tandem/engine/compute_profile.hpp"
#include "tandem/engine/pipeline.hpp"
#include "test_env.hpp"

namespace tandem {
namespace {

class TransformerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A small random model with grouped-query attention and a separate classifier.
    const ModelConfig config{.dim = 32,
                             .hidden_dim = 72,
                             .n_layers = 4,
                             .n_heads = 4,
                             .n_kv_heads = 2,
                             .vocab_size = 64,
                             .seq_len = 48,
                             .shared_classifier = false};
    path_ = (dir_ / "model.bin").string();
    ASSERT_TRUE(WriteRandomCheckpoint(path_, config, 11, 0.2f).ok());
    auto checkpoint = Checkpoint::Load(path_);
    ASSERT_TRUE(checkpoint.ok()) << checkpoint.status().ToString();
    checkpoint_ = *checkpoint;
    auto model = Transformer::Create(checkpoint_);
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    model_ = *model;
  }

  // Logits of every position of `tokens`, running blocks [0, cut) and [cut, L) with separate caches and
  // feeding the tokens in chunks of `chunk` positions.
  at::Tensor Run(const Transformer& model, const std::vector<int>& tokens, int cut, size_t chunk) {
    KvCache head(model.config(), {0, cut}, 48), tail(model.config(), {cut, model.n_layers()}, 48);
    std::vector<at::Tensor> logits;
    for (size_t start = 0; start < tokens.size(); start += chunk) {
      const size_t count = std::min(chunk, tokens.size() - start);
      auto hidden = model.Embed(std::span<const int>(tokens).subspan(start, count));
      EXPECT_TRUE(hidden.ok());
      EXPECT_TRUE(model.RunBlocks(*hidden, head).ok());
      EXPECT_TRUE(model.RunBlocks(*hidden, tail).ok());
      auto step_logits = model.Logits(*hidden);
      EXPECT_TRUE(step_logits.ok());
      logits.push_back(*step_logits);
    }
    EXPECT_EQ(head.length(), static_cast<int>(tokens.size()));
    return at::cat(logits);
  }

  testing::TempDir dir_;
  std::string path_;
  std::shared_ptr<const Checkpoint> checkpoint_;
  std::shared_ptr<const Transformer> model_;
  const std::vector<int> tokens_ = {1, 5, 9, 33, 2, 60, 17, 17, 40, 3, 8, 21};
};

// Sixteen sessions at different cuts and positions, decoded together, step bit for bit as each alone:
// what continuous batching in a tail relies on. Float32 and int8 blocks.
TEST_F(TransformerTest, BatchedDecodeIsBitForBitEachSessionAlone) {
  for (const bool int8 : {false, true}) {
    auto model = Transformer::Create(
        checkpoint_, {.int8_blocks = int8 ? BlockRange{0, 4} : BlockRange{}, .int8_classifier = int8});
    ASSERT_TRUE(model.ok());
    const Transformer& runtime = **model;
    constexpr int kSessions = 16;
    std::vector<std::unique_ptr<KvCache>> alone, batched;
    std::vector<at::Tensor> alone_hidden, batched_hidden;
    for (int s = 0; s < kSessions; ++s) {
      const BlockRange range{s % 3, 4 - (s % 2)};  // cuts 0..2 on the head side, tails ending at 3 or 4
      const int prompt = 1 + s % 5;                // and every session at its own position
      for (auto* caches : {&alone, &batched})
        caches->push_back(std::make_unique<KvCache>(runtime.config(), range, 48));
      auto prefill = runtime.Embed(std::span(tokens_).first(static_cast<size_t>(prompt)));
      ASSERT_TRUE(prefill.ok());
      at::Tensor copy = prefill->clone();
      ASSERT_TRUE(runtime.RunBlocks(*prefill, *alone.back()).ok());
      ASSERT_TRUE(runtime.RunBlocks(copy, *batched.back()).ok());
    }
    for (int step = 0; step < 4; ++step) {
      std::vector<at::Tensor> inputs;
      std::vector<KvCache*> caches;
      for (int s = 0; s < kSessions; ++s) {
        auto token = runtime.Embed(std::span(tokens_).subspan(static_cast<size_t>(5 + (s + step) % 7), 1));
        ASSERT_TRUE(token.ok());
        at::Tensor single = token->clone();
        ASSERT_TRUE(runtime.RunBlocks(single, *alone[s]).ok());
        alone_hidden.push_back(single);
        inputs.push_back(*token);
        caches.push_back(batched[s].get());
      }
      ASSERT_TRUE(runtime.RunDecodeBatch(inputs, caches).ok());
      for (int s = 0; s < kSessions; ++s) {
        EXPECT_TRUE(at::equal(inputs[s], alone_hidden[alone_hidden.size() - kSessions + s]))
            << (int8 ? "int8" : "float32") << " session " << s << " step " << step;
        EXPECT_EQ(batched[s]->length(), alone[s]->length());
      }
      // The heads of all sessions in one classifier pass: each row's logits as the row's alone.
      const at::Tensor logits = *runtime.LogitsDecodeBatch(at::cat(inputs));
      for (int s = 0; s < kSessions; ++s) {
        EXPECT_TRUE(at::equal(logits.narrow(0, s, 1), *runtime.Logits(inputs[s])))
            << (int8 ? "int8" : "float32") << " logits of session " << s << " step " << step;
      }
    }
  }
}

TEST_F(TransformerTest, BatchedDecodeRefusesBadStepsWithoutChangingACache) {
  KvCache cache(model_->config(), {0, 4}, 2), other(model_->config(), {0, 4}, 48);
  auto row = model_->Embed(std::span(tokens_).first(1));
  ASSERT_TRUE(row.ok());
  std::vector<at::Tensor> one = {row->clone()};
  std::vector<KvCache*> full = {&cache};
  ASSERT_TRUE(model_->RunDecodeBatch(one, full).ok());
  ASSERT_TRUE(model_->RunDecodeBatch(one, full).ok());
  EXPECT_EQ(model_->RunDecodeBatch(one, full).code(), StatusCode::kResourceExhausted);
  std::vector<at::Tensor> two = {row->clone(), row->clone()};
  std::vector<KvCache*> same = {&other, &other};
  EXPECT_EQ(model_->RunDecodeBatch(two, same).code(), StatusCode::kInvalidArgument);
  std::vector<at::Tensor> wide = {at::zeros({2, 32})};
  std::vector<KvCache*> single = {&other};
  EXPECT_EQ(model_->RunDecodeBatch(wide, single).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(other.length(), 0);
  EXPECT_EQ(cache.length(), 2);
}

TEST_F(TransformerTest, EveryCutEqualsTheMonolithicModel) {
  const at::Tensor whole = Run(*model_, tokens_, model_->n_layers(), tokens_.size());
  for (int cut = 0; cut <= model_->n_layers(); ++cut) {
    EXPECT_TRUE(at::equal(Run(*model_, tokens_, cut, tokens_.size()), whole)) << "cut " << cut;
  }
}

TEST_F(TransformerTest, PrefillEqualsTokenByTokenDecode) {
  const at::Tensor prefill = Run(*model_, tokens_, 2, tokens_.size());
  const at::Tensor decode = Run(*model_, tokens_, 2, 1);
  const at::Tensor chunked = Run(*model_, tokens_, 2, 5);
  EXPECT_TRUE(at::allclose(prefill, decode, 1e-4, 1e-5)) << (prefill - decode).abs().max().item<float>();
  EXPECT_TRUE(at::allclose(prefill, chunked, 1e-4, 1e-5));
  // And the positions matter: a shuffled prompt gives other logits.
  std::vector<int> reversed(tokens_.rbegin(), tokens_.rend());
  EXPECT_FALSE(at::allclose(Run(*model_, reversed, 2, 12).narrow(0, 11, 1), prefill.narrow(0, 11, 1)));
}

TEST_F(TransformerTest, Int8BlocksStayCloseToFloat32) {
  auto int8 = Transformer::Create(checkpoint_, {.int8_blocks = {0, 2}});
  ASSERT_TRUE(int8.ok());
  const at::Tensor want = Run(*model_, tokens_, 4, 12), got = Run(**int8, tokens_, 4, 12);
  // Logits after four blocks of a random model amplify the rounding: ~1e-3, against ~1 for a wrong kernel.
  const double nmse = ((got - want).pow(2).sum() / want.pow(2).sum()).item<double>();
  EXPECT_LT(nmse, 1e-2);
  EXPECT_GT(nmse, 0.0);
  // A quarter of float32's bytes, but this model's rows of 32 are padded to the kernels' 64.
  EXPECT_LT((*int8)->BlockWeightBytes({0, 2}) * 3 / 2, model_->BlockWeightBytes({0, 2}));
}

TEST_F(TransformerTest, RefusesBadInputsWithoutChangingTheCache) {
  KvCache cache(model_->config(), {0, 4}, 8);
  EXPECT_FALSE(model_->Embed(std::vector<int>{1, 64}).ok());
  EXPECT_FALSE(model_->Embed(std::vector<int>{-1}).ok());
  auto hidden = model_->Embed(std::vector<int>(9, 3));
  ASSERT_TRUE(hidden.ok());
  const Status full = model_->RunBlocks(*hidden, cache);
  EXPECT_EQ(full.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(cache.length(), 0);
  at::Tensor wrong = at::zeros({2, 31});
  EXPECT_EQ(model_->RunBlocks(wrong, cache).code(), StatusCode::kInvalidArgument);
  // Capacity is bounded by the model's context.
  EXPECT_EQ(KvCache(model_->config(), {0, 4}, 1000).capacity(), 48);
}

TEST_F(TransformerTest, ParsesBlockRanges) {
  EXPECT_EQ(ParseBlockRange("0:2", 4)->last, 2);
  EXPECT_TRUE(ParseBlockRange("", 4)->empty());
  EXPECT_TRUE(ParseBlockRange("4:4", 4).ok());
  for (const char* bad : {"0:5", "2:1", "-1:2", "a:b", "1", "1:", ":2", "1:2:3"}) {
    EXPECT_FALSE(ParseBlockRange(bad, 4).ok()) << bad;
  }
}

TEST_F(TransformerTest, GenerateStopsAtStepsAndSplitIsLossless) {
  const SamplingParams greedy{0.0f, 1.0f, 0};
  const std::vector<int> prompt = {1, 7, 8};
  auto generate = [&](int cut, bool loopback) {
    EdgeRunner edge(model_, cut, 20);
    std::unique_ptr<TailRunner> tail = std::make_unique<LocalTail>(model_, cut, 20, greedy);
    if (loopback) tail = std::make_unique<LoopbackTail>(std::move(tail), ActivationCodec{});
    auto result = Generate(edge, *tail, prompt, {.steps = 20, .stop_tokens = {}});
    EXPECT_TRUE(result.ok());
    return *result;
  };
  const Generation whole = generate(4, false);
  EXPECT_EQ(whole.ids.size(), 21u);  // steps positions → steps + 1 tokens
  EXPECT_EQ(whole.timings.generated_tokens, 18);
  for (int cut = 0; cut <= 4; ++cut) {
    const Generation split = generate(cut, true);
    EXPECT_EQ(split.ids, whole.ids) << "cut " << cut;
    EXPECT_EQ(split.timings.bytes_across_cut, 20 * 32 * 4);
  }
  // A prompt longer than the steps is cut, and nothing is generated.
  EdgeRunner edge(model_, 4, 20);
  LocalTail tail(model_, 4, 20, greedy);
  auto cut_prompt = Generate(edge, tail, std::vector<int>{1, 2, 3, 4, 5}, {.steps = 3});
  ASSERT_TRUE(cut_prompt.ok());
  EXPECT_EQ(cut_prompt->ids, (std::vector<int>{1, 2, 3, 4}));
}

TEST_F(TransformerTest, ProfilesEveryBlockAndThePrefillBucketsThatFit) {
  // Buckets beyond the context (48) are capped to it; a repeat after the cap is dropped.
  auto profile = ProfileCompute(*model_, {.prefill_buckets = {8, 32, 64, 256}, .decode_position = 16});
  ASSERT_TRUE(profile.ok()) << profile.status().ToString();
  ASSERT_EQ(profile->decode_block_ms.size(), 4u);
  for (double ms : profile->decode_block_ms) EXPECT_GT(ms, 0);
  ASSERT_EQ(profile->prefill.size(), 3u);
  EXPECT_EQ(profile->prefill[0].tokens, 8);
  EXPECT_EQ(profile->prefill[2].tokens, 48);
  for (const auto& bucket : profile->prefill) {
    ASSERT_EQ(bucket.block_ms.size(), 4u);
    for (double ms : bucket.block_ms) EXPECT_GT(ms, 0);
  }
  EXPECT_GT(profile->head_ms, 0);
  EXPECT_FALSE(ProfileCompute(*model_, {.repeats = 0}).ok());
}

}  // namespace
}  // namespace tandem
