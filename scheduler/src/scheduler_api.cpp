#include "tandem/scheduler/scheduler_api.hpp"

#include <nlohmann/json.hpp>

#include <cmath>
#include <limits>

#include "tandem/base/strings.hpp"

namespace tandem::scheduler {
namespace {

using nlohmann::json;

// Reads the fields of one JSON object; every error names the field's path (prefix + key).
class Fields {
 public:
  static Result<Fields> Of(const json& object, std::string path) {
    if (!object.is_object())
      return InvalidArgument((path.empty() ? "body" : path) + " must be a JSON object");
    return Fields(object, std::move(path));
  }

  std::string Path(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }
  const json* Find(const std::string& key) const {
    const auto it = object_->find(key);
    return it == object_->end() || it->is_null() ? nullptr : &*it;
  }
  Result<const json*> Required(const std::string& key) const {
    const json* value = Find(key);
    if (value == nullptr) return InvalidArgument(Path(key) + " is required");
    return value;
  }

  // An integer in [min, max]; absent leaves `out` as it is unless required.
  Status Int(const std::string& key, int64_t min, int64_t max, int64_t* out, bool required = false) const {
    const json* value = Find(key);
    if (value == nullptr) return required ? InvalidArgument(Path(key) + " is required") : Status::Ok();
    return ReadInt(*value, Path(key), min, max, out);
  }
  Status Int(const std::string& key, int64_t min, int64_t max, int* out, bool required = false) const {
    int64_t wide = *out;
    TANDEM_RETURN_IF_ERROR(Int(key, min, max, &wide, required));
    *out = static_cast<int>(wide);
    return Status::Ok();
  }
  Status Number(const std::string& key, double min, double max, double* out, bool required = false) const {
    const json* value = Find(key);
    if (value == nullptr) return required ? InvalidArgument(Path(key) + " is required") : Status::Ok();
    return ReadNumber(*value, Path(key), min, max, out);
  }
  Status Bool(const std::string& key, bool* out) const {
    const json* value = Find(key);
    if (value == nullptr) return Status::Ok();
    if (!value->is_boolean()) return InvalidArgument(Path(key) + " must be true or false");
    *out = value->get<bool>();
    return Status::Ok();
  }
  Status String(const std::string& key, size_t max_length, std::string* out, bool required = false) const {
    const json* value = Find(key);
    if (value == nullptr) return required ? InvalidArgument(Path(key) + " is required") : Status::Ok();
    if (!value->is_string()) return InvalidArgument(Path(key) + " must be a string");
    const auto& text = value->get_ref<const std::string&>();
    if (text.size() > max_length) {
      return InvalidArgument(Path(key) + " is longer than " + std::to_string(max_length) + " characters");
    }
    *out = text;
    return Status::Ok();
  }

  static Status ReadInt(const json& value, const std::string& path, int64_t min, int64_t max, int64_t* out) {
    const std::string range = "[" + std::to_string(min) + ", " + std::to_string(max) + "]";
    if (!value.is_number_integer()) return InvalidArgument(path + " must be an integer in " + range);
    if (value.is_number_unsigned() &&
        value.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return InvalidArgument(path + " is out of range; must be in " + range);
    }
    const int64_t number = value.get<int64_t>();
    if (number < min || number > max) {
      return InvalidArgument(path + " is " + std::to_string(number) + "; must be in " + range);
    }
    *out = number;
    return Status::Ok();
  }
  static Status ReadNumber(const json& value, const std::string& path, double min, double max, double* out) {
    if (!value.is_number()) return InvalidArgument(path + " must be a number");
    const double number = value.get<double>();
    if (!std::isfinite(number) || !(number >= min && number <= max)) {
      const std::string range = max == std::numeric_limits<double>::max()
                                    ? ">= " + ShortNumber(min)
                                    : "in [" + ShortNumber(min) + ", " + ShortNumber(max) + "]";
      return InvalidArgument(path + " is " + value.dump() + "; must be a finite number " + range);
    }
    *out = number;
    return Status::Ok();
  }

