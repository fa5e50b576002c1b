#include "tandem/scheduler/planner.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "tandem/base/clock.hpp"
#include "tandem/scheduler/link_estimator.hpp"

namespace tandem::scheduler {
namespace {

using std::chrono::milliseconds;

constexpr int kLayers = 8;
constexpr int kDim = 512;  // fp32 row 2048 bytes, fp16/bf16 1024, int8 516, int4 320
// Per message: the 40-byte ACTIVATIONS header and the ~56-byte TOKEN reply.
constexpr double kMessageOverhead = 96;

const ActivationCodec kFp32{};
const ActivationCodec kFp16{Precision::kFp16};
const ActivationCodec kBf16{Precision::kBf16};
const ActivationCodec kInt8{Precision::kInt8};
const ActivationCodec kInt4{Precision::kInt4};
const ActivationCodec kFp32Zstd{Precision::kFp32, Compression::kZstd};
const ActivationCodec kInt8Lz4{Precision::kInt8, Compression::kLz4};

ComputeProfile PerBlock(std::vector<double> decode_block_ms, double head_ms) {
  return {.decode_block_ms = std::move(decode_block_ms), .head_ms = head_ms};
}
ComputeProfile Uniform(double block_ms, double head_ms) {
  return PerBlock(std::vector<double>(kLayers, block_ms), head_ms);
}

TailState Tail(std::string endpoint) {
  return {.endpoint = std::move(endpoint),
          .profile = Uniform(0.2, 0.1),
          .link = {.rtt_ms = 1, .bandwidth_bytes_per_ms = 12500}};
}

// A slow edge (2 ms a block, no prefill buckets: T x decode) and a fast idle tail (0.2 ms a block) 1 ms
// away at 100 Mbit/s. 16 prompt tokens, 32 to decode.
PlanInputs FastLinkSlowEdge() {
  return {.n_layers = kLayers,
          .dim = kDim,
          .kv_bytes_per_position_per_block = 2 * kDim * 4,
          .edge = Uniform(2, 1),
          .tails = {Tail("tcp://a")},
          .prompt_tokens = 16,
          .expected_tokens = 32};
}

// A busy tail over a slow link: the edge's blocks (1 ms) are cheaper than the tail's (0.5 ms at 75% load:
// 2 ms), and a message costs a 50 ms round trip at 1 Mbit/s. 128 prompt tokens.
PlanInputs SlowLinkBusyTail() {
  PlanInputs inputs = FastLinkSlowEdge();
  inputs.edge = Uniform(1, 1);
  inputs.tails[0].profile = Uniform(0.5, 0.1);
  inputs.tails[0].utilization = 0.75;
  inputs.tails[0].link = {.rtt_ms = 50, .bandwidth_bytes_per_ms = 125};
  inputs.prompt_tokens = 128;
  return inputs;
}

std::vector<ActivationCodec> Every() {
  return AllActivationCodecs();
}

template <typename F>
std::function<PlanInputs()> With(std::function<PlanInputs()> base, F change) {
  return [base, change] {
    PlanInputs inputs = base();
    change(inputs);
    return inputs;
  };
}

struct Want {
  int tail;  // -1: all-local
  int cut;
  ActivationCodec codec;
};
const Want kLocal{-1, kLayers, {}};

std::string Show(const Want& want) {
  if (want.tail < 0) return "local";
  return "tail " + std::to_string(want.tail) + " k=" + std::to_string(want.cut) + " " + want.codec.Name();
}
std::string Show(const Candidate& c) {
  if (c.local()) return "local";
  return "tail " + std::to_string(c.tail) + " k=" + std::to_string(c.cut) + " " + c.codec.Name();
}

struct PlanCase {
  std::string name;
  std::function<PlanInputs()> inputs;
  Want want;
};

TEST(MakePlanTest, PicksTheExpectedChoiceForEachWorld) {
  const std::function<PlanInputs()> fast = FastLinkSlowEdge;
  const std::function<PlanInputs()> slow = SlowLinkBusyTail;
  const std::vector<PlanCase> cases = {
      // Fast link, slow edge: as few edge blocks as the privacy floor allows.
      {"fast link, slow edge: smallest k", fast, {0, 1, kFp32}},
      {"privacy floor k_min=3 binds",
       With(fast, [](PlanInputs& in) { in.constraints.min_edge_blocks = 3; }),
       {0, 3, kFp32}},
      {"k_min=0 allows k=0",
       With(fast, [](PlanInputs& in) { in.constraints.min_edge_blocks = 0; }),
       {0, 0, kFp32}},
      {"negative k_min means 0",
       With(fast, [](PlanInputs& in) { in.constraints.min_edge_blocks = -4; }),
       {0, 0, kFp32}},
      {"every codec allowed: the smallest, uncompressed on a tie",
       With(fast, [](PlanInputs& in) { in.constraints.allowed_codecs = Every(); }),
       {0, 1, kInt4}},
      {"tail codecs: fp16 and bf16 tie, the more accurate first",
       With(fast,
            [](PlanInputs& in) {
              in.constraints.allowed_codecs = Every();
              in.tails[0].codecs = {kFp32, kBf16, kFp16};
            }),
       {0, 1, kFp16}},
      {"tail accepts none of the allowed codecs: local",
       With(fast, [](PlanInputs& in) { in.tails[0].codecs = {kInt4}; }), kLocal},
      // (16 + 32) positions x 4096 bytes = 196608 bytes per tail block: 3 blocks fit, so k >= 5.
      {"KV memory binds: k=5",
       With(fast, [](PlanInputs& in) { in.tails[0].free_kv_bytes = 3 * 196608; }),
       {0, 5, kFp32}},
      {"KV fits exactly at the limit",
       With(fast, [](PlanInputs& in) { in.tails[0].free_kv_bytes = 7 * 196608; }),
       {0, 1, kFp32}},
      {"KV fits nowhere: local", With(fast, [](PlanInputs& in) { in.tails[0].free_kv_bytes = 196608 - 1; }),
       kLocal},
      {"unknown free KV is no constraint",
       With(fast, [](PlanInputs& in) { in.kv_bytes_per_position_per_block = int64_t{1} << 40; }),
       {0, 1, kFp32}},
      {"slow link (200 ms RTT): local", With(fast, [](PlanInputs& in) { in.tails[0].link.rtt_ms = 200; }),
       kLocal},
      {"link down: local", With(fast, [](PlanInputs& in) { in.tails[0].link.up = false; }), kLocal},
      {"slow link, local forbidden, fast tail: still the smallest k",
       With(fast,
            [](PlanInputs& in) {
              in.tails[0].link.rtt_ms = 200;
              in.constraints.max_edge_blocks = 4;
            }),
       {0, 1, kFp32}},
      {"two tails, the first loaded: the second",
       With(fast,
            [](PlanInputs& in) {
              in.tails.push_back(Tail("tcp://b"));
              in.tails[0].utilization = 0.9;
            }),
       {1, 1, kFp32}},
      {"two tails, the second loaded: the first",
       With(fast,
            [](PlanInputs& in) {
              in.tails.push_back(Tail("tcp://b"));
              in.tails[1].utilization = 0.9;
            }),
       {0, 1, kFp32}},
      {"two identical tails: the lower index",
       With(fast, [](PlanInputs& in) { in.tails.push_back(Tail("tcp://b")); }),
       {0, 1, kFp32}},
      {"two tails, the first down: the second",
       With(fast,
            [](PlanInputs& in) {
              in.tails.push_back(Tail("tcp://b"));
              in.tails[0].link.up = false;
            }),
       {1, 1, kFp32}},
      {"two tails, the first farther away: the second",
       With(fast,
            [](PlanInputs& in) {
              in.tails.push_back(Tail("tcp://b"));
              in.tails[0].link.rtt_ms = 20;
            }),
       {1, 1, kFp32}},

      // Slow link, busy tail: local when allowed, else as many edge blocks as allowed.
      {"slow link, busy tail: local", slow, kLocal},
      {"local forbidden by memory budget: largest k, smallest allowed codec",
       With(slow,
            [](PlanInputs& in) {
              in.constraints.max_edge_blocks = 5;
              in.constraints.allowed_codecs = {kFp32, kFp16, kInt8};
            }),
       {0, 5, kInt8}},
      {"accuracy budget: no lossy codec, fp32",
       With(slow, [](PlanInputs& in) { in.constraints.max_edge_blocks = 5; }),
       {0, 5, kFp32}},
      {"memory budget of every block still allows local",
       With(slow, [](PlanInputs& in) { in.constraints.max_edge_blocks = kLayers; }), kLocal},
      {"memory budget beyond L allows local",
       With(slow, [](PlanInputs& in) { in.constraints.max_edge_blocks = 100; }), kLocal},
      {"allow_local off: k = L-1",
       With(slow, [](PlanInputs& in) { in.constraints.allow_local = false; }),
       {0, kLayers - 1, kFp32}},
      {"int8 block budget caps k and forbids local",
       With(slow,
            [](PlanInputs& in) {
              in.edge_int8_blocks = kLayers;
              in.constraints.max_int8_blocks = 3;
            }),
       {0, 3, kFp32}},
      {"int8 budget caps k at the budget, not at the int8 blocks",
       With(slow,
            [](PlanInputs& in) {
              in.edge_int8_blocks = 4;
              in.constraints.max_int8_blocks = 2;
            }),
       {0, 2, kFp32}},
      {"int8 budget covering the edge's int8 blocks binds nothing",
       With(slow,
            [](PlanInputs& in) {
              in.edge_int8_blocks = 2;
              in.constraints.max_int8_blocks = 2;
            }),
       kLocal},
      {"tail codecs pick bf16",
       With(slow,
            [](PlanInputs& in) {
              in.constraints.max_edge_blocks = 5;
              in.constraints.allowed_codecs = Every();
              in.tails[0].codecs = {kFp32, kBf16};
            }),
       {0, 5, kBf16}},
      {"a well-compressing codec beats a smaller precision",
       With(slow,
            [](PlanInputs& in) {
              in.constraints.max_edge_blocks = 5;
              in.constraints.allowed_codecs = {kFp32, kFp32Zstd, kInt8};
              in.compression_ratios = {{kFp32Zstd, 0.1}};
            }),
       {0, 5, kFp32Zstd}},
      {"a ratio above 1 counts as 1 (sent uncompressed)",
       With(slow,
            [](PlanInputs& in) {
              in.constraints.max_edge_blocks = 5;
              in.constraints.allowed_codecs = {kInt8Lz4, kInt8};
              in.compression_ratios = {{kInt8Lz4, 3.0}};
            }),
       {0, 5, kInt8}},
      {"a measured lz4 ratio picks int8+lz4",
       With(slow,
            [](PlanInputs& in) {
              in.constraints.max_edge_blocks = 5;
              in.constraints.allowed_codecs = {kInt8, kInt8Lz4};
              in.compression_ratios = {{kInt8Lz4, 0.5}};
            }),
       {0, 5, kInt8Lz4}},
  };
  for (const PlanCase& c : cases) {
    SCOPED_TRACE(c.name);
    auto plan = MakePlan(c.inputs());
    ASSERT_TRUE(plan.ok()) << plan.status().ToString();
    EXPECT_EQ(Show(plan->best), Show(c.want));
    EXPECT_TRUE(plan->best.SameChoice(plan->candidates.front()));
  }
}

// Per-token cost over non-uniform edge blocks (cheap int8 ones first): as the tail gets busier, moving
// a block to the edge pays off for ever more blocks, until all-local wins.
TEST(MakePlanTest, TailUtilizationRisingMovesTheCutTowardTheEdge) {
  const auto inputs_at = [](double utilization) {
    PlanInputs inputs = FastLinkSlowEdge();
    inputs.edge = PerBlock({0.5, 0.5, 1, 1, 2, 2, 4, 4}, 1);
    inputs.tails[0].profile = Uniform(0.9, 0.1);
    inputs.tails[0].utilization = utilization;
    inputs.objective = Objective::PerToken();
    return inputs;
  };
  struct Case {
    double utilization;
    Want want;
  };
  const std::vector<Case> cases = {
      {0.0, {0, 2, kFp32}}, {0.25, {0, 4, kFp32}}, {0.5, {0, 4, kFp32}}, {0.6, {0, 6, kFp32}},
      {0.7, {0, 6, kFp32}}, {0.8, kLocal},         {0.95, kLocal},  // capped at 0.9
      {1.0, kLocal},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE("utilization " + std::to_string(c.utilization));
    auto plan = MakePlan(inputs_at(c.utilization));
    ASSERT_TRUE(plan.ok()) << plan.status().ToString();
    EXPECT_EQ(Show(plan->best), Show(c.want));
  }
  int previous_cut = 0;
  for (int percent = 0; percent <= 100; percent += 5) {
    auto plan = MakePlan(inputs_at(percent / 100.0));
    ASSERT_TRUE(plan.ok());
    EXPECT_GE(plan->best.cut, previous_cut) << "utilization " << percent << "%";
    previous_cut = plan->best.cut;
  }
  EXPECT_EQ(previous_cut, kLayers);
}

// A 512-token prompt over a 10 Mbit/s link: sending it costs more than computing it on the edge, while a
// decoded token (one row) is cheaper on the tail. The objective decides which phase wins.
PlanInputs BigPromptSlowLink() {
  PlanInputs inputs = FastLinkSlowEdge();
  inputs.edge.prefill = {{.tokens = 512, .block_ms = std::vector<double>(kLayers, 40)}};
  inputs.tails[0].profile.prefill = {{.tokens = 512, .block_ms = std::vector<double>(kLayers, 2)}};
  inputs.tails[0].link = {.rtt_ms = 5, .bandwidth_bytes_per_ms = 1250};
  inputs.prompt_tokens = 512;
  return inputs;
}

TEST(MakePlanTest, PrefillAndDecodePhasesChooseDifferently) {
  auto plan = MakePlan(BigPromptSlowLink());
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_EQ(Show(plan->best_prefill), "local");
  EXPECT_EQ(Show(plan->best_decode), "tail 0 k=1 fp32");
  const Candidate* local = plan->Find(Candidate{});
  ASSERT_NE(local, nullptr);
  EXPECT_NEAR(local->prefill_ms, 8 * 40 + 1, 1e-9);
  EXPECT_NEAR(local->decode_ms, 8 * 2 + 1, 1e-9);
  const Candidate* remote = plan->Find(Candidate{.tail = 0, .endpoint = "tcp://a", .cut = 1});
  ASSERT_NE(remote, nullptr);
  EXPECT_NEAR(remote->prefill_ms, 40 + 5 + (kMessageOverhead + 512 * 2048) / 1250 + (7 * 2 + 0.1), 1e-9);
  EXPECT_NEAR(remote->decode_ms, 2 + 5 + (kMessageOverhead + 2048) / 1250 + (7 * 0.2 + 0.1), 1e-9);

  // With lossy codecs allowed the prompt fits through the link: int4 wins the prefill too.
  PlanInputs lossy = BigPromptSlowLink();
  lossy.constraints.allowed_codecs = Every();
  auto lossy_plan = MakePlan(lossy);
  ASSERT_TRUE(lossy_plan.ok());
  EXPECT_EQ(Show(lossy_plan->best_prefill), "tail 0 k=1 int4");
  EXPECT_EQ(Show(lossy_plan->best_decode), "tail 0 k=1 int4");
}

TEST(MakePlanTest, ObjectiveWeightsSwitchTheBest) {
  struct Case {
    std::string objective;
    int expected_tokens;
    std::string want;
  };
  const std::vector<Case> cases = {
      {"ttft", 16, "local"},
      {"per-token", 16, "tail 0 k=1 fp32"},
      {"weighted:1,1", 16, "local"},             // 321 + 17 x 16 < 898 + 10.2 x 16
      {"weighted:1,1", 256, "tail 0 k=1 fp32"},  // a long answer repays the slow prefill
      {"weighted:10,1", 256, "local"},
      {"weighted:1,1", 0, "local"},  // nothing to decode: only the prefill counts
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.objective + " x " + std::to_string(c.expected_tokens));
    PlanInputs inputs = BigPromptSlowLink();
    auto objective = Objective::Parse(c.objective);
    ASSERT_TRUE(objective.ok());
    inputs.objective = *objective;
    inputs.expected_tokens = c.expected_tokens;
    auto plan = MakePlan(inputs);
    ASSERT_TRUE(plan.ok()) << plan.status().ToString();
    EXPECT_EQ(Show(plan->best), c.want);
    for (const Candidate& candidate : plan->candidates) {
      EXPECT_NEAR(candidate.cost,
                  objective->ttft_weight * candidate.prefill_ms +
                      objective->token_weight * candidate.decode_ms * c.expected_tokens,
                  1e-9);
    }
  }
}

// The k=1 fp32 candidate of FastLinkSlowEdge, computed by hand: edge 2 ms x T, one RTT per chunk,
// bytes / bandwidth, tail 7 blocks x 0.2 ms x T + 0.1 ms head, inflated by the load.
TEST(MakePlanTest, PredictsEachTermExactly) {
  struct Case {
    std::string name;
    std::function<void(PlanInputs&)> change;
    double prefill_ms;
    double decode_ms;
  };
  const double prefill_bytes = kMessageOverhead + 16 * 2048;
  const double decode_bytes = kMessageOverhead + 2048;
  const std::vector<Case> cases = {
      {"base", [](PlanInputs&) {}, 32 + 1 + prefill_bytes / 12500 + 22.5, 2 + 1 + decode_bytes / 12500 + 1.5},
      {"utilization 0.5 doubles the tail", [](PlanInputs& in) { in.tails[0].utilization = 0.5; },
       32 + 1 + prefill_bytes / 12500 + 45, 2 + 1 + decode_bytes / 12500 + 3},
      {"utilization 1 is capped at 0.9", [](PlanInputs& in) { in.tails[0].utilization = 1; },
       32 + 1 + prefill_bytes / 12500 + 225, 2 + 1 + decode_bytes / 12500 + 15},
      {"unknown bandwidth: the default", [](PlanInputs& in) { in.tails[0].link.bandwidth_bytes_per_ms = 0; },
       32 + 1 + prefill_bytes / 12500 + 22.5, 2 + 1 + decode_bytes / 12500 + 1.5},
      {"unknown bandwidth, slower default",
       [](PlanInputs& in) {
         in.tails[0].link.bandwidth_bytes_per_ms = -1;
         in.default_bandwidth_bytes_per_ms = 1000;
       },
       32 + 1 + prefill_bytes / 1000 + 22.5, 2 + 1 + decode_bytes / 1000 + 1.5},
      {"measured bandwidth beats the default",
       [](PlanInputs& in) {
         in.tails[0].link.bandwidth_bytes_per_ms = 2000;
         in.default_bandwidth_bytes_per_ms = 1000;
       },
       32 + 1 + prefill_bytes / 2000 + 22.5, 2 + 1 + decode_bytes / 2000 + 1.5},
      {"RTT 7", [](PlanInputs& in) { in.tails[0].link.rtt_ms = 7; }, 32 + 7 + prefill_bytes / 12500 + 22.5,
       2 + 7 + decode_bytes / 12500 + 1.5},
      {"a compression ratio for fp32 (uncompressed) is ignored",
       [](PlanInputs& in) {
         in.compression_ratios = {{kFp32, 0.5}};
       },
       32 + 1 + prefill_bytes / 12500 + 22.5, 2 + 1 + decode_bytes / 12500 + 1.5},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    PlanInputs inputs = FastLinkSlowEdge();
    c.change(inputs);
    auto plan = MakePlan(inputs);
    ASSERT_TRUE(plan.ok()) << plan.status().ToString();
    const Candidate* k1 = plan->Find(Candidate{.tail = 0, .endpoint = "tcp://a", .cut = 1});
    ASSERT_NE(k1, nullptr);
    EXPECT_NEAR(k1->prefill_ms, c.prefill_ms, 1e-9);
    EXPECT_NEAR(k1->decode_ms, c.decode_ms, 1e-9);
    EXPECT_NEAR(k1->cost, c.prefill_ms + 32 * c.decode_ms, 1e-9);
    const Candidate* local = plan->Find(Candidate{});
    ASSERT_NE(local, nullptr);
    EXPECT_EQ(local->cut, kLayers);
    EXPECT_EQ(local->endpoint, "");
    EXPECT_NEAR(local->prefill_ms, 16 * 2 * 8 + 1, 1e-9);
    EXPECT_NEAR(local->decode_ms, 2 * 8 + 1, 1e-9);
  }
}

// Private output: every split is U-shaped, [k, m) on the tail; the rows go both ways, and the edge runs
// [m, L) and the head after them. The edge keeps at least its last block unless told otherwise.
TEST(MakePlanTest, PrivateOutputPlansUShapedSplitsWithTheReturnTrip) {
  PlanInputs inputs = FastLinkSlowEdge();
  inputs.constraints.private_output = true;
  auto plan = MakePlan(inputs);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  for (const Candidate& candidate : plan->candidates) {
    if (candidate.local()) continue;
    EXPECT_TRUE(candidate.private_output()) << candidate.Describe();
    EXPECT_GT(candidate.end, candidate.cut) << candidate.Describe();
    EXPECT_LE(candidate.end, kLayers - 1) << candidate.Describe();
  }
  const double prefill_bytes = 2 * (kMessageOverhead + 16 * 2048),
               decode_bytes = 2 * (kMessageOverhead + 2048);
  const Candidate* u = plan->Find(Candidate{.tail = 0, .endpoint = "tcp://a", .cut = 1, .end = 5});
  ASSERT_NE(u, nullptr);
  EXPECT_EQ(u->Describe(), "k=1 m=5 fp32 @tcp://a");
  // Edge [0,1), a round trip, the bytes both ways, tail [1,5) without a head, edge [5,8) and its head.
  EXPECT_NEAR(u->prefill_ms, 32 + 1 + prefill_bytes / 12500 + 16 * 0.2 * 4 + 16 * 2 * 3 + 1, 1e-9);
  EXPECT_NEAR(u->decode_ms, 2 + 1 + decode_bytes / 12500 + 0.2 * 4 + 2 * 3 + 1, 1e-9);
  // The slow edge gives the fast tail all it may: k at the privacy floor, m one block short of L.
  EXPECT_EQ(plan->best.cut, 1);
  EXPECT_EQ(plan->best.end, kLayers - 1);
  EXPECT_EQ(plan->Find(Candidate{.tail = 0, .endpoint = "tcp://a", .cut = 1}), nullptr);

  inputs.constraints.min_edge_last_blocks = 0;  // the head alone on the edge
  plan = MakePlan(inputs);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->best.end, kLayers);
}

