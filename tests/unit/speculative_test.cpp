// Speculative decoding in one process (no sockets): drafts change how many tokens a model step yields,
// never which. Greedy, every drafter at every cut reproduces the stories260K goldens token for token; at a
// temperature, the first two tokens are distributed as without drafts (a chi-square test shown able to
// fail). And the parts underneath: LocalTail::Verify's refusals and the positions it keeps, the drafters.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <numeric>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "chi_square.hpp"
#include "tandem/engine/drafter.hpp"
#include "tandem/engine/pipeline.hpp"
#include "tandem/engine/transformer.hpp"
#include "tandem/model/checkpoint.hpp"
#include "test_env.hpp"

namespace tandem {
namespace {

using testing::ChiSquareHomogeneity;
using testing::ChiSquareResult;
using testing::Counts;

constexpr int kDraftsPerStep = 4;

// A DraftSource over `drafter`: at most kDraftsPerStep drafts a step; a drafter error fails the test.
DraftSource DraftsFrom(Drafter& drafter) {
  return [&drafter](std::span<const int> context, int max_tokens) {
    const int asked = std::min(max_tokens, kDraftsPerStep);
    auto draft = drafter.Propose(context, asked);
    EXPECT_TRUE(draft.ok()) << draft.status().ToString();
    if (!draft.ok()) return std::vector<int>{};
    EXPECT_LE(draft->size(), static_cast<size_t>(asked));
    return *draft;
  };
}

std::vector<int> Ids(const nlohmann::json& golden, const char* key) {
  return golden[key].get<std::vector<int>>();
}

class SpeculativeTest : public ::testing::Test {
 protected:
  // One Transformer for every test: loading is the slow part of a short run.
  static void SetUpTestSuite() {
    if (testing::SharedDir().empty()) return;
    auto checkpoint = Checkpoint::Load(testing::Stories260KModel().string());
    if (!checkpoint.ok()) return;
    auto model = Transformer::Create(*checkpoint);
    if (model.ok()) model_ = *model;
  }
  static void TearDownTestSuite() { model_.reset(); }
  void SetUp() override {
    if (testing::SharedDir().empty()) GTEST_SKIP() << "shared folder not found (set TANDEM_SHARED)";
    ASSERT_NE(model_, nullptr) << "cannot load " << testing::Stories260KModel();
  }

  // The model's logits for the token after `context`, run whole.
  static std::vector<float> NextLogits(std::span<const int> context) {
    KvCache cache(model_->config(), {0, model_->n_layers()}, static_cast<int>(context.size()));
    at::Tensor hidden = *model_->Embed(context);
    EXPECT_TRUE(model_->RunBlocks(hidden, cache).ok());
    const at::Tensor logits = model_->Logits(hidden.narrow(0, hidden.size(0) - 1, 1))->contiguous();
    return {logits.data_ptr<float>(), logits.data_ptr<float>() + logits.numel()};
  }

  // Embedding rows of `tokens`: what an edge at cut 0 sends.
  static HiddenRows EmbeddingRows(std::span<const int> tokens) {
    const at::Tensor hidden = model_->Embed(tokens)->contiguous();
    HiddenRows rows{hidden.size(0), hidden.size(1), {}};
    rows.values.assign(hidden.data_ptr<float>(), hidden.data_ptr<float>() + hidden.numel());
    return rows;
  }

  static inline std::shared_ptr<const Transformer> model_;
};

// Drafts proposed and kept over several generations.
struct Acceptance {
  int drafted = 0;
  int kept = 0;
  int model_steps = 0;
  int tokens = 0;
  void Add(const GenerationTimings& timings) {
    drafted += timings.drafted_tokens;
    kept += timings.kept_drafts;
    model_steps += timings.model_steps;
    tokens += timings.generated_tokens;
  }
  double rate() const { return drafted > 0 ? static_cast<double>(kept) / drafted : 0.0; }
};

// ---- 1. Greedy: the goldens, token for token, whatever the drafter -------------------------------------

class GreedyDraftTest : public SpeculativeTest, public ::testing::WithParamInterface<std::string> {
 protected:
  // The drafter the parameter names; "model-same" is model:PATH on the served checkpoint itself.
  static Result<DraftSpec> Spec(const std::string& name) {
    return ParseDraftSpec(name == "model-same" ? "model:" + testing::Stories260KModel().string() : name);
  }

