// The scheduler's JSON for drafting: the plan request's "draft" and each candidate's draft length, both
// ways and through the service's /v1/plan route (no socket); and the routes behind a control secret.
#include "tandem/scheduler/scheduler_api.hpp"

#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <nlohmann/json.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tandem/base/clock.hpp"
#include "tandem/scheduler/scheduler_service.hpp"
#include "tandem/services/request_signing.hpp"

namespace tandem::scheduler {
namespace {

using nlohmann::json;

constexpr int kLayers = 8;

ComputeProfile Uniform(double block_ms, double head_ms) {
  return {.decode_block_ms = std::vector<double>(kLayers, block_ms), .head_ms = head_ms};
}

// A slow edge asking for a split only, to a tail 50 ms away at 100 Mbit/s.
PlanRequest FarTailRequest() {
  return {.fingerprint = "42",
          .n_layers = kLayers,
          .dim = 512,
          .profile = Uniform(2, 1),
          .links = {{.endpoint = "tcp://gpu", .rtt_ms = 50, .bandwidth_mbit_s = 100}},
          .constraints = {.allow_local = false},
          .objective = "per-token",
          .prompt_tokens = 16,
          .expected_tokens = 32};
}

TEST(PlanRequestJsonTest, DraftIsOffUnlessAsked) {
  const json body = PlanRequestToJson(FarTailRequest());
  EXPECT_FALSE(body.contains("draft"));
  const Result<PlanRequest> parsed = PlanRequestFromJson(body);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_FALSE(parsed->draft.enabled);
}

TEST(PlanRequestJsonTest, DraftRoundTrips) {
  PlanRequest request = FarTailRequest();
  request.draft = {
      .enabled = true, .acceptance = 0.7, .draft_token_ms = 0.25, .max_drafts = 12, .min_gain = 0.1};
  const json body = PlanRequestToJson(request);
  ASSERT_TRUE(body.contains("draft")) << body.dump();
  const Result<PlanRequest> parsed = PlanRequestFromJson(body);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  const DraftInputs& draft = parsed->draft;
  EXPECT_TRUE(draft.enabled);
  EXPECT_EQ(draft.acceptance, 0.7);
  EXPECT_EQ(draft.draft_token_ms, 0.25);
  EXPECT_EQ(draft.max_drafts, 12);
  EXPECT_EQ(draft.min_gain, 0.1);

  // Only max_drafts is required; the rest take DraftInputs' defaults.
  json minimal = body;
  minimal["draft"] = {{"max_drafts", 4}};
  const Result<PlanRequest> defaults = PlanRequestFromJson(minimal);
  ASSERT_TRUE(defaults.ok()) << defaults.status().ToString();
  EXPECT_TRUE(defaults->draft.enabled);
  EXPECT_EQ(defaults->draft.acceptance, DraftInputs{}.acceptance);
  EXPECT_EQ(defaults->draft.min_gain, kDefaultDraftMinGain);
  EXPECT_EQ(defaults->draft.max_drafts, 4);
}

TEST(PlanRequestJsonTest, BadDraftsNameTheirField) {
  struct Case {
    json draft;
    std::string field;
    std::string message_part;
  };
  const std::vector<Case> cases = {
      {json::array(), "draft", "must be a JSON object"},
      {{{"acceptance", 0.5}}, "draft.max_drafts", "is required"},
      {{{"max_drafts", 65}}, "draft.max_drafts", "[0, 64]"},
      {{{"max_drafts", -1}}, "draft.max_drafts", "[0, 64]"},
      {{{"max_drafts", 4}, {"acceptance", 1.5}}, "draft.acceptance", "in [0, 1]"},
      {{{"max_drafts", 4}, {"draft_token_ms", -1}}, "draft.draft_token_ms", ">= 0"},
      {{{"max_drafts", 4}, {"min_gain", "high"}}, "draft.min_gain", "must be a number"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.draft.dump());
    json body = PlanRequestToJson(FarTailRequest());
    body["draft"] = c.draft;
    const Result<PlanRequest> parsed = PlanRequestFromJson(body);
    ASSERT_FALSE(parsed.ok());
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(FieldOf(parsed.status()), c.field) << parsed.status().message();
    EXPECT_NE(parsed.status().message().find(c.message_part), std::string::npos) << parsed.status().message();
  }
}

TEST(CandidateJsonTest, CarriesTheDraftLength) {
  const json plain = CandidateToJson(Candidate{.tail = 0, .endpoint = "tcp://gpu", .cut = 1, .decode_ms = 3});
  EXPECT_EQ(plain["draft_tokens"], 0);
  EXPECT_EQ(plain["tokens_per_step"], 1.0);
  const json drafting = CandidateToJson(Candidate{
      .tail = -1, .cut = kLayers, .decode_ms = 1.5, .draft_tokens = 6, .tokens_per_step = 2.123456789});
  EXPECT_EQ(drafting["draft_tokens"], 6);
  EXPECT_EQ(drafting["tokens_per_step"], 2.123457);
  EXPECT_EQ(drafting["local"], true);
}

TailReport GpuTail() {
  return {.endpoint = "tcp://gpu",
          .fingerprint = "42",
          .n_layers = kLayers,
          .dim = 512,
          .profile = Uniform(0.2, 0.1)};
}

class PlanRouteTest : public testing::Test {
 protected:
  void SetUp() override {
    auto service = SchedulerService::Create(Options(), clock_, std::make_shared<prometheus::Registry>());
    ASSERT_TRUE(service.ok()) << service.status().ToString();
    service_ = std::move(*service);
    ASSERT_EQ(Call("POST", "/v1/tails/heartbeat", TailReportToJson(GpuTail()), Signer()).status, 200);
  }
  virtual SchedulerOptions Options() const { return {}; }
  virtual std::optional<services::RequestSigner> Signer() const { return std::nullopt; }