// A tail with a block-range checkpoint runs only the blocks it holds, and without the head only
// private-output splits.
TEST(MakePlanTest, ATailHoldingSomeBlocksGetsOnlyCutsWithinThem) {
  PlanInputs inputs = FastLinkSlowEdge();
  inputs.tails[0].held_first = 2;
  inputs.tails[0].held_last = 6;
  auto plan = MakePlan(inputs);
  ASSERT_TRUE(plan.ok());
  ASSERT_EQ(plan->candidates.size(), 1u);  // all-local only
  EXPECT_TRUE(plan->best.local());
  inputs.constraints.allow_local = false;
  const auto refused = MakePlan(inputs);
  EXPECT_NE(refused.status().message().find("holds blocks 2:6 only, no head"), std::string::npos)
      << refused.status().message();

  inputs.constraints.private_output = true;
  plan = MakePlan(inputs);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  for (const Candidate& candidate : plan->candidates) {
    EXPECT_GE(candidate.cut, 2) << candidate.Describe();
    EXPECT_LE(candidate.end, 6) << candidate.Describe();
  }
  EXPECT_EQ(plan->best.cut, 2);
  EXPECT_EQ(plan->best.end, 6);

  inputs.tails[0].held_first = 6;
  inputs.tails[0].held_last = 5;
  EXPECT_EQ(MakePlan(inputs).status().code(), StatusCode::kInvalidArgument);
}

