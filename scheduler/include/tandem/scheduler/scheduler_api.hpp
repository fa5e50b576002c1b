// The scheduler's REST API as data: the JSON of a tail's heartbeat, of an edge's plan request and of the
// answers, both ways, with every field checked. docs/api.md ("Scheduler API") shows each body.
//
// Errors: InvalidArgument whose message starts with the offending field's JSON path
// ("profile.decode_block_ms[3] is -1; must be ...", "links[0].rtt_ms must be a number"); FieldOf() gives
// that path back for the error object's "param". Unknown fields are ignored, so that a newer tail or edge
// can add some. Nothing here does I/O.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tandem/base/status.hpp"
#include "tandem/scheduler/planner.hpp"
#include "tandem/scheduler/tail_registry.hpp"
#include "tandem/wire/compute_profile.hpp"

namespace tandem::scheduler {

inline constexpr size_t kMaxPlanLinks = 1024;
inline constexpr size_t kMaxCodecNames = 64;
inline constexpr int kMaxPlanTokens = 1 << 20;

// The field path an error message starts with (up to its first space), or "" for a message without one.
std::string FieldOf(const Status& status);

// {"decode_block_ms": [...], "prefill": [{"tokens": N, "block_ms": [...]}], "head_ms": x}; on parsing,
// `field` prefixes error paths and every array must hold `n_layers` finite times >= 0 (at most
// kMaxReportBuckets prefill buckets, tokens strictly ascending).
nlohmann::json ProfileToJson(const ComputeProfile& profile);
Result<ComputeProfile> ProfileFromJson(const nlohmann::json& json, const std::string& field, int n_layers);

// POST /v1/tails/heartbeat:
//   {"endpoint": "tcp://10.0.0.7:5555",
//    "model": {"fingerprint": "1234", "n_layers": 5, "dim": 64},
//    "workers": 1, "sessions": 0, "queue_depth": 0, "utilization": 0.12, "free_kv_bytes": 2147483648,
//    "max_rows": 512, "codecs": ["fp32", "fp16+lz4", ...], "profile": {...}, "draining": false}
// endpoint, model, utilization and profile are required; the rest default to TailReport's defaults.
// Parsing also runs ValidateTailReport.
nlohmann::json TailReportToJson(const TailReport& report);
Result<TailReport> TailReportFromJson(const nlohmann::json& json);

// One entry of a plan request's "links": the edge's estimate of its link to a tail. Missing figures take
// the scheduler's defaults; up = false leaves the tail out of this edge's plan.
struct LinkReport {
  std::string endpoint;
  std::optional<double> rtt_ms;
  std::optional<double> bandwidth_mbit_s;
  bool up = true;
};

// POST /v1/plan: what an edge asks.
struct PlanRequest {
  std::string fingerprint;
  int n_layers = 0;
  int dim = 0;
  int64_t kv_bytes_per_position_per_block = 0;
  ComputeProfile profile;  // the edge's own
  int edge_int8_blocks = 0;
  std::vector<LinkReport> links;
  PlanConstraints constraints;
  std::string objective = "weighted:1,1";
  int prompt_tokens = 1;
  int expected_tokens = 1;
  DraftInputs draft;  // enabled when the request has "draft"
};
//   {"model": {"fingerprint": "1234", "n_layers": 5, "dim": 64, "kv_bytes_per_position_per_block": 1024},
//    "profile": {...}, "edge_int8_blocks": 0,
//    "links": [{"endpoint": "tcp://...", "rtt_ms": 0.4, "bandwidth_mbit_s": 1000, "up": true}],
//    "constraints": {"min_edge_blocks": 1, "max_edge_blocks": -1, "allowed_codecs": ["fp32"],
//                    "max_int8_blocks": -1, "allow_local": true},
//    "objective": "ttft" | "per-token" | "weighted:A,B", "prompt_tokens": 16, "expected_tokens": 64,
//    "draft": {"acceptance": 0.7, "draft_token_ms": 0.1, "max_drafts": 8, "min_gain": 0.05}}
// model and profile are required; everything else has PlanRequest's defaults. "draft" (speculative
// decoding, planned per candidate) needs max_drafts; its other fields have DraftInputs' defaults.
nlohmann::json PlanRequestToJson(const PlanRequest& request);
Result<PlanRequest> PlanRequestFromJson(const nlohmann::json& json);

// {"tail": endpoint | null, "cut": k, "codec": "fp32" | null, "local": bool, "predicted_ttft_ms": x,
//  "predicted_token_ms": y, "draft_tokens": n, "tokens_per_step": e, "cost": z}: one candidate of a plan
// (local: tail and codec null, cut = L; without drafting n = 0 and e = 1). Times are rounded to the
// nanosecond (1e-6 ms), tokens_per_step to 1e-6 too.
nlohmann::json CandidateToJson(const Candidate& candidate);
double RoundedMs(double ms);

}  // namespace tandem::scheduler