 private:
  Fields(const json& object, std::string path) : object_(&object), path_(std::move(path)) {}
  const json* object_;
  std::string path_;
};

constexpr double kMaxMs = std::numeric_limits<double>::max();  // any finite time

Result<std::vector<double>> Times(const json& value, const std::string& path, int n_layers) {
  if (!value.is_array()) return InvalidArgument(path + " must be an array of numbers");
  if (value.size() != static_cast<size_t>(n_layers)) {
    return InvalidArgument(path + " has " + std::to_string(value.size()) +
                           " entries; must have n_layers = " + std::to_string(n_layers));
  }
  std::vector<double> times(value.size());
  for (size_t i = 0; i < value.size(); ++i) {
    TANDEM_RETURN_IF_ERROR(
        Fields::ReadNumber(value[i], path + "[" + std::to_string(i) + "]", 0, kMaxMs, &times[i]));
  }
  return times;
}

Result<std::vector<ActivationCodec>> Codecs(const json& value, const std::string& path) {
  if (!value.is_array()) return InvalidArgument(path + " must be an array of codec names");
  if (value.size() > kMaxCodecNames) {
    return InvalidArgument(path + " has " + std::to_string(value.size()) + " entries; at most " +
                           std::to_string(kMaxCodecNames));
  }
  std::vector<ActivationCodec> codecs;
  for (size_t i = 0; i < value.size(); ++i) {
    const std::string item = path + "[" + std::to_string(i) + "]";
    if (!value[i].is_string()) return InvalidArgument(item + " must be a codec name such as \"fp32\"");
    auto codec = ParseActivationCodec(value[i].get<std::string>());
    if (!codec.ok()) return InvalidArgument(item + ": " + codec.status().message());
    codecs.push_back(*codec);
  }
  return codecs;
}

json CodecNames(const std::vector<ActivationCodec>& codecs) {
  json names = json::array();
  for (const ActivationCodec& codec : codecs) names.push_back(codec.Name());
  return names;
}

// "model": {"fingerprint", "n_layers", "dim"}, shared by heartbeats and plan requests.
Status ReadModel(const Fields& body, std::string* fingerprint, int* n_layers, int* dim,
                 int64_t* kv_bytes_per_position_per_block) {
  TANDEM_ASSIGN_OR_RETURN(const json* model_json, body.Required("model"));
  TANDEM_ASSIGN_OR_RETURN(const Fields model, Fields::Of(*model_json, "model"));
  TANDEM_RETURN_IF_ERROR(model.String("fingerprint", kMaxFingerprintLength, fingerprint, true));
  if (fingerprint->empty()) return InvalidArgument("model.fingerprint must not be empty");
  TANDEM_RETURN_IF_ERROR(model.Int("n_layers", 1, kMaxReportLayers, n_layers, true));
  TANDEM_RETURN_IF_ERROR(model.Int("dim", 1, kMaxReportDim, dim, true));
  if (kv_bytes_per_position_per_block != nullptr) {
    TANDEM_RETURN_IF_ERROR(
        model.Int("kv_bytes_per_position_per_block", 0, int64_t{1} << 40, kv_bytes_per_position_per_block));
  }
  return Status::Ok();
}

// "draft": speculative decoding as the edge runs it; present means enabled.
Result<DraftInputs> DraftFromJson(const json& value) {
  TANDEM_ASSIGN_OR_RETURN(const Fields fields, Fields::Of(value, "draft"));
  DraftInputs draft{.enabled = true};
  TANDEM_RETURN_IF_ERROR(fields.Number("acceptance", 0, 1, &draft.acceptance));
  TANDEM_RETURN_IF_ERROR(fields.Number("draft_token_ms", 0, kMaxMs, &draft.draft_token_ms));
  TANDEM_RETURN_IF_ERROR(fields.Int("max_drafts", 0, kMaxDraftTokens, &draft.max_drafts, true));
  TANDEM_RETURN_IF_ERROR(fields.Number("min_gain", 0, std::numeric_limits<double>::max(), &draft.min_gain));
  return draft;
}

}  // namespace

std::string FieldOf(const Status& status) {
  if (status.ok()) return "";
  const std::string& message = status.message();
  const size_t end = message.find_first_of(" :");
  return message.substr(0, end);
}

json ProfileToJson(const ComputeProfile& profile) {
  json prefill = json::array();
  for (const auto& bucket : profile.prefill)
    prefill.push_back({{"tokens", bucket.tokens}, {"block_ms", bucket.block_ms}});
  return {{"decode_block_ms", profile.decode_block_ms},
          {"prefill", std::move(prefill)},
          {"head_ms", profile.head_ms}};
}

Result<ComputeProfile> ProfileFromJson(const json& value, const std::string& field, int n_layers) {
  TANDEM_ASSIGN_OR_RETURN(const Fields fields, Fields::Of(value, field));
  ComputeProfile profile;
  TANDEM_ASSIGN_OR_RETURN(const json* decode, fields.Required("decode_block_ms"));
  TANDEM_ASSIGN_OR_RETURN(profile.decode_block_ms, Times(*decode, fields.Path("decode_block_ms"), n_layers));
  TANDEM_RETURN_IF_ERROR(fields.Number("head_ms", 0, kMaxMs, &profile.head_ms, true));
  if (const json* prefill = fields.Find("prefill")) {
    const std::string path = fields.Path("prefill");
    if (!prefill->is_array()) return InvalidArgument(path + " must be an array of buckets");
    if (prefill->size() > kMaxReportBuckets) {
      return InvalidArgument(path + " has " + std::to_string(prefill->size()) + " buckets; at most " +
                             std::to_string(kMaxReportBuckets));
    }
    int previous_tokens = 0;
    for (size_t i = 0; i < prefill->size(); ++i) {
      TANDEM_ASSIGN_OR_RETURN(const Fields bucket_fields,
                              Fields::Of((*prefill)[i], path + "[" + std::to_string(i) + "]"));
      ComputeProfile::PrefillBucket bucket;
      TANDEM_RETURN_IF_ERROR(bucket_fields.Int("tokens", 1, kMaxPlanTokens, &bucket.tokens, true));
      if (bucket.tokens <= previous_tokens) {
        return InvalidArgument(bucket_fields.Path("tokens") + " is " + std::to_string(bucket.tokens) +
                               "; buckets need strictly ascending tokens");
      }
      previous_tokens = bucket.tokens;
      TANDEM_ASSIGN_OR_RETURN(const json* block_ms, bucket_fields.Required("block_ms"));
      TANDEM_ASSIGN_OR_RETURN(bucket.block_ms, Times(*block_ms, bucket_fields.Path("block_ms"), n_layers));
      profile.prefill.push_back(std::move(bucket));
    }
  }
  return profile;
}

json TailReportToJson(const TailReport& report) {
  return {
      {"endpoint", report.endpoint},
      {"model", {{"fingerprint", report.fingerprint}, {"n_layers", report.n_layers}, {"dim", report.dim}}},
      {"workers", report.workers},
      {"sessions", report.sessions},
      {"queue_depth", report.queue_depth},
      {"utilization", report.utilization},
      {"free_kv_bytes", report.free_kv_bytes},
      {"max_rows", report.max_rows},
      {"codecs", CodecNames(report.codecs)},
      {"profile", ProfileToJson(report.profile)},
      {"draining", report.draining}};
}

Result<TailReport> TailReportFromJson(const json& value) {
  TANDEM_ASSIGN_OR_RETURN(const Fields body, Fields::Of(value, ""));
  TailReport report;
  TANDEM_RETURN_IF_ERROR(body.String("endpoint", kMaxEndpointLength, &report.endpoint, true));
  TANDEM_RETURN_IF_ERROR(ReadModel(body, &report.fingerprint, &report.n_layers, &report.dim, nullptr));
  constexpr int64_t kMaxCount = std::numeric_limits<int32_t>::max();
  TANDEM_RETURN_IF_ERROR(body.Int("workers", 0, kMaxCount, &report.workers));
  TANDEM_RETURN_IF_ERROR(body.Int("sessions", 0, kMaxCount, &report.sessions));
  TANDEM_RETURN_IF_ERROR(body.Int("queue_depth", 0, kMaxCount, &report.queue_depth));
  TANDEM_RETURN_IF_ERROR(body.Number("utilization", 0, 1, &report.utilization, true));
  TANDEM_RETURN_IF_ERROR(
      body.Int("free_kv_bytes", -1, std::numeric_limits<int64_t>::max(), &report.free_kv_bytes));
  int64_t max_rows = report.max_rows;
  TANDEM_RETURN_IF_ERROR(body.Int("max_rows", 0, std::numeric_limits<uint32_t>::max(), &max_rows));
  report.max_rows = static_cast<uint32_t>(max_rows);
  if (const json* codecs = body.Find("codecs")) {
    TANDEM_ASSIGN_OR_RETURN(report.codecs, Codecs(*codecs, "codecs"));
  }
  TANDEM_ASSIGN_OR_RETURN(const json* profile, body.Required("profile"));
  TANDEM_ASSIGN_OR_RETURN(report.profile, ProfileFromJson(*profile, "profile", report.n_layers));
  TANDEM_RETURN_IF_ERROR(body.Bool("draining", &report.draining));
  TANDEM_RETURN_IF_ERROR(ValidateTailReport(report));
  return report;
}

json PlanRequestToJson(const PlanRequest& request) {
  json links = json::array();
  for (const LinkReport& link : request.links) {
    json entry = {{"endpoint", link.endpoint}, {"up", link.up}};
    if (link.rtt_ms) entry["rtt_ms"] = *link.rtt_ms;
    if (link.bandwidth_mbit_s) entry["bandwidth_mbit_s"] = *link.bandwidth_mbit_s;
    links.push_back(std::move(entry));
  }
  const PlanConstraints& c = request.constraints;
  json out = {{"model",
               {{"fingerprint", request.fingerprint},
                {"n_layers", request.n_layers},
                {"dim", request.dim},
                {"kv_bytes_per_position_per_block", request.kv_bytes_per_position_per_block}}},
              {"profile", ProfileToJson(request.profile)},
              {"edge_int8_blocks", request.edge_int8_blocks},
              {"links", std::move(links)},
              {"constraints",
               {{"min_edge_blocks", c.min_edge_blocks},
                {"max_edge_blocks", c.max_edge_blocks},
                {"allowed_codecs", CodecNames(c.allowed_codecs)},
                {"max_int8_blocks", c.max_int8_blocks},
                {"allow_local", c.allow_local},
                {"private_output", c.private_output},
                {"min_edge_last_blocks", c.min_edge_last_blocks}}},
              {"objective", request.objective},
              {"prompt_tokens", request.prompt_tokens},
              {"expected_tokens", request.expected_tokens}};
  if (request.draft.enabled) {
    const DraftInputs& d = request.draft;
    out["draft"] = {{"acceptance", d.acceptance},
                    {"draft_token_ms", d.draft_token_ms},
                    {"max_drafts", d.max_drafts},
                    {"min_gain", d.min_gain}};
  }
  return out;
}

Result<PlanRequest> PlanRequestFromJson(const json& value) {
  TANDEM_ASSIGN_OR_RETURN(const Fields body, Fields::Of(value, ""));
  PlanRequest request;
  TANDEM_RETURN_IF_ERROR(ReadModel(body, &request.fingerprint, &request.n_layers, &request.dim,
                                   &request.kv_bytes_per_position_per_block));
  const int n_layers = request.n_layers;
  TANDEM_ASSIGN_OR_RETURN(const json* profile, body.Required("profile"));
  TANDEM_ASSIGN_OR_RETURN(request.profile, ProfileFromJson(*profile, "profile", n_layers));
  TANDEM_RETURN_IF_ERROR(body.Int("edge_int8_blocks", 0, n_layers, &request.edge_int8_blocks));

  if (const json* links = body.Find("links")) {
    if (!links->is_array()) return InvalidArgument("links must be an array");
    if (links->size() > kMaxPlanLinks) {
      return InvalidArgument("links has " + std::to_string(links->size()) + " entries; at most " +
                             std::to_string(kMaxPlanLinks));
    }
    for (size_t i = 0; i < links->size(); ++i) {
      TANDEM_ASSIGN_OR_RETURN(const Fields link_fields,
                              Fields::Of((*links)[i], "links[" + std::to_string(i) + "]"));
      LinkReport link;
      TANDEM_RETURN_IF_ERROR(link_fields.String("endpoint", kMaxEndpointLength, &link.endpoint, true));
      double number = 0;
      if (link_fields.Find("rtt_ms") != nullptr) {
        TANDEM_RETURN_IF_ERROR(link_fields.Number("rtt_ms", 0, kMaxMs, &number));
        link.rtt_ms = number;
      }
      if (link_fields.Find("bandwidth_mbit_s") != nullptr) {
        TANDEM_RETURN_IF_ERROR(link_fields.Number("bandwidth_mbit_s", 0, kMaxMs, &number));
        if (number <= 0) return InvalidArgument(link_fields.Path("bandwidth_mbit_s") + " must be > 0");
        link.bandwidth_mbit_s = number;
      }
      TANDEM_RETURN_IF_ERROR(link_fields.Bool("up", &link.up));
      request.links.push_back(std::move(link));
    }
  }

  if (const json* constraints_json = body.Find("constraints")) {
    TANDEM_ASSIGN_OR_RETURN(const Fields constraints, Fields::Of(*constraints_json, "constraints"));
    PlanConstraints& c = request.constraints;
    TANDEM_RETURN_IF_ERROR(constraints.Int("min_edge_blocks", 0, n_layers, &c.min_edge_blocks));
    TANDEM_RETURN_IF_ERROR(constraints.Int("max_edge_blocks", -1, n_layers, &c.max_edge_blocks));
    if (c.max_edge_blocks >= 0 && c.min_edge_blocks > c.max_edge_blocks) {
      return InvalidArgument("constraints.min_edge_blocks " + std::to_string(c.min_edge_blocks) +
                             " exceeds constraints.max_edge_blocks " + std::to_string(c.max_edge_blocks));
    }
    if (const json* codecs = constraints.Find("allowed_codecs")) {
      TANDEM_ASSIGN_OR_RETURN(c.allowed_codecs, Codecs(*codecs, "constraints.allowed_codecs"));
    }
    TANDEM_RETURN_IF_ERROR(constraints.Int("max_int8_blocks", -1, n_layers, &c.max_int8_blocks));
    TANDEM_RETURN_IF_ERROR(constraints.Bool("allow_local", &c.allow_local));
    TANDEM_RETURN_IF_ERROR(constraints.Bool("private_output", &c.private_output));
    TANDEM_RETURN_IF_ERROR(constraints.Int("min_edge_last_blocks", 0, n_layers - 1, &c.min_edge_last_blocks));
  }

  TANDEM_RETURN_IF_ERROR(body.String("objective", 64, &request.objective));
  if (auto objective = Objective::Parse(request.objective); !objective.ok()) {
    return InvalidArgument("objective: " + objective.status().message());
  }
  TANDEM_RETURN_IF_ERROR(body.Int("prompt_tokens", 1, kMaxPlanTokens, &request.prompt_tokens));
  TANDEM_RETURN_IF_ERROR(body.Int("expected_tokens", 0, kMaxPlanTokens, &request.expected_tokens));
  if (const json* draft_json = body.Find("draft")) {
    TANDEM_ASSIGN_OR_RETURN(request.draft, DraftFromJson(*draft_json));
  }
  return request;
}

double RoundedMs(double ms) {
  return std::round(ms * 1e6) / 1e6;
}

json CandidateToJson(const Candidate& candidate) {
  json out = {{"tail", nullptr},
              {"cut", candidate.cut},
              {"codec", nullptr},
              {"local", candidate.local()},
              {"predicted_ttft_ms", RoundedMs(candidate.prefill_ms)},
              {"predicted_token_ms", RoundedMs(candidate.decode_ms)},
              {"draft_tokens", candidate.draft_tokens},
              {"tokens_per_step", RoundedMs(candidate.tokens_per_step)},  // the same 1e-6 rounding
              {"cost", RoundedMs(candidate.cost)}};
  if (!candidate.local()) {
    out["tail"] = candidate.endpoint;
    out["codec"] = candidate.codec.Name();
    if (candidate.private_output()) out["tail_end"] = candidate.end;
  }
  return out;
}

}  // namespace tandem::scheduler