// Bytes per row on the wire for each codec of a 512-wide row; the ratio scales the payload, not the
// per-message header and reply.
TEST(MakePlanTest, CodecBytesScaleThePayloadByTheCompressionRatio) {
  struct Case {
    ActivationCodec codec;
    std::vector<std::pair<ActivationCodec, double>> ratios;
    double row_bytes;
  };
  const std::vector<Case> cases = {
      {kFp32, {}, 2048},
      {kFp16, {}, 1024},
      {kBf16, {}, 1024},
      {kInt8, {}, 516},
      {kInt4, {}, 320},
      {kInt8Lz4, {}, 516},                         // no ratio measured: 1
      {kInt8Lz4, {{kInt8Lz4, 0.25}}, 516 * 0.25},  //
      {kInt8Lz4, {{kFp32Zstd, 0.25}}, 516},        // another codec's ratio
      {kInt8Lz4, {{kInt8Lz4, 3.0}}, 516},          // above 1: sent uncompressed
      {kFp32Zstd, {{kFp32Zstd, 0.5}, {kInt8Lz4, 0.1}}, 1024},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.codec.Name());
    PlanInputs inputs = FastLinkSlowEdge();
    inputs.constraints.allowed_codecs = {c.codec};
    inputs.compression_ratios = c.ratios;
    auto plan = MakePlan(inputs);
    ASSERT_TRUE(plan.ok()) << plan.status().ToString();
    const Candidate* k1 = plan->Find(Candidate{.tail = 0, .endpoint = "tcp://a", .cut = 1, .codec = c.codec});
    ASSERT_NE(k1, nullptr);
    EXPECT_NEAR(k1->decode_ms, 2 + 1 + (kMessageOverhead + c.row_bytes) / 12500 + 1.5, 1e-9);
    EXPECT_NEAR(k1->prefill_ms, 32 + 1 + (kMessageOverhead + 16 * c.row_bytes) / 12500 + 22.5, 1e-9);
  }
}

// A prefill of T rows in chunks of max_rows: each further chunk adds a round trip and its overhead bytes.
TEST(MakePlanTest, ChunkingByMaxRowsAddsRoundTrips) {
  struct Case {
    uint32_t max_rows;
    int chunks;
  };
  const std::vector<Case> cases = {{0, 1}, {16, 1}, {32, 1}, {15, 2}, {8, 2},
                                   {5, 4}, {4, 4},  {3, 6},  {1, 16}};
  PlanInputs inputs = FastLinkSlowEdge();
  inputs.tails[0].link.rtt_ms = 3;
  auto unchunked = MakePlan(inputs);
  ASSERT_TRUE(unchunked.ok());
  const Candidate choice{.tail = 0, .endpoint = "tcp://a", .cut = 1};
  const double base_prefill = unchunked->Find(choice)->prefill_ms;
  const double base_decode = unchunked->Find(choice)->decode_ms;
  for (const Case& c : cases) {
    SCOPED_TRACE("max_rows " + std::to_string(c.max_rows));
    inputs.tails[0].max_rows = c.max_rows;
    auto plan = MakePlan(inputs);
    ASSERT_TRUE(plan.ok());
    const Candidate* k1 = plan->Find(choice);
    ASSERT_NE(k1, nullptr);
    EXPECT_NEAR(k1->prefill_ms - base_prefill, (c.chunks - 1) * (3 + kMessageOverhead / 12500), 1e-9);
    EXPECT_NEAR(k1->decode_ms, base_decode, 1e-12);
  }
}

TEST(MakePlanTest, TiesAreBrokenDeterministically) {
  // No compression ratios: each precision's three compressions cost the same.
  PlanInputs inputs = FastLinkSlowEdge();
  inputs.constraints.allowed_codecs = Every();
  inputs.tails.push_back(Tail("tcp://b"));
  auto plan = MakePlan(inputs);
  ASSERT_TRUE(plan.ok());
  ASSERT_GE(plan->candidates.size(), 6u);
  const std::vector<std::string> want = {"k=1 int4 @tcp://a",      "k=1 int4 @tcp://b",
                                         "k=1 int4+lz4 @tcp://a",  "k=1 int4+lz4 @tcp://b",
                                         "k=1 int4+zstd @tcp://a", "k=1 int4+zstd @tcp://b"};
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(plan->candidates[i].Describe(), want[i]);
  // Equal costs at different cuts: the one with fewer edge blocks first.
  PlanInputs flat = FastLinkSlowEdge();
  flat.edge = Uniform(1, 0);
  flat.tails[0].profile = Uniform(1, 0);
  flat.tails[0].link.bandwidth_bytes_per_ms =
      4 * (kMessageOverhead + 2048);  // 0.25 ms a row: sums stay exact
  flat.constraints.min_edge_blocks = 0;
  flat.constraints.allow_local = false;
  flat.objective = Objective::PerToken();
  auto flat_plan = MakePlan(flat);
  ASSERT_TRUE(flat_plan.ok());
  for (size_t i = 0; i < flat_plan->candidates.size(); ++i) {
    EXPECT_EQ(flat_plan->candidates[i].cut, static_cast<int>(i));
  }
}