  // Generates every golden at `cut` with the drafters of `drafts`; the ids must be the golden's.
  Acceptance RunGoldens(const DraftModels& drafts, int cut) {
    Acceptance acceptance;
    const std::vector<nlohmann::json> goldens = testing::GoldenRecords();
    EXPECT_EQ(goldens.size(), 5u);
    for (size_t record = 0; record < goldens.size(); ++record) {
      const nlohmann::json& golden = goldens[record];
      const int steps = golden["steps"].get<int>();
      EdgeRunner edge(model_, cut, steps);
      LocalTail tail(model_, cut, steps, {.temperature = 0.0f});
      auto drafter = drafts.Create(cut, steps);
      EXPECT_TRUE(drafter.ok()) << drafter.status().ToString();
      if (!drafter.ok()) return acceptance;
      const DraftSource source = *drafter ? DraftsFrom(**drafter) : DraftSource{};
      auto generation = Generate(edge, tail, Ids(golden, "prompt_ids"), {.steps = steps}, {}, source);
      EXPECT_TRUE(generation.ok()) << generation.status().ToString();
      if (!generation.ok()) return acceptance;
      EXPECT_EQ(generation->ids, Ids(golden, "ids"))
          << drafts.spec().Name() << " at cut " << cut << ", golden " << record;
      acceptance.Add(generation->timings);
    }
    return acceptance;
  }
};

TEST_P(GreedyDraftTest, ReproducesEveryGoldenAtEveryCut) {
  const std::string& name = GetParam();
  auto spec = Spec(name);
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  auto drafts = DraftModels::Load(*spec, model_);
  ASSERT_TRUE(drafts.ok()) << drafts.status().ToString();
  Acceptance all, first_cut;
  for (int cut = 1; cut < model_->n_layers(); ++cut) {
    const Acceptance at_cut = RunGoldens(*drafts, cut);
    std::printf("%-11s cut %d: %4d of %4d drafts kept (%5.1f%%), %.2f tokens per model step\n", name.c_str(),
                cut, at_cut.kept, at_cut.drafted, 100.0 * at_cut.rate(),
                static_cast<double>(at_cut.tokens) / at_cut.model_steps);
    RecordProperty("kept_percent_cut" + std::to_string(cut), std::to_string(100.0 * at_cut.rate()));
    // Every drafter but early-exit drafts the same at every cut.
    if (cut == 1) first_cut = at_cut;
    if (name != "early-exit") {
      EXPECT_EQ(at_cut.kept, first_cut.kept) << "cut " << cut;
    }
    all.drafted += at_cut.drafted;
    all.kept += at_cut.kept;
  }
  // Drafting pays where it should: the served model itself (model:same) is kept whole, its int8 copy
  // nearly; without drafts nothing is drafted.
  EXPECT_EQ(all.drafted > 0, name != "none");
  if (name == "model-same") {
    EXPECT_EQ(all.kept, all.drafted);
  } else if (name == "self-int8") {
    EXPECT_GE(all.rate(), 0.9);
  }
}

INSTANTIATE_TEST_SUITE_P(Drafters, GreedyDraftTest,
                         ::testing::Values("none", "ngram", "self-int8", "self-int4", "model-same",
                                           "early-exit"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

// ---- 2. At a temperature: the same distribution as without drafts -------------------------------------

constexpr float kTemperature = 0.8f;
constexpr int kSplitCut = 2;
constexpr int kSamplesPerSide = 2000;

// The first two tokens of one generation, and how its drafts fared.
struct FirstTwo {
  int first = -1;
  int second = -1;
  int model_steps = 0;
  int kept = 0;  // drafts kept over both steps
};

// Proposes, for the prompt, two drafts: the most likely first token (odd variants: the second most likely),
// then the most likely token after the most likely first one (variants 2 and 3 mod 4: the second most
// likely). So the first draft is kept by chance or resampled, and when kept the second draft runs the
// depth-2 path both ways. After the prompt and the most likely first token (a first draft resampled to it)
// it proposes one draft again; nothing elsewhere.
class ScriptedDrafts {
 public:
  ScriptedDrafts(std::vector<int> prompt, std::vector<int> first_ranked, std::vector<int> second_ranked)
      : prompt_(std::move(prompt)),
        first_ranked_(std::move(first_ranked)),
        second_ranked_(std::move(second_ranked)) {}

  DraftSource For(int variant) const {
    return [this, variant](std::span<const int> context, int max_tokens) {
      std::vector<int> draft;
      const bool at_prompt = std::equal(context.begin(), context.end(), prompt_.begin(), prompt_.end());
      const int second = second_ranked_[static_cast<size_t>((variant / 2) % 2)];
      if (at_prompt) {
        draft = {FirstDraft(variant), second};
      } else if (context.size() == prompt_.size() + 1 && context.back() == first_ranked_[0]) {
        draft = {second};
      }
      draft.resize(std::min(draft.size(), static_cast<size_t>(max_tokens)));
      return draft;
    };
  }
  int most_likely_first() const { return first_ranked_[0]; }
  int FirstDraft(int variant) const { return first_ranked_[static_cast<size_t>(variant % 2)]; }

 private:
  std::vector<int> prompt_;
  std::vector<int> first_ranked_;   // tokens after the prompt, most likely first
  std::vector<int> second_ranked_;  // tokens after the prompt and the most likely first token
};

std::vector<int> RankedTokens(const std::vector<float>& logits) {
  std::vector<int> tokens(logits.size());
  std::iota(tokens.begin(), tokens.end(), 0);
  std::stable_sort(tokens.begin(), tokens.end(), [&logits](int a, int b) {
    return logits[static_cast<size_t>(a)] > logits[static_cast<size_t>(b)];
  });
  return tokens;
}

// The counts one side of the comparison collects: every first token, and the second tokens of the runs
// whose first token is the most likely one.
struct TokenCounts {
  Counts first;
  Counts second;
  int64_t conditioned = 0;  // runs counted in `second`
};

class TemperatureDraftTest : public SpeculativeTest, public ::testing::WithParamInterface<float> {
 protected:
  void SetUp() override {
    SpeculativeTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    // The third golden's prompt: its first token is uncertain (at 0.8: 0.65, 0.17, 0.07, ...), and so is
    // the second after the most likely first (0.42, 0.18, 0.18, ...).
    prompt_ = Ids(testing::GoldenRecords().at(2), "prompt_ids");
    first_logits_ = NextLogits(prompt_);
    const std::vector<int> first_ranked = RankedTokens(first_logits_);
    std::vector<int> after_first = prompt_;
    after_first.push_back(first_ranked[0]);
    second_logits_ = NextLogits(after_first);
    drafts_.emplace(prompt_, first_ranked, RankedTokens(second_logits_));
  }

  SamplingParams Sampling(uint64_t seed, float temperature = kTemperature) const {
    return {.temperature = temperature, .top_p = GetParam(), .seed = seed};
  }

  // Prefill and one or two more steps through a split at kSplitCut: the first two tokens.
  FirstTwo Run(uint64_t seed, const DraftSource& drafts) const {
    const int steps = static_cast<int>(prompt_.size()) + 2;
    EdgeRunner edge(model_, kSplitCut, steps);
    LocalTail tail(model_, kSplitCut, steps, Sampling(seed));
    std::vector<int> tokens;
    const auto on_token = [&tokens](int token) {
      tokens.push_back(token);
      return tokens.size() < 2;
    };
    auto generation = Generate(edge, tail, prompt_, {.steps = steps, .stop_tokens = {}}, on_token, drafts);
    EXPECT_TRUE(generation.ok()) << generation.status().ToString();
    if (!generation.ok() || tokens.size() != 2) {
      ADD_FAILURE() << "seed " << seed << " made " << tokens.size() << " tokens";
      return {};
    }
    return {tokens[0], tokens[1], generation->timings.model_steps, generation->timings.kept_drafts};
  }

  static void Count(TokenCounts& counts, int first, int second, int conditioning_first) {
    ++counts.first[first];
    if (first != conditioning_first) return;
    ++counts.second[second];
    ++counts.conditioned;
  }

  std::vector<int> prompt_;
  std::vector<float> first_logits_, second_logits_;
  std::optional<ScriptedDrafts> drafts_;
};

TEST_P(TemperatureDraftTest, SameSeedSameTokensWithDrafts) {
  auto self_int8 = DraftModels::Load({.kind = DraftKind::kSelfInt8}, model_);
  ASSERT_TRUE(self_int8.ok());
  const int steps = 48;
  std::vector<std::vector<int>> outputs;
  for (const uint64_t seed : {7, 7, 8}) {
    EdgeRunner edge(model_, kSplitCut, steps);
    LocalTail tail(model_, kSplitCut, steps, Sampling(seed));
    auto drafter = self_int8->Create(kSplitCut, steps);
    ASSERT_TRUE(drafter.ok());
    auto generation =
        Generate(edge, tail, prompt_, {.steps = steps, .stop_tokens = {}}, {}, DraftsFrom(**drafter));
    ASSERT_TRUE(generation.ok()) << generation.status().ToString();
    EXPECT_GT(generation->timings.kept_drafts, 0);
    EXPECT_LT(generation->timings.kept_drafts, generation->timings.drafted_tokens);
    outputs.push_back(generation->ids);
  }
  EXPECT_EQ(outputs[0], outputs[1]);
  EXPECT_NE(outputs[0], outputs[2]);  // and the seed matters
  // Each token is drawn as without drafts (one draw per token emitted): the same tokens as a plain run.
  {
    EdgeRunner edge(model_, kSplitCut, steps);
    LocalTail tail(model_, kSplitCut, steps, Sampling(7));
    auto plain = Generate(edge, tail, prompt_, {.steps = steps, .stop_tokens = {}});
    ASSERT_TRUE(plain.ok()) << plain.status().ToString();
    EXPECT_EQ(plain->ids, outputs[0]);
  }
  // The scripted drafts too (prefill and second step).
  for (int variant = 0; variant < 4; ++variant) {
    const FirstTwo once = Run(100 + variant, drafts_->For(variant));
    const FirstTwo again = Run(100 + variant, drafts_->For(variant));
    EXPECT_EQ(std::tie(once.first, once.second), std::tie(again.first, again.second))
        << "variant " << variant;
  }
}

// The first token, and the second after the most likely first, with the scripted drafts against without:
// homogeneous by chi-square (p >= 0.01). The same comparison must tell apart what a wrong acceptance rule
// or another temperature gives (p < 0.01), or it would prove nothing.
TEST_P(TemperatureDraftTest, FirstTwoTokensAreDistributedAsWithoutDrafts) {
  TokenCounts drafted, plain;
  int depth1_resampled = 0, depth2_kept = 0, depth2_resampled = 0;
  const int t1 = drafts_->most_likely_first();
  int runs = 0;
  // Seeds: even ones for drafted runs, odd ones for plain runs (independent samples).
  for (;
       runs < kSamplesPerSide || drafted.conditioned < kSamplesPerSide || plain.conditioned < kSamplesPerSide;
       ++runs) {
    ASSERT_LT(runs, 20 * kSamplesPerSide) << "the most likely first token is too rare to condition on";
    const FirstTwo with = Run(2 * static_cast<uint64_t>(runs), drafts_->For(runs));
    const FirstTwo without = Run(2 * static_cast<uint64_t>(runs) + 1, {});
    if (HasFailure()) return;
    Count(drafted, with.first, with.second, t1);
    Count(plain, without.first, without.second, t1);
    if (with.model_steps == 2) {
      ++depth1_resampled;  // the first step yielded one token: its first draft was not kept
    } else if (with.kept == 2) {
      ++depth2_kept;
    } else {
      ++depth2_resampled;  // one step, its first draft kept and its second not
    }
  }
  std::printf(
      "top_p %.1f: %d runs a side; drafted: %d first drafts resampled, second drafts %d kept, %d resampled\n",
      GetParam(), runs, depth1_resampled, depth2_kept, depth2_resampled);
  EXPECT_GT(depth1_resampled, 100);
  EXPECT_GT(depth2_kept, 100);
  EXPECT_GT(depth2_resampled, 100);

  const ChiSquareResult first = ChiSquareHomogeneity(drafted.first, plain.first);
  const ChiSquareResult second = ChiSquareHomogeneity(drafted.second, plain.second);
  std::printf("  first token:  %s\n  second token: %s\n", ToString(first).c_str(), ToString(second).c_str());
  EXPECT_GE(first.p_value, 0.01) << first;
  EXPECT_GE(second.p_value, 0.01) << second;

  // Power. At temperature 1.2 the first token (plain: the prefill's logits sampled) and the second after
  // t1 come out otherwise.
  TokenCounts hotter;
  for (int i = 0; i < kSamplesPerSide; ++i) {
    ++hotter.first[Sampler(Sampling(3 * i, 1.2f)).Sample(first_logits_)];
    ++hotter.second[Sampler(Sampling(3 * i + 1, 1.2f)).Sample(second_logits_)];
  }
  const ChiSquareResult hotter_first = ChiSquareHomogeneity(drafted.first, hotter.first);
  const ChiSquareResult hotter_second = ChiSquareHomogeneity(drafted.second, hotter.second);
  EXPECT_LT(hotter_first.p_value, 0.01) << hotter_first;
  EXPECT_LT(hotter_second.p_value, 0.01) << hotter_second;
  // A classic wrong rule: keep the draft with probability p(draft), else draw from all of p, the draft
  // included (so the draft comes out too often).
  Counts wrong;
  for (int i = 0; i < runs; ++i) {
    const int draft = drafts_->FirstDraft(i);
    const bool kept = Sampler(Sampling(5 * i)).Sample(first_logits_) == draft;
    ++wrong[kept ? draft : Sampler(Sampling(5 * i + 1)).Sample(first_logits_)];
  }
  const ChiSquareResult wrong_first = ChiSquareHomogeneity(drafted.first, wrong);
  EXPECT_LT(wrong_first.p_value, 0.01) << wrong_first;
  std::printf(
      "  against temperature 1.2: p = %.3g (first), %.3g (second); against the wrong rule: p = %.3g\n",
      hotter_first.p_value, hotter_second.p_value, wrong_first.p_value);
}

INSTANTIATE_TEST_SUITE_P(TopP, TemperatureDraftTest, ::testing::Values(0.9f, 1.0f),
                         [](const ::testing::TestParamInfo<float>& info) {
                           return info.param < 1.0f ? std::string("Nucleus") : std::string("Full");
                         });

// ---- 3. LocalTail::Verify: refusals, and the positions it keeps -----------------------------------------

// A greedy tail of the whole model (cut 0: the rows are embeddings) on the first golden's tokens.
class VerifyTest : public SpeculativeTest {
 protected:
  void SetUp() override {
    SpeculativeTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    ids_ = Ids(testing::GoldenRecords().at(0), "ids");
    tail_.emplace(model_, 0, kCapacity, SamplingParams{.temperature = 0.0f});
    auto first = tail_->Forward(EmbeddingRows(Prompt()));
    ASSERT_TRUE(first.ok()) << first.status().ToString();
    ASSERT_EQ(*first, ids_[kPrompt]);
  }
  std::span<const int> Prompt() const { return std::span(ids_).first(kPrompt); }
  // Rows for ids_[from], ids_[from + 1], ...: the next own token then correct drafts.
  HiddenRows GoldenRows(size_t from, size_t count) const {
    return EmbeddingRows(std::span(ids_).subspan(from, count));
  }

  static constexpr size_t kPrompt = 5;
  static constexpr int kCapacity = 16;
  std::vector<int> ids_;
  std::optional<LocalTail> tail_;
};

TEST_F(VerifyTest, RefusesBadDraftsWithoutChangingPositions) {
  const std::vector<int> two = {ids_[6], ids_[7]};
  const auto expect_refused = [&](const HiddenRows& rows, std::vector<int> draft, const char* what) {
    auto outcome = tail_->Verify(rows, draft);
    EXPECT_EQ(outcome.status().code(), StatusCode::kInvalidArgument) << what;
    EXPECT_EQ(tail_->positions(), static_cast<int>(kPrompt)) << what;
  };
  expect_refused(GoldenRows(kPrompt, 2), two, "as many drafts as rows");
  expect_refused(GoldenRows(kPrompt, 1), {ids_[6]}, "no own row");
  expect_refused(GoldenRows(kPrompt, 2), {model_->config().vocab_size}, "a draft past the vocabulary");
  expect_refused(GoldenRows(kPrompt, 2), {-1}, "a negative draft");
  HiddenRows narrow = GoldenRows(kPrompt, 2);
  narrow.cols = 32;
  expect_refused(narrow, {ids_[6]}, "rows of the wrong width");
  // More rows than the cache has room for: refused too (by the blocks), nothing kept.
  std::vector<int> long_draft(kCapacity, ids_[6]);
  auto full = tail_->Verify(EmbeddingRows(std::vector<int>(kCapacity + 1, ids_[5])), long_draft);
  EXPECT_FALSE(full.ok());
  EXPECT_EQ(tail_->positions(), static_cast<int>(kPrompt));
  // And the session goes on as if nothing had been sent.
  auto outcome = tail_->Verify(GoldenRows(kPrompt, 3), two);
  ASSERT_TRUE(outcome.ok()) << outcome.status().ToString();
  EXPECT_EQ(*outcome, (VerifyOutcome{.kept = 2, .tokens = {ids_[6], ids_[7], ids_[8]}}));
}

TEST_F(VerifyTest, KeepsTheOwnRowsAndTheKeptDraftsOnly) {
  // Own token ids_[5], drafts: ids_[6] (right), a wrong token, ids_[8]: one kept, then the model's ids_[7].
  const int wrong = (ids_[7] + 1) % model_->config().vocab_size;
  HiddenRows rows = EmbeddingRows(std::vector<int>{ids_[5], ids_[6], wrong, ids_[8]});
  auto outcome = tail_->Verify(rows, std::vector<int>{ids_[6], wrong, ids_[8]});
  ASSERT_TRUE(outcome.ok()) << outcome.status().ToString();
  EXPECT_EQ(*outcome, (VerifyOutcome{.kept = 1, .tokens = {ids_[6], ids_[7]}}));
  EXPECT_EQ(tail_->positions(), static_cast<int>(kPrompt) + 1 + 1);
  // The forgotten positions leave no trace: the next steps are the golden's.
  auto next = tail_->Verify(GoldenRows(7, 1), {});
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(*next, (VerifyOutcome{.kept = 0, .tokens = {ids_[8]}}));
  // A first draft rejected: only the own row stays.
  outcome = tail_->Verify(EmbeddingRows(std::vector<int>{ids_[8], wrong}), std::vector<int>{wrong});
  ASSERT_TRUE(outcome.ok());
  EXPECT_EQ(*outcome, (VerifyOutcome{.kept = 0, .tokens = {ids_[9]}}));
  EXPECT_EQ(tail_->positions(), 9);
  auto last = tail_->Verify(GoldenRows(9, 3), std::vector<int>{ids_[10], ids_[11]});
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(*last, (VerifyOutcome{.kept = 2, .tokens = {ids_[10], ids_[11], ids_[12]}}));
  EXPECT_EQ(tail_->positions(), 12);
}

// ---- 4. Drafters ----------------------------------------------------------------------------------------

std::vector<int> Proposal(Drafter& drafter, const std::vector<int>& context, int max_tokens) {
  auto draft = drafter.Propose(context, max_tokens);
  EXPECT_TRUE(draft.ok()) << draft.status().ToString();
  return draft.ok() ? *draft : std::vector<int>{};
}

TEST(NgramDrafterTest, ProposesWhatFollowedTheMostRecentLongestMatch) {
  NgramDrafter drafter;
  // [5 6 7] occurred at the start: what followed it, up to the end.
  EXPECT_EQ(Proposal(drafter, {5, 6, 7, 8, 5, 6, 7}, 10), (std::vector<int>{8, 5, 6, 7}));
  EXPECT_EQ(Proposal(drafter, {5, 6, 7, 8, 5, 6, 7}, 2), (std::vector<int>{8, 5}));
  EXPECT_EQ(Proposal(drafter, {5, 6, 7, 8, 5, 6, 7}, 0), (std::vector<int>{}));
  EXPECT_EQ(Proposal(drafter, {5, 6, 7, 8, 5, 6, 7}, -1), (std::vector<int>{}));
  // [1 2] occurred twice: the more recent occurrence wins.
  EXPECT_EQ(Proposal(drafter, {1, 2, 9, 1, 2, 8, 3, 1, 2}, 3), (std::vector<int>{8, 3, 1}));
  // The longest match wins over a more recent shorter one: [4 7] at the start, not [7] at index 4.
  EXPECT_EQ(Proposal(drafter, {4, 7, 1, 9, 7, 2, 4, 7}, 3), (std::vector<int>{1, 9, 7}));
  NgramDrafter unigram(1);
  EXPECT_EQ(Proposal(unigram, {4, 7, 1, 9, 7, 2, 4, 7}, 3), (std::vector<int>{2, 4, 7}));
  // An overlapping match: [3 3] after [3 3 3].
  EXPECT_EQ(Proposal(drafter, {3, 3, 3}, 4), (std::vector<int>{3}));
}

TEST(NgramDrafterTest, ProposesNothingWithoutAMatch) {
  NgramDrafter drafter;
  EXPECT_TRUE(Proposal(drafter, {1, 2, 3, 4}, 4).empty());
  EXPECT_TRUE(Proposal(drafter, {1}, 4).empty());
  EXPECT_TRUE(Proposal(drafter, {}, 4).empty());
}

class ModelDrafterTest : public SpeculativeTest {};

// A drafter kept across a generation (its cache reused: the context grows by kept drafts and a corrected
// token, or changes after a shared prefix) proposes what a fresh drafter proposes for the same context.
TEST_F(ModelDrafterTest, ReusedCacheProposesAsAFreshDrafter) {
  const std::vector<int> ids = Ids(testing::GoldenRecords().at(1), "ids");
  for (const int exit_block : {model_->n_layers(), 2}) {
    ModelDrafter reused(model_, exit_block, 64);
    std::vector<int> context(ids.begin(), ids.begin() + 12);
    for (int step = 0; step < 10; ++step) {
      const std::vector<int> proposal = Proposal(reused, context, 4);
      ModelDrafter fresh(model_, exit_block, 64);
      ASSERT_EQ(proposal, Proposal(fresh, context, 4)) << "exit " << exit_block << ", step " << step;
      ASSERT_EQ(proposal.size(), 4u);
      if (step == 6) {
        // Back to a shorter context that parts from the cached tokens three positions before its end.
        context.resize(context.size() - 3);
        context.push_back((context.back() + 5) % model_->config().vocab_size);
        continue;
      }
      // Keep step % 4 drafts, then a token of the model's own (here: another one than the next draft).
      const auto kept = static_cast<size_t>(step % 4);
      context.insert(context.end(), proposal.begin(), proposal.begin() + static_cast<std::ptrdiff_t>(kept));
      context.push_back((proposal[kept] + 1) % model_->config().vocab_size);
    }
  }
}

// The whole model drafted greedily is the golden; and near the end of its cache the drafter proposes only
// what fits (the last draft needs no position of its own), without failing.
TEST_F(ModelDrafterTest, DraftsTheGreedyContinuationWithinItsCapacity) {
  const std::vector<int> ids = Ids(testing::GoldenRecords().at(0), "ids");
  constexpr int kCapacity = 12;
  ModelDrafter drafter(model_, model_->n_layers(), kCapacity);
  for (size_t size = 5; size <= kCapacity + 2; ++size) {
    const std::vector<int> context(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(size));
    const std::vector<int> proposal = Proposal(drafter, context, 4);
    const int room = kCapacity - static_cast<int>(size);
    EXPECT_EQ(static_cast<int>(proposal.size()), std::clamp(room + 1, 0, 4)) << size << " tokens";
    const auto golden_next = ids.begin() + static_cast<std::ptrdiff_t>(size);
    EXPECT_TRUE(std::equal(proposal.begin(), proposal.end(), golden_next)) << size << " tokens";
  }
  // Nothing asked, or nothing to go on: nothing proposed.
  EXPECT_TRUE(Proposal(drafter, {ids[0], ids[1]}, 0).empty());
  EXPECT_TRUE(Proposal(drafter, {}, 4).empty());
}

}  // namespace
}  // namespace tandem