  // The route's answer to `body`, signed by `signer` when there is one (with its Authorization header).
  services::HttpResponse Call(const std::string& method, const std::string& path, const json& body,
                              const std::optional<services::RequestSigner>& signer = std::nullopt,
                              int64_t unix_ms = services::UnixMillisNow()) {
    services::HttpRequest request{.method = method, .path = path, .body = method == "GET" ? "" : body.dump()};
    if (signer) {
      request.headers.emplace_back("authorization",
                                   signer->Authorization(method, path, request.body, unix_ms));
    }
    for (const services::Route& route : service_->Routes()) {
      if (route.method == method && route.path == path) return route.handler(request);
    }
    ADD_FAILURE() << "no route " << method << " " << path;
    return {};
  }

  json Plan(const PlanRequest& request) {
    const services::HttpResponse response = Call("POST", "/v1/plan", PlanRequestToJson(request));
    EXPECT_EQ(response.status, 200) << response.body;
    return json::parse(response.body);
  }

  ManualClock clock_;
  std::unique_ptr<SchedulerService> service_;
};

TEST_F(PlanRouteTest, AFarTailPlanDraftsWhenTheEdgeDrafts) {
  const json plain = Plan(FarTailRequest());
  EXPECT_EQ(plain["draft_tokens"], 0) << plain.dump();
  EXPECT_EQ(plain["tokens_per_step"], 1.0);

  PlanRequest request = FarTailRequest();
  request.draft = {.enabled = true, .acceptance = 0.8, .draft_token_ms = 0.1, .max_drafts = 16};
  const json drafting = Plan(request);
  EXPECT_EQ(drafting["tail"], "tcp://gpu") << drafting.dump();
  EXPECT_EQ(drafting["cut"], 1);
  EXPECT_GT(drafting["draft_tokens"].get<int>(), 0);
  EXPECT_GT(drafting["tokens_per_step"].get<double>(), 2);
  // The round trip is shared by the step's tokens: well under half the plain per-token time.
  EXPECT_LT(drafting["predicted_token_ms"].get<double>(), plain["predicted_token_ms"].get<double>() / 2);
  for (const json& candidate : drafting["candidates"]) EXPECT_TRUE(candidate.contains("draft_tokens"));
}

const std::string kSecret = "a control secret of at least 32 bytes";

// The same service with a control secret: what is not signed with it is refused and changes nothing.
class ControlPlaneAuthTest : public PlanRouteTest {
 protected:
  SchedulerOptions Options() const override { return {.control_secret = kSecret}; }
  std::optional<services::RequestSigner> Signer() const override {
    return *services::RequestSigner::Create(kSecret, "tcp://gpu");
  }
  json Tails() { return json::parse(Call("GET", "/v1/tails", nullptr).body)["tails"]; }
  std::string Metrics() { return Call("GET", "/metrics", nullptr).body; }
};

TEST_F(ControlPlaneAuthTest, UnsignedOrWronglySignedRequestsAreRefusedAndChangeNothing) {
  const json before = Tails();
  ASSERT_EQ(before.size(), 1u);
  const auto intruder = services::RequestSigner::Create("not the control secret, but as long", "tcp://gpu");
  ASSERT_TRUE(intruder.ok());
  TailReport rogue = GpuTail();
  rogue.endpoint = "tcp://rogue:5555";
  TailReport leaving = GpuTail();
  leaving.draining = true;  // would remove the registered tail
  const int64_t stale_ms = services::UnixMillisNow() - 31000;
  struct Case {
    std::string name;
    std::string path;
    json body;
    std::optional<services::RequestSigner> signer;
    int64_t unix_ms;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {"heartbeat without a credential", "/v1/tails/heartbeat", TailReportToJson(rogue), std::nullopt,
       services::UnixMillisNow(), "missing"},
      {"heartbeat, wrong secret", "/v1/tails/heartbeat", TailReportToJson(rogue), *intruder,
       services::UnixMillisNow(), "bad_mac"},
      {"draining heartbeat, wrong secret", "/v1/tails/heartbeat", TailReportToJson(leaving), *intruder,
       services::UnixMillisNow(), "bad_mac"},
      {"heartbeat, stale", "/v1/tails/heartbeat", TailReportToJson(leaving), Signer(), stale_ms, "stale"},
      {"plan without a credential", "/v1/plan", PlanRequestToJson(FarTailRequest()), std::nullopt,
       services::UnixMillisNow(), "missing"},
      {"plan, wrong secret", "/v1/plan", PlanRequestToJson(FarTailRequest()), *intruder,
       services::UnixMillisNow(), "bad_mac"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const services::HttpResponse response = Call("POST", c.path, c.body, c.signer, c.unix_ms);
    EXPECT_EQ(response.status, 401) << response.body;
    const json error = json::parse(response.body)["error"];
    EXPECT_EQ(error["code"], "invalid_control_credential");
    EXPECT_EQ(error["type"], "invalid_request_error");
  }
  // The registry is as it was: no rogue tail, the real one not drained, no plan counted against it.
  const json after = Tails();
  ASSERT_EQ(after.size(), 1u) << after.dump();
  EXPECT_EQ(after[0]["endpoint"], "tcp://gpu");
  EXPECT_EQ(after[0]["heartbeats"], before[0]["heartbeats"]);
  EXPECT_EQ(after[0]["plans_total"], 0);
  const std::string metrics = Metrics();
  EXPECT_NE(metrics.find("tandem_scheduler_auth_failures_total{reason=\"missing\"} 2"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("tandem_scheduler_auth_failures_total{reason=\"bad_mac\"} 3"), std::string::npos);
  EXPECT_NE(metrics.find("tandem_scheduler_auth_failures_total{reason=\"stale\"} 1"), std::string::npos);
  EXPECT_NE(metrics.find("tandem_scheduler_heartbeats_total 1"), std::string::npos) << metrics;

  // Signed, the same plan request is answered.
  const services::HttpResponse planned =
      Call("POST", "/v1/plan", PlanRequestToJson(FarTailRequest()), Signer());
  EXPECT_EQ(planned.status, 200) << planned.body;
  EXPECT_EQ(Tails()[0]["plans_total"], 1);
}

TEST(ControlPlaneOptionsTest, AShortSecretIsRefused) {
  ManualClock clock;
  const auto service =
      SchedulerService::Create({.control_secret = "short"}, clock, std::make_shared<prometheus::Registry>());
  EXPECT_FALSE(service.ok());
}

}  // namespace
}  // namespace tandem::scheduler