// Brute force: every combination of constraints gives exactly the feasible choices, by ascending cost.
TEST(MakePlanTest, CandidatesAreExactlyTheFeasibleChoicesByCost) {
  int plans = 0;
  int unavailable = 0;
  for (int min_edge : {-1, 0, 1, 3, 8}) {
    for (int max_edge : {-1, 0, 2, 5, 8}) {
      for (int max_int8 : {-1, 0, 2}) {
        for (int edge_int8 : {0, 4, 8}) {
          for (bool all_codecs : {false, true}) {
            for (bool allow_local : {false, true}) {
              for (int64_t free_kv : {int64_t{-1}, int64_t{3 * 196608}}) {
                if (max_edge >= 0 && min_edge > max_edge) continue;
                PlanInputs inputs = SlowLinkBusyTail();
                inputs.prompt_tokens = 16;
                inputs.constraints = {.min_edge_blocks = min_edge,
                                      .max_edge_blocks = max_edge,
                                      .allowed_codecs = all_codecs ? Every() : std::vector<ActivationCodec>{},
                                      .max_int8_blocks = max_int8,
                                      .allow_local = allow_local};
                inputs.edge_int8_blocks = edge_int8;
                inputs.tails[0].free_kv_bytes = free_kv;
                inputs.tails[0].codecs = {kFp32, kInt8, kInt4, kInt8Lz4};
                const auto int8_ok = [&](int k) {
                  return max_int8 < 0 || std::min(k, edge_int8) <= max_int8;
                };
                size_t feasible = 0;
                for (int k = std::max(min_edge, 0); k < kLayers; ++k) {
                  const bool fits = (max_edge < 0 || k <= max_edge) && int8_ok(k) &&
                                    (free_kv < 0 || 48 * (kLayers - k) * 4096 <= free_kv);
                  if (fits) feasible += all_codecs ? 4 : 1;
                }
                const bool local = allow_local && (max_edge < 0 || max_edge >= kLayers) && int8_ok(kLayers);
                if (local) ++feasible;

                SCOPED_TRACE(testing::Message() << "min " << min_edge << " max " << max_edge << " int8 "
                                                << max_int8 << "/" << edge_int8 << " codecs " << all_codecs
                                                << " local " << allow_local << " kv " << free_kv);
                auto plan = MakePlan(inputs);
                if (feasible == 0) {
                  ++unavailable;
                  EXPECT_EQ(plan.status().code(), StatusCode::kUnavailable) << plan.status().ToString();
                  continue;
                }
                ++plans;
                ASSERT_TRUE(plan.ok()) << plan.status().ToString();
                EXPECT_EQ(plan->candidates.size(), feasible);
                for (size_t i = 0; i < plan->candidates.size(); ++i) {
                  const Candidate& c = plan->candidates[i];
                  if (i > 0) {
                    EXPECT_LE(plan->candidates[i - 1].cost, c.cost);
                  }
                  EXPECT_LE(plan->best_prefill.prefill_ms, c.prefill_ms);
                  EXPECT_LE(plan->best_decode.decode_ms, c.decode_ms);
                  EXPECT_EQ(plan->Find(c), &c);
                  if (c.local()) continue;
                  EXPECT_GE(c.cut, std::max(min_edge, 0));
                  EXPECT_LT(c.cut, kLayers);
                  if (max_edge >= 0) {
                    EXPECT_LE(c.cut, max_edge);
                  }
                  EXPECT_TRUE(int8_ok(c.cut));
                  if (!all_codecs) {
                    EXPECT_EQ(c.codec, kFp32);
                  }
                }
                EXPECT_TRUE(plan->best.SameChoice(plan->candidates.front()));
              }
            }
          }
        }
      }
    }
  }
  EXPECT_GT(plans, 100);
  EXPECT_GT(unavailable, 10);
}

struct ErrorCase {
  std::string name;
  std::function<void(PlanInputs&)> change;
  std::vector<std::string> message_parts;
};

// Each case's change to FastLinkSlowEdge() makes MakePlan fail with `code` and a message naming every part.
void ExpectPlanErrors(const std::vector<ErrorCase>& cases, StatusCode code) {
  for (const ErrorCase& c : cases) {
    SCOPED_TRACE(c.name);
    PlanInputs inputs = FastLinkSlowEdge();
    c.change(inputs);
    auto plan = MakePlan(inputs);
    ASSERT_EQ(plan.status().code(), code) << plan.status().ToString();
    for (const std::string& part : c.message_parts) {
      EXPECT_NE(plan.status().message().find(part), std::string::npos) << plan.status().message();
    }
  }
}

TEST(MakePlanTest, NoFeasibleCandidateIsUnavailableAndSaysWhy) {
  const std::vector<ErrorCase> cases = {
      {"link down, local off",
       [](PlanInputs& in) {
         in.tails[0].link.up = false;
         in.constraints.allow_local = false;
       },
       {"no feasible plan", "tcp://a: link down", "all-local not allowed (allow_local is off)"}},
      {"link down, memory budget",
       [](PlanInputs& in) {
         in.tails[0].link.up = false;
         in.constraints.max_edge_blocks = 4;
       },
       {"tcp://a: link down", "all-local not allowed (edge memory budget 4 of 8 blocks)"}},
      {"no tails",
       [](PlanInputs& in) {
         in.tails.clear();
         in.constraints.allow_local = false;
       },
       {"no tail configured"}},
      {"KV fits nowhere",
       [](PlanInputs& in) {
         in.tails[0].free_kv_bytes = 1000;
         in.constraints.allow_local = false;
       },
       {"tcp://a: KV cache does not fit (k=7 needs 196608 bytes, 1000 free)"}},
      {"codecs disjoint",
       [](PlanInputs& in) {
         in.tails[0].codecs = {kInt4, kInt8};
         in.constraints.allow_local = false;
       },
       {"accepts none of the allowed codecs (allowed fp32; it accepts int4, int8)"}},
      {"int8 budget below the privacy floor",
       [](PlanInputs& in) {
         in.constraints.min_edge_blocks = 3;
         in.edge_int8_blocks = 8;
         in.constraints.max_int8_blocks = 2;
       },
       {"no cut satisfies k >= 3", "int8 budget 2 of the edge's 8 int8 blocks"}},
      {"privacy floor L leaves only local, which is off",
       [](PlanInputs& in) {
         in.constraints.min_edge_blocks = kLayers;
         in.constraints.allow_local = false;
       },
       {"no cut satisfies k >= 8 (privacy floor) and k < L = 8"}},
      {"two tails, two reasons",
       [](PlanInputs& in) {
         in.tails.push_back(Tail("tcp://b"));
         in.tails[0].link.up = false;
         in.tails[1].free_kv_bytes = 0;
         in.constraints.allow_local = false;
       },
       {"tcp://a: link down; tcp://b: KV cache"}},
  };
  ExpectPlanErrors(cases, StatusCode::kUnavailable);
}

TEST(MakePlanTest, InconsistentInputsAreInvalidArguments) {
  const double nan = std::nan("");
  const std::vector<ErrorCase> cases = {
      {"no layers", [](PlanInputs& in) { in.n_layers = 0; }, {"n_layers is 0"}},
      {"no dim", [](PlanInputs& in) { in.dim = -1; }, {"dim is -1"}},
      {"negative KV bytes",
       [](PlanInputs& in) { in.kv_bytes_per_position_per_block = -1; },
       {"kv_bytes_per_position_per_block"}},
      {"edge profile too short",
       [](PlanInputs& in) { in.edge.decode_block_ms.pop_back(); },
       {"edge profile has 7 decode block times; the model has 8 blocks"}},
      {"tail profile too long",
       [](PlanInputs& in) { in.tails[0].profile.decode_block_ms.push_back(1); },
       {"tail 0 (tcp://a) profile has 9 decode"}},
      {"bucket of the wrong size",
       [](PlanInputs& in) {
         in.edge.prefill = {{.tokens = 4, .block_ms = {1, 2}}};
       },
       {"edge profile prefill bucket 0 has 2 block times"}},
      {"buckets not ascending",
       [](PlanInputs& in) {
         in.tails[0].profile.prefill = {{.tokens = 64, .block_ms = std::vector<double>(kLayers, 1)},
                                        {.tokens = 16, .block_ms = std::vector<double>(kLayers, 1)}};
       },
       {"prefill bucket 1 has 16 tokens", "ascending"}},
      {"buckets with equal tokens",
       [](PlanInputs& in) {
         in.edge.prefill = {{.tokens = 16, .block_ms = std::vector<double>(kLayers, 1)},
                            {.tokens = 16, .block_ms = std::vector<double>(kLayers, 1)}};
       },
       {"prefill bucket 1 has 16 tokens"}},
      {"bucket of 0 tokens",
       [](PlanInputs& in) { in.edge.prefill = {{.tokens = 0, .block_ms = std::vector<double>(kLayers, 1)}}; },
       {"prefill bucket 0 has 0 tokens"}},
      {"negative block time",
       [](PlanInputs& in) { in.edge.decode_block_ms[3] = -1; },
       {"edge profile decode time of block 3 is -1"}},
      {"NaN block time",
       [nan](PlanInputs& in) { in.tails[0].profile.decode_block_ms[0] = nan; },
       {"decode time of block 0 is nan"}},
      {"infinite bucket time",
       [](PlanInputs& in) {
         in.edge.prefill = {{.tokens = 8, .block_ms = std::vector<double>(kLayers, 1)}};
         in.edge.prefill[0].block_ms[7] = INFINITY;
       },
       {"prefill bucket 0 time of block 7 is inf"}},
      {"negative head", [](PlanInputs& in) { in.tails[0].profile.head_ms = -0.5; }, {"head time is -0.5"}},
      {"utilization above 1", [](PlanInputs& in) { in.tails[0].utilization = 1.5; }, {"utilization is 1.5"}},
      {"negative utilization",
       [](PlanInputs& in) { in.tails[0].utilization = -0.1; },
       {"utilization is -0.1"}},
      {"NaN utilization", [nan](PlanInputs& in) { in.tails[0].utilization = nan; }, {"utilization is nan"}},
      {"negative RTT", [](PlanInputs& in) { in.tails[0].link.rtt_ms = -1; }, {"link RTT is -1"}},
      {"NaN bandwidth",
       [nan](PlanInputs& in) { in.tails[0].link.bandwidth_bytes_per_ms = nan; },
       {"link bandwidth is nan"}},
      {"duplicate endpoints",
       [](PlanInputs& in) { in.tails.push_back(Tail("tcp://a")); },
       {"tails 0 and 1 have the same endpoint"}},
      {"no prompt", [](PlanInputs& in) { in.prompt_tokens = 0; }, {"prompt_tokens is 0"}},
      {"negative expected tokens",
       [](PlanInputs& in) { in.expected_tokens = -1; },
       {"expected_tokens is -1"}},
      {"negative weight",
       [](PlanInputs& in) {
         in.objective = {-1, 1};
       },
       {"objective weights -1, 1"}},
      {"both weights zero",
       [](PlanInputs& in) {
         in.objective = {0, 0};
       },
       {"both 0"}},
      {"k_min above the memory budget",
       [](PlanInputs& in) {
         in.constraints.min_edge_blocks = 3;
         in.constraints.max_edge_blocks = 2;
       },
       {"min_edge_blocks 3 exceeds max_edge_blocks 2"}},
      {"k_min above L",
       [](PlanInputs& in) { in.constraints.min_edge_blocks = 9; },
       {"min_edge_blocks 9 exceeds the model's 8 blocks"}},
      {"int8 blocks above L", [](PlanInputs& in) { in.edge_int8_blocks = 9; }, {"edge_int8_blocks is 9"}},
      {"negative int8 blocks", [](PlanInputs& in) { in.edge_int8_blocks = -1; }, {"edge_int8_blocks is -1"}},
      {"zero default bandwidth",
       [](PlanInputs& in) { in.default_bandwidth_bytes_per_ms = 0; },
       {"default_bandwidth_bytes_per_ms is 0"}},
      {"zero compression ratio",
       [](PlanInputs& in) {
         in.compression_ratios = {{kInt8Lz4, 0}};
       },
       {"compression ratio of int8+lz4 is 0"}},
      {"unknown codec",
       [](PlanInputs& in) { in.constraints.allowed_codecs = {{static_cast<Precision>(9)}}; },
       {"allowed_codecs"}},
  };
  ExpectPlanErrors(cases, StatusCode::kInvalidArgument);
}

TEST(ProfileTest, PrefillInterpolatesBetweenBuckets) {
  ComputeProfile profile{
      .decode_block_ms = {1, 2},
      .prefill = {{.tokens = 8, .block_ms = {4, 8}}, {.tokens = 32, .block_ms = {10, 20}}}};
  struct Case {
    int tokens, first, last;
    double want;
  };
  const std::vector<Case> cases = {
      {8, 0, 2, 12},               // on a bucket
      {32, 0, 2, 30},              // on the last bucket
      {20, 0, 2, 21},              // halfway between 8 and 32
      {20, 1, 2, 14},              // block 1 alone
      {64, 0, 2, 60},              // beyond the last: proportional
      {33, 0, 1, 10.0 * 33 / 32},  //
      {1, 0, 2, 3},                // T = 1 is the decode figure
      {4, 0, 2, 3 + 9.0 * 3 / 7},  // between decode at 1 and the first bucket
      {5, 0, 0, 0},                // empty range
      {5, 2, 1, 0},                // reversed range
      {0, 0, 2, 0},                // no tokens
      {8, -3, 7, 12},              // clipped to the blocks
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(testing::Message() << "T " << c.tokens << " [" << c.first << ", " << c.last << ")");
    EXPECT_NEAR(PrefillBlocksMs(profile, c.tokens, c.first, c.last), c.want, 1e-12);
  }
  EXPECT_DOUBLE_EQ(DecodeBlocksMs(profile, 0, 2), 3);
  EXPECT_DOUBLE_EQ(DecodeBlocksMs(profile, 1, 2), 2);
  EXPECT_DOUBLE_EQ(DecodeBlocksMs(profile, 1, 1), 0);

  const ComputeProfile no_buckets{.decode_block_ms = {1, 2}};
  EXPECT_DOUBLE_EQ(PrefillBlocksMs(no_buckets, 10, 0, 2), 30);
  EXPECT_DOUBLE_EQ(PrefillBlocksMs(no_buckets, 10, 1, 2), 20);
  const ComputeProfile one_token_bucket{.decode_block_ms = {1, 2},
                                        .prefill = {{.tokens = 1, .block_ms = {3, 3}}}};
  EXPECT_DOUBLE_EQ(PrefillBlocksMs(one_token_bucket, 1, 0, 2), 6);
  EXPECT_DOUBLE_EQ(PrefillBlocksMs(one_token_bucket, 4, 0, 2), 24);
}

TEST(ObjectiveTest, Parse) {
  struct Case {
    std::string text;
    bool ok;
    double ttft_weight, token_weight;
  };
  const std::vector<Case> cases = {
      {"ttft", true, 1, 0},
      {"per-token", true, 0, 1},
      {"weighted:1,1", true, 1, 1},
      {"weighted:2,0.5", true, 2, 0.5},
      {"weighted:0,3", true, 0, 3},
      {"weighted:1e-3,1", true, 0.001, 1},
      {"", false},
      {"TTFT", false},
      {"per_token", false},
      {"weighted", false},
      {"weighted:", false},
      {"weighted:1", false},
      {"weighted:1,", false},
      {"weighted:,1", false},
      {"weighted:a,b", false},
      {"weighted:1,2,3", false},
      {"weighted:1,2x", false},
      {"weighted: 1,2", false},
      {"weighted:-1,1", false},
      {"weighted:0,0", false},
      {"weighted:nan,1", false},
      {"weighted:inf,1", false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE("\"" + c.text + "\"");
    auto objective = Objective::Parse(c.text);
    ASSERT_EQ(objective.ok(), c.ok) << objective.status().ToString();
    if (c.ok) {
      EXPECT_DOUBLE_EQ(objective->ttft_weight, c.ttft_weight);
      EXPECT_DOUBLE_EQ(objective->token_weight, c.token_weight);
    } else {
      EXPECT_EQ(objective.status().code(), StatusCode::kInvalidArgument);
      EXPECT_NE(objective.status().message().find("ttft, per-token or weighted:A,B"), std::string::npos)
          << objective.status().message();
    }
  }
}

TEST(CandidateTest, DescribeSameChoiceAndFind) {
  const Candidate local{.tail = -1, .cut = kLayers, .prefill_ms = 5};
  const Candidate other_local{.tail = -1, .endpoint = "ignored", .cut = 3, .codec = kInt8, .cost = 9};
  const Candidate a{.tail = 0, .endpoint = "tcp://a", .cut = 3, .codec = kInt8Lz4, .cost = 1};
  EXPECT_EQ(local.Describe(), "local");
  EXPECT_EQ(a.Describe(), "k=3 int8+lz4 @tcp://a");
  EXPECT_EQ((Candidate{.tail = 1, .endpoint = "tcp://b", .cut = 0}.Describe()), "k=0 fp32 @tcp://b");

  struct Case {
    Candidate other;
    bool same;
  };
  const std::vector<Case> cases = {
      {a, true},
      {Candidate{.tail = 4, .endpoint = "tcp://a", .cut = 3, .codec = kInt8Lz4, .cost = 7},
       true},  // index moved
      {Candidate{.tail = 0, .endpoint = "tcp://b", .cut = 3, .codec = kInt8Lz4}, false},
      {Candidate{.tail = 0, .endpoint = "tcp://a", .cut = 2, .codec = kInt8Lz4}, false},
      {Candidate{.tail = 0, .endpoint = "tcp://a", .cut = 3, .codec = kInt8}, false},
      {local, false},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(a.SameChoice(cases[i].other), cases[i].same);
    EXPECT_EQ(cases[i].other.SameChoice(a), cases[i].same);
  }
  EXPECT_TRUE(local.SameChoice(other_local));

  Plan plan;
  plan.candidates = {a, local};
  EXPECT_EQ(plan.Find(other_local), &plan.candidates[1]);
  EXPECT_EQ(plan.Find(cases[1].other), &plan.candidates[0]);
  EXPECT_EQ(plan.Find(cases[2].other), nullptr);
}

// --- Drafting ----------------------------------------------------------------------------------------

// Speculative decoding on, with these figures.
DraftInputs Drafting(double acceptance, double draft_token_ms, int max_drafts) {
  return {
      .enabled = true, .acceptance = acceptance, .draft_token_ms = draft_token_ms, .max_drafts = max_drafts};
}

// The same candidates, in the same order, with the same predictions, and no drafts.
void ExpectSamePlansWithoutDrafts(const Plan& plan, const Plan& reference) {
  ASSERT_EQ(plan.candidates.size(), reference.candidates.size());
  for (size_t i = 0; i < plan.candidates.size(); ++i) {
    const Candidate& c = plan.candidates[i];
    const Candidate& r = reference.candidates[i];
    SCOPED_TRACE(r.Describe());
    EXPECT_TRUE(c.SameChoice(r)) << c.Describe();
    EXPECT_EQ(c.prefill_ms, r.prefill_ms);
    EXPECT_EQ(c.decode_ms, r.decode_ms);
    EXPECT_EQ(c.cost, r.cost);
    EXPECT_EQ(c.draft_tokens, 0);
    EXPECT_EQ(c.tokens_per_step, 1);
  }
}

TEST(DraftPlanTest, NoDraftsLeavePlansAsTheyWere) {
  const Result<Plan> reference = MakePlan(FastLinkSlowEdge());
  ASSERT_TRUE(reference.ok()) << reference.status().ToString();
  for (const PlanInputs& inputs : {
           With(FastLinkSlowEdge,
                [](PlanInputs& in) {
                  in.draft = Drafting(0.9, 0.1, 16);
                  in.draft.enabled = false;
                })(),
           With(FastLinkSlowEdge, [](PlanInputs& in) { in.draft = Drafting(0, 0.1, 16); })(),
           With(FastLinkSlowEdge, [](PlanInputs& in) { in.draft = Drafting(0.01, 0.1, 16); })(),
           With(FastLinkSlowEdge, [](PlanInputs& in) { in.draft = Drafting(0.9, 0.1, 0); })(),
       }) {
    const Result<Plan> plan = MakePlan(inputs);
    ASSERT_TRUE(plan.ok()) << plan.status().ToString();
    ExpectSamePlansWithoutDrafts(*plan, *reference);
  }
}

// FastLinkSlowEdge's tail 50 ms away: 2 ms of edge block, 1.5 ms of tail and 0.16 ms of fp32 transfer a
// row, and a round trip that dwarfs them. Split only.
PlanInputs FarTail() {
  PlanInputs inputs = FastLinkSlowEdge();
  inputs.tails[0].link.rtt_ms = 50;
  inputs.constraints.allow_local = false;
  return inputs;
}

TEST(DraftPlanTest, AFarTailDraftsToHideItsRoundTrip) {
  PlanInputs inputs = FarTail();
  const Result<Plan> without = MakePlan(inputs);
  inputs.draft = Drafting(0.8, 0.1, 16);
  const Result<Plan> with = MakePlan(inputs);
  ASSERT_TRUE(without.ok() && with.ok());

  const Candidate& best = with->best;
  ASSERT_EQ(best.cut, 1);
  // (RTT + rows x (edge + tail + transfer) + drafts x drafter) / E(a, n), least at 7 drafts.
  const auto step_ms = [](int drafts) {
    const int rows = drafts + 1;
    return rows * 2 + 50 + (kMessageOverhead + rows * 2048) / 12500 + rows * 1.5 + drafts * 0.1;
  };
  EXPECT_EQ(best.draft_tokens, 7);
  EXPECT_DOUBLE_EQ(best.tokens_per_step, ExpectedTokensPerStep(0.8, 7));
  EXPECT_NEAR(best.decode_ms, step_ms(7) / ExpectedTokensPerStep(0.8, 7), 1e-9);
  EXPECT_NEAR(best.cost, best.prefill_ms + 32 * best.decode_ms, 1e-9);
  EXPECT_EQ(best.Describe(), "k=1 fp32 @tcp://a draft=7");

  const Candidate* plain = without->Find(best);
  ASSERT_NE(plain, nullptr);
  EXPECT_NEAR(plain->decode_ms, step_ms(0), 1e-9);
  EXPECT_LT(best.decode_ms, plain->decode_ms / 2);
  EXPECT_EQ(best.prefill_ms, plain->prefill_ms);  // drafting is for decode alone
  // Each further edge block makes a row dearer: deeper cuts draft no more.
  for (int k = 2; k < kLayers; ++k) {
    const Candidate* shallower = with->Find(Candidate{.tail = 0, .endpoint = "tcp://a", .cut = k - 1});
    const Candidate* deeper = with->Find(Candidate{.tail = 0, .endpoint = "tcp://a", .cut = k});
    ASSERT_TRUE(shallower != nullptr && deeper != nullptr);
    EXPECT_LE(deeper->draft_tokens, shallower->draft_tokens) << k;
    EXPECT_GT(deeper->draft_tokens, 0) << k;
  }
}

TEST(DraftPlanTest, AComputeBoundEdgeDoesNotDraftForItself) {
  // No prefill buckets: n + 1 rows cost n + 1 decodes, so all-local gains nothing by drafting.
  PlanInputs inputs = FarTail();
  inputs.constraints.allow_local = true;
  inputs.draft = Drafting(0.8, 0.1, 16);
  const Result<Plan> plan = MakePlan(inputs);
  ASSERT_TRUE(plan.ok());
  const Candidate* local = plan->Find(Candidate{});
  ASSERT_NE(local, nullptr);
  EXPECT_EQ(local->draft_tokens, 0);
  EXPECT_NEAR(local->decode_ms, 2 * 8 + 1, 1e-9);
  EXPECT_TRUE(plan->best_decode.local());  // 17 ms a token against the split's 19.2 with 7 drafts
}

TEST(DraftPlanTest, AllLocalDraftsWhenExtraRowsAreNearlyFree) {
  // A memory-bound edge: 16 rows cost a block 0.6 ms against 0.5 for one, and a cheap drafter.
  PlanInputs inputs = FastLinkSlowEdge();
  inputs.tails.clear();
  inputs.edge = Uniform(0.5, 0.5);
  inputs.edge.prefill = {{.tokens = 16, .block_ms = std::vector<double>(kLayers, 0.6)}};
  inputs.draft = Drafting(0.8, 0.05, 16);
  const Result<Plan> plan = MakePlan(inputs);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  const Candidate& local = plan->best;
  ASSERT_TRUE(local.local());
  // 11 rows: 0.5 + 0.1 x 10/15 ms a block, the head scaled alike, and 10 drafts.
  const double block_ms = 0.5 + 0.1 * 10 / 15;
  const double step_ms = 8 * block_ms + 0.5 * block_ms / 0.5 + 10 * 0.05;
  EXPECT_EQ(local.draft_tokens, 10);
  EXPECT_NEAR(local.decode_ms, step_ms / ExpectedTokensPerStep(0.8, 10), 1e-9);
  EXPECT_EQ(local.Describe(), "local draft=10");
}

// A 110M-parameter model (12 blocks, dim 768) on a compute-bound CPU: 2 ms a block for one row, rows
// batching only a little (8 rows 12 ms, 32 rows 44 ms, 128 rows 170 ms), a 3 ms head: 27 ms a token. Its
// tail is a GPU: 0.3 ms a block, nearly flat in rows.
PlanInputs StoriesLikeModel(double rtt_ms) {
  constexpr int kBlocks = 12;
  const auto blocks = [](double ms) { return std::vector<double>(kBlocks, ms); };
  ComputeProfile cpu{.decode_block_ms = blocks(2),
                     .prefill = {{8, blocks(12)}, {32, blocks(44)}, {128, blocks(170)}},
                     .head_ms = 3};
  ComputeProfile gpu{.decode_block_ms = blocks(0.3),
                     .prefill = {{8, blocks(0.35)}, {32, blocks(0.5)}, {128, blocks(1.2)}},
                     .head_ms = 0.4};
  return {.n_layers = kBlocks,
          .dim = 768,
          .kv_bytes_per_position_per_block = 2 * 768 * 4,
          .edge = std::move(cpu),
          .tails = {{.endpoint = "tcp://gpu",
                     .profile = std::move(gpu),
                     .link = {.rtt_ms = rtt_ms, .bandwidth_bytes_per_ms = 12500}}},
          .prompt_tokens = 16,
          .expected_tokens = 32};
}

TEST(DraftPlanTest, ADrafterAsDearAsTheModelDoesNotPayNearby) {
  // The drafter costs a whole decode of the model (27 ms): over a 1 ms link no draft length pays.
  PlanInputs inputs = StoriesLikeModel(1);
  const Result<Plan> without = MakePlan(inputs);
  inputs.draft = Drafting(0.8, 27, 8);
  const Result<Plan> with = MakePlan(inputs);
  ASSERT_TRUE(without.ok() && with.ok()) << with.status().ToString();
  ExpectSamePlansWithoutDrafts(*with, *without);
  // 50 ms away, the round trip is dearer than the drafter: two drafts pay even so (the split stays
  // slower than all-local, which never drafts on this CPU).
  PlanInputs far = StoriesLikeModel(50);
  far.draft = inputs.draft;
  const Result<Plan> far_plan = MakePlan(far);
  ASSERT_TRUE(far_plan.ok());
  const Candidate* far_k1 = far_plan->Find(Candidate{.tail = 0, .endpoint = "tcp://gpu", .cut = 1});
  ASSERT_NE(far_k1, nullptr);
  EXPECT_EQ(far_k1->draft_tokens, 2);
  EXPECT_EQ(far_plan->Find(Candidate{})->draft_tokens, 0);
}

TEST(DraftPlanTest, DraftsInFlightTakeKvPositions) {
  // Exactly room for k = 1's 16 + 32 positions in its 7 blocks; 16 more drafts in flight do not fit.
  PlanInputs inputs = FarTail();
  inputs.tails[0].free_kv_bytes = int64_t{16 + 32} * inputs.kv_bytes_per_position_per_block * 7;
  const Candidate k1{.tail = 0, .endpoint = "tcp://a", .cut = 1};
  const Result<Plan> without = MakePlan(inputs);
  ASSERT_TRUE(without.ok());
  EXPECT_NE(without->Find(k1), nullptr);
  inputs.draft = Drafting(0.8, 0.1, 16);
  const Result<Plan> with = MakePlan(inputs);
  ASSERT_TRUE(with.ok());
  EXPECT_EQ(with->Find(k1), nullptr);
  EXPECT_EQ(with->best.cut, 3);  // (16 + 32 + 16) x 5 blocks fit in 48 x 7
}

TEST(DraftPlanTest, DraftInputsAreChecked) {
  const double nan = std::nan("");
  const std::vector<ErrorCase> cases = {
      {"acceptance above 1",
       [](PlanInputs& in) { in.draft = Drafting(1.5, 0, 4); },
       {"draft acceptance is 1.5"}},
      {"negative acceptance",
       [](PlanInputs& in) { in.draft = Drafting(-0.1, 0, 4); },
       {"draft acceptance is -0.1"}},
      {"NaN acceptance",
       [nan](PlanInputs& in) { in.draft = Drafting(nan, 0, 4); },
       {"draft acceptance is nan"}},
      {"negative draft time",
       [](PlanInputs& in) { in.draft = Drafting(0.5, -1, 4); },
       {"draft_token_ms is -1"}},
      {"infinite draft time",
       [](PlanInputs& in) { in.draft = Drafting(0.5, INFINITY, 4); },
       {"draft_token_ms is inf"}},
      {"negative max drafts", [](PlanInputs& in) { in.draft = Drafting(0.5, 0, -1); }, {"max_drafts is -1"}},
      {"max drafts above 64",
       [](PlanInputs& in) { in.draft = Drafting(0.5, 0, 65); },
       {"max_drafts is 65", "[0, 64]"}},
      {"NaN min gain",
       [nan](PlanInputs& in) {
         in.draft = Drafting(0.5, 0, 4);
         in.draft.min_gain = nan;
       },
       {"draft min_gain is nan"}},
      {"checked even when disabled",
       [](PlanInputs& in) {
         in.draft = Drafting(2, 0, 4);
         in.draft.enabled = false;
       },
       {"draft acceptance is 2"}},
  };
  ExpectPlanErrors(cases, StatusCode::kInvalidArgument);
}

// --- Hysteresis ---------------------------------------------------------------------------------------

Candidate Remote(const std::string& endpoint, int cut, double cost) {
  return {.tail = 0, .endpoint = endpoint, .cut = cut, .cost = cost};
}
Candidate Local(double cost) {
  return {.tail = -1, .cut = kLayers, .cost = cost};
}

Plan PlanOf(std::vector<Candidate> candidates) {
  std::stable_sort(candidates.begin(), candidates.end(),
                   [](const Candidate& x, const Candidate& y) { return x.cost < y.cost; });
  Plan plan;
  plan.candidates = std::move(candidates);
  plan.best = plan.best_prefill = plan.best_decode = plan.candidates.front();
  return plan;
}

class StabilizerTest : public testing::Test {
 protected:
  ManualClock clock_;
  PlanStabilizer stabilizer_{clock_, {.min_gain = 0.10, .hold = milliseconds(500)}};

  std::string Choose(std::vector<Candidate> candidates) {
    return stabilizer_.Choose(PlanOf(std::move(candidates))).Describe();
  }
};

TEST_F(StabilizerTest, FirstCallAdoptsTheBest) {
  EXPECT_FALSE(stabilizer_.current().has_value());
  EXPECT_EQ(Choose({Remote("a", 2, 10), Remote("a", 3, 9)}), "k=3 fp32 @a");
  ASSERT_TRUE(stabilizer_.current().has_value());
  EXPECT_EQ(stabilizer_.current()->Describe(), "k=3 fp32 @a");
}

TEST_F(StabilizerTest, NoisyEstimatesAroundATieNeverSwitch) {
  ASSERT_EQ(Choose({Remote("a", 2, 10), Remote("a", 3, 10.5)}), "k=2 fp32 @a");
  // Within min_gain either way, for 10 s.
  for (int tick = 0; tick < 100; ++tick) {
    clock_.Advance(milliseconds(100));
    const bool odd = tick % 2 == 1;
    EXPECT_EQ(Choose({Remote("a", 2, odd ? 10 : 10.5), Remote("a", 3, odd ? 10.5 : 9.6)}), "k=2 fp32 @a");
  }
  // Big swings that never last `hold`: every other plan the challenger is 20% better, then worse.
  for (int tick = 0; tick < 100; ++tick) {
    clock_.Advance(milliseconds(100));
    const bool odd = tick % 2 == 1;
    EXPECT_EQ(Choose({Remote("a", 2, 10), Remote("a", 3, odd ? 11 : 8)}), "k=2 fp32 @a") << tick;
  }
}

TEST_F(StabilizerTest, SustainedGainSwitchesOnlyAfterHold) {
  ASSERT_EQ(Choose({Remote("a", 2, 10), Remote("a", 3, 11)}), "k=2 fp32 @a");
  clock_.Advance(milliseconds(1000));
  for (int ms = 0; ms < 500; ms += 100) {
    EXPECT_EQ(Choose({Remote("a", 2, 10), Remote("a", 3, 8)}), "k=2 fp32 @a") << ms << " ms";
    clock_.Advance(milliseconds(100));
  }
  // 500 ms after the gain was first seen.
  EXPECT_EQ(Choose({Remote("a", 2, 10), Remote("a", 3, 8)}), "k=3 fp32 @a");
  // Now the old choice is better, but not by min_gain: stay.
  clock_.Advance(milliseconds(1000));
  EXPECT_EQ(Choose({Remote("a", 2, 9.5), Remote("a", 3, 10)}), "k=3 fp32 @a");
}

TEST_F(StabilizerTest, GainExactlyMinGainCountsAndZeroHoldSwitchesAtOnce) {
  PlanStabilizer eager(clock_, {.min_gain = 0.10, .hold = Clock::Duration::zero()});
  ASSERT_EQ(eager.Choose(PlanOf({Remote("a", 2, 10), Remote("a", 3, 11)})).Describe(), "k=2 fp32 @a");
  EXPECT_EQ(eager.Choose(PlanOf({Remote("a", 2, 10), Remote("a", 3, 9.5)})).Describe(), "k=2 fp32 @a");
  EXPECT_EQ(eager.Choose(PlanOf({Remote("a", 2, 10), Remote("a", 3, 9)})).Describe(), "k=3 fp32 @a");
}

TEST_F(StabilizerTest, InfeasibleCurrentSwitchesAtOnce) {
  ASSERT_EQ(Choose({Remote("a", 2, 10), Local(20)}), "k=2 fp32 @a");
  // The tail went away: local, with no hold.
  EXPECT_EQ(Choose({Local(20)}), "local");
  EXPECT_EQ(Choose({Local(20), Remote("b", 2, 19)}), "local");  // b is within min_gain
}

TEST_F(StabilizerTest, ChallengerThatDisappearsResetsTheTimer) {
  ASSERT_EQ(Choose({Remote("a", 2, 10)}), "k=2 fp32 @a");
  for (int ms = 0; ms <= 400; ms += 100) {
    EXPECT_EQ(Choose({Remote("a", 2, 10), Remote("a", 3, 8)}), "k=2 fp32 @a");
    clock_.Advance(milliseconds(100));
  }
  // At 500 ms the challenger is gone (not better): the watch restarts.
  EXPECT_EQ(Choose({Remote("a", 2, 10), Remote("a", 3, 9.5)}), "k=2 fp32 @a");
  clock_.Advance(milliseconds(100));
  for (int ms = 600; ms < 1100; ms += 100) {
    EXPECT_EQ(Choose({Remote("a", 2, 10), Remote("a", 3, 8)}), "k=2 fp32 @a") << ms << " ms";
    clock_.Advance(milliseconds(100));
  }
  EXPECT_EQ(Choose({Remote("a", 2, 10), Remote("a", 3, 8)}), "k=3 fp32 @a");  // 1100 = 600 + hold
}

TEST_F(StabilizerTest, ADifferentChallengerRestartsTheWatch) {
  ASSERT_EQ(Choose({Remote("a", 2, 10)}), "k=2 fp32 @a");
  EXPECT_EQ(Choose({Remote("a", 2, 10), Remote("a", 3, 8)}), "k=2 fp32 @a");
  clock_.Advance(milliseconds(400));
  // Another choice is now the best (and better): it must prove itself for its own `hold`.
  EXPECT_EQ(Choose({Remote("a", 2, 10), Remote("a", 3, 8), Remote("b", 3, 7)}), "k=2 fp32 @a");
  clock_.Advance(milliseconds(400));
  EXPECT_EQ(Choose({Remote("a", 2, 10), Remote("a", 3, 8), Remote("b", 3, 7)}), "k=2 fp32 @a");
  clock_.Advance(milliseconds(100));
  EXPECT_EQ(Choose({Remote("a", 2, 10), Remote("a", 3, 8), Remote("b", 3, 7)}), "k=3 fp32 @b");
}

TEST_F(StabilizerTest, ReturnsTheCurrentChoiceWithFreshPredictions) {
  ASSERT_EQ(Choose({Remote("a", 2, 10)}), "k=2 fp32 @a");
  Candidate fresh = Remote("a", 2, 12);
  fresh.tail = 3;  // the tail list changed order
  fresh.prefill_ms = 40;
  const Candidate chosen = stabilizer_.Choose(PlanOf({Remote("b", 1, 11), fresh}));
  EXPECT_EQ(chosen.Describe(), "k=2 fp32 @a");
  EXPECT_EQ(chosen.tail, 3);
  EXPECT_EQ(chosen.cost, 12);
  EXPECT_EQ(chosen.prefill_ms, 40);
  EXPECT_EQ(stabilizer_.current()->cost, 12);
}

// End to end: two equal tails whose measured load jitters around each other never make the plan flap.
TEST_F(StabilizerTest, JitteringTailsDoNotFlap) {
  PlanInputs inputs = FastLinkSlowEdge();
  inputs.tails.push_back(Tail("tcp://b"));
  std::string first;
  for (int tick = 0; tick < 50; ++tick) {
    inputs.tails[0].utilization = tick % 2 == 0 ? 0.10 : 0.14;
    inputs.tails[1].utilization = tick % 2 == 0 ? 0.14 : 0.10;
    inputs.tails[0].link.rtt_ms = tick % 3 == 0 ? 1.2 : 0.9;
    auto plan = MakePlan(inputs);
    ASSERT_TRUE(plan.ok());
    const std::string chosen = stabilizer_.Choose(*plan).Describe();
    if (tick == 0) first = chosen;
    EXPECT_EQ(chosen, first) << tick;
    clock_.Advance(milliseconds(200));
  }
  // A sustained load on the chosen tail does move it, after `hold`.
  const int loaded = first.ends_with("tcp://a") ? 0 : 1;
  inputs.tails[static_cast<size_t>(loaded)].utilization = 0.8;
  int switched_after_ms = -1;
  for (int ms = 0; ms <= 1000; ms += 100) {
    auto plan = MakePlan(inputs);
    ASSERT_TRUE(plan.ok());
    if (stabilizer_.Choose(*plan).Describe() != first) {
      switched_after_ms = ms;
      break;
    }
    clock_.Advance(milliseconds(100));
  }
  EXPECT_EQ(switched_after_ms, 500);
}

// --- Link estimator -----------------------------------------------------------------------------------

class LinkEstimatorTest : public testing::Test {
 protected:
  ManualClock clock_;
  LinkEstimator estimator_{clock_,
                           {.rtt_time_constant = milliseconds(400),
                            .bandwidth_time_constant = milliseconds(1000),
                            .down_after_missed_probes = 3,
                            .min_transfer_ms = 0.5}};
};

TEST_F(LinkEstimatorTest, StartsEmptyAndUp) {
  const LinkEstimate estimate = estimator_.Estimate();
  EXPECT_EQ(estimate.rtt_ms, 0);
  EXPECT_EQ(estimate.bandwidth_bytes_per_ms, 0);
  EXPECT_TRUE(estimate.up);
  EXPECT_FALSE(estimator_.last_sample().has_value());
}

TEST_F(LinkEstimatorTest, RttConvergesAfterAStepChange) {
  estimator_.RecordRtt(5);
  EXPECT_EQ(estimator_.Estimate().rtt_ms, 5);  // the first sample is taken as is
  for (int i = 0; i < 10; ++i) {
    clock_.Advance(milliseconds(200));
    estimator_.RecordRtt(5);
  }
  EXPECT_NEAR(estimator_.Estimate().rtt_ms, 5, 1e-9);
  // The step: one sample moves it by 1 - exp(-200/400) of the way, not all of it.
  clock_.Advance(milliseconds(200));
  estimator_.RecordRtt(40);
  EXPECT_NEAR(estimator_.Estimate().rtt_ms, 5 + 35 * (1 - std::exp(-0.5)), 1e-9);
  int elapsed_ms = 200;
  while (estimator_.Estimate().rtt_ms <= 35 && elapsed_ms < 2000) {
    clock_.Advance(milliseconds(200));
    estimator_.RecordRtt(40);
    elapsed_ms += 200;
  }
  EXPECT_GT(estimator_.Estimate().rtt_ms, 35);
  EXPECT_LE(elapsed_ms, 2000);
  EXPECT_GE(elapsed_ms, 600);  // smoothed, not a jump
  EXPECT_EQ(estimator_.last_sample(), clock_.Now());
}

TEST_F(LinkEstimatorTest, SampleWeightGrowsWithTheSilenceBeforeIt) {
  struct Case {
    int gap_ms;
    double want;  // 10 -> 20
  };
  const std::vector<Case> cases = {
      {0, 10},  // same instant: no weight
      {100, 10 + 10 * (1 - std::exp(-0.25))},
      {400, 10 + 10 * (1 - std::exp(-1.0))},
      {10000, 10 + 10 * (1 - std::exp(-25.0))},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.gap_ms);
    LinkEstimator estimator(clock_, {.rtt_time_constant = milliseconds(400)});
    estimator.RecordRtt(10);
    clock_.Advance(milliseconds(c.gap_ms));
    estimator.RecordRtt(20);
    EXPECT_NEAR(estimator.Estimate().rtt_ms, c.want, 1e-9);
  }
}

TEST_F(LinkEstimatorTest, InvalidSamplesAreIgnored) {
  estimator_.RecordRtt(-1);
  estimator_.RecordRtt(std::nan(""));
  EXPECT_FALSE(estimator_.last_sample().has_value());
  estimator_.RecordRtt(10);
  clock_.Advance(milliseconds(400));
  estimator_.RecordRtt(INFINITY);
  estimator_.RecordTransfer(-5, 20, 1);
  estimator_.RecordTransfer(1000, std::nan(""), 1);
  EXPECT_EQ(estimator_.Estimate().rtt_ms, 10);
  EXPECT_EQ(estimator_.Estimate().bandwidth_bytes_per_ms, 0);
}

TEST_F(LinkEstimatorTest, DownAfterMissedProbesAndUpAgain) {
  struct Step {
    char event;  // 'm': a missed probe, 'r': an answered one
    bool up_after;
  };
  const std::vector<Step> steps = {
      {'m', true}, {'m', true}, {'m', false}, {'m', false},  // down after 3
      {'r', true},                                           // an answer brings it up
      {'m', true}, {'m', true},                              // and the count restarted
      {'r', true}, {'m', true}, {'m', true},  {'m', false},
  };
  for (size_t i = 0; i < steps.size(); ++i) {
    if (steps[i].event == 'm') {
      estimator_.RecordMissedProbe();
    } else {
      estimator_.RecordRtt(5);
    }
    EXPECT_EQ(estimator_.Estimate().up, steps[i].up_after) << "step " << i;
  }
}

TEST_F(LinkEstimatorTest, BandwidthFromTransfers) {
  // No RTT yet: the transfer cannot be told apart from latency.
  estimator_.RecordTransfer(10000, 30, 10);
  EXPECT_EQ(estimator_.Estimate().bandwidth_bytes_per_ms, 0);
  EXPECT_FALSE(estimator_.last_sample().has_value());

  estimator_.RecordRtt(10);
  struct Step {
    int advance_ms;
    int64_t bytes;
    double round_trip_ms, remote_compute_ms;
    double want;
  };
  const std::vector<Step> steps = {
      {0, 10000, 30, 10, 1000},   // 10 ms of transfer: the first sample sets it
      {0, 100, 20.2, 10, 1000},   // 0.2 ms: at least 200 B/ms, already known
      {0, 1000, 20.2, 10, 2000},  // 0.2 ms: at least 2000 B/ms, raises it
      {0, 1000, 15, 10, 2000},    // negative transfer: a lower bound too
      {1000, 5000, 30, 10, 2000 + (500 - 2000) * (1 - std::exp(-1.0))},  // 1 s later, 500 B/ms
  };
  for (size_t i = 0; i < steps.size(); ++i) {
    clock_.Advance(milliseconds(steps[i].advance_ms));
    estimator_.RecordTransfer(steps[i].bytes, steps[i].round_trip_ms, steps[i].remote_compute_ms);
    EXPECT_NEAR(estimator_.Estimate().bandwidth_bytes_per_ms, steps[i].want, 1e-9) << "step " << i;
  }
  EXPECT_EQ(estimator_.last_sample(), clock_.Now());
  EXPECT_NEAR(estimator_.Estimate().rtt_ms, 10, 1e-9);
}

TEST_F(LinkEstimatorTest, AFailedStepMarksTheLinkDownUntilAProbeIsAnswered) {
  estimator_.RecordRtt(5);
  ASSERT_TRUE(estimator_.Estimate().up);
  estimator_.MarkDown();
  EXPECT_FALSE(estimator_.Estimate().up);
  estimator_.RecordMissedProbe();
  EXPECT_FALSE(estimator_.Estimate().up);
  estimator_.RecordRtt(5);
  EXPECT_TRUE(estimator_.Estimate().up);
}

TEST_F(LinkEstimatorTest, ALowerBoundNeverMakesAnEstimate) {
  // Without a real sample the planner's default stands: a bound below it must not replace it.
  estimator_.RecordRtt(10);
  estimator_.RecordTransfer(300, 10.1, 0);
  EXPECT_EQ(estimator_.Estimate().bandwidth_bytes_per_ms, 0);
}

TEST_F(LinkEstimatorTest, SmallMessagesAreOnlyLowerBounds) {
  // Per-message costs of the data path would pass for transfer time in a small message: 3000 bytes that
  // took 20 ms more than the RTT say "at least 150 B/ms", not "150 B/ms".
  estimator_.RecordRtt(10);
  estimator_.RecordTransfer(10000, 20, 0);  // a real sample: 1000 B/ms
  estimator_.RecordTransfer(3000, 30, 0);
  EXPECT_NEAR(estimator_.Estimate().bandwidth_bytes_per_ms, 1000, 1e-9);
  estimator_.RecordTransfer(3000, 11, 0);  // at least 3000 B/ms: raises it
  EXPECT_NEAR(estimator_.Estimate().bandwidth_bytes_per_ms, 3000, 1e-9);
}

}  // namespace
}  // namespace tandem::scheduler
