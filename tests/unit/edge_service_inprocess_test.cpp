// EdgeService in this process, without sockets or child processes: its routes are called with
// HttpRequests (services::Dispatch), its tails are LocalTails behind a scripted RequestTails (a tail can
// be made unreachable or fail at a given step), and with auto a scripted planner names the tails. Checks
// the OpenAI errors (status, type, code, param), admission (queue_full with Retry-After, shutting_down),
// stop strings (plain and streamed, nothing past a match ever sent), and failover (to the next tail or
// all-local with the same text, and the error when no choice is left or the split was forced).
#include "tandem/edge_agent/edge_service.hpp"

#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <nlohmann/json.hpp>

#include <map>
#include <mutex>
#include <regex>
#include <set>

#include "tandem/engine/transformer.hpp"
#include "test_env.hpp"

namespace tandem::edge_agent {
namespace {

using nlohmann::json;
using services::HttpRequest;
using services::HttpResponse;

constexpr char kTailA[] = "inproc://edge-test-tail-a";
constexpr char kTailB[] = "inproc://edge-test-tail-b";
constexpr int kCut = 2;

// A LocalTail that fails its `fail_at`-th step (1-based; Forward or Verify) and every later one with
// `failure`.
class FailingTail final : public TailRunner {
 public:
  FailingTail(std::unique_ptr<TailRunner> inner, int fail_at, Status failure)
      : inner_(std::move(inner)), fail_at_(fail_at), failure_(std::move(failure)) {}
  Result<int> Forward(const HiddenRows& rows) override {
    if (++forwards_ >= fail_at_) return failure_;
    return inner_->Forward(rows);
  }
  Result<VerifyOutcome> Verify(const HiddenRows& rows, std::span<const int> draft) override {
    if (++forwards_ >= fail_at_) return failure_;
    return inner_->Verify(rows, draft);
  }

 private:
  std::unique_ptr<TailRunner> inner_;
  int fail_at_;
  Status failure_;
  int forwards_ = 0;
};

// How each tail behaves; shared by every request of a test.
struct TailScript {
  std::set<std::string> unreachable;                      // Reserve fails
  std::map<std::string, std::pair<int, Status>> failing;  // endpoint -> (failing step, failure)
  std::vector<std::string> opened;                        // every session opened, in order
  std::mutex mutex;
};

class ScriptedTails final : public RequestTails {
 public:
  ScriptedTails(TailScript& script, std::shared_ptr<const Transformer> model)
      : script_(script), model_(std::move(model)) {}
  Status Reserve(const scheduler::Candidate& choice) override {
    const std::lock_guard lock(script_.mutex);
    if (script_.unreachable.contains(choice.endpoint))
      return Unavailable("the cloud tail is not reachable: test");
    return Status::Ok();
  }
  Result<std::unique_ptr<TailRunner>> Open(const scheduler::Candidate& choice, const SamplingParams& sampling,
                                           int positions) override {
    const std::lock_guard lock(script_.mutex);
    script_.opened.push_back(choice.endpoint);
    std::unique_ptr<TailRunner> tail = std::make_unique<LocalTail>(model_, choice.cut, positions, sampling);
    if (const auto failing = script_.failing.find(choice.endpoint); failing != script_.failing.end()) {
      tail = std::make_unique<FailingTail>(std::move(tail), failing->second.first, failing->second.second);
    }
    return tail;
  }
  void Retire(TailRunner&) override {}
  const WireStats& wire() const override { return wire_; }
  void MarkBroken() override {}

 private:
  TailScript& script_;
  std::shared_ptr<const Transformer> model_;
  WireStats wire_;
};

// Chooses tail A; after a failure offers the scripted alternatives in turn, then none.
class ScriptedPlanner final : public SplitPlanner {
 public:
  explicit ScriptedPlanner(std::vector<scheduler::Candidate> alternatives)
      : alternatives_(std::move(alternatives)) {}
  Result<scheduler::Candidate> Choose(int, int) override {
    return scheduler::Candidate{.tail = 0, .endpoint = kTailA, .cut = kCut};
  }
  void Refresh() override {}
  Result<MoveAdvice> AdviseMove(const scheduler::Candidate&, int, int) override {
    return Unavailable("no advice");
  }
  Result<scheduler::Candidate> Alternative(const scheduler::Candidate&, int, int) override {
    const std::lock_guard lock(mutex_);
    if (next_ >= alternatives_.size()) return Unavailable("nothing feasible without the failed tail");
    return alternatives_[next_++];
  }
  json Describe() const override { return json::object(); }

 private:
  std::mutex mutex_;
  std::vector<scheduler::Candidate> alternatives_;
  size_t next_ = 0;
};

// Collects a stream's writes; `client_leaves_after` writes succeed, then the client is gone.
class RecordingStream final : public services::ResponseStream {
 public:
  bool Write(std::string data) override {
    writes.push_back(std::move(data));
    return writes.size() < client_leaves_after;
  }
  bool ClientGone() const override { return writes.size() >= client_leaves_after; }

  std::vector<std::string> writes;
  size_t client_leaves_after = SIZE_MAX;
};

// Tail options for the TailSet, whose pools and monitors try to reach the tails in the background: an
// inproc endpoint nobody binds never answers, and nothing leaves the process.
CloudOptions InProcessCloud() {
  CloudOptions cloud;
  cloud.endpoint = kTailA;
  cloud.security.insecure = true;
  cloud.timeout = std::chrono::milliseconds(100);
  return cloud;
}

class EdgeServiceInProcessTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (testing::SharedDir().empty()) return;
    ModelFlags flags;
    flags.model = testing::Stories260KModel().string();
    auto model = LoadModel(flags, /*fingerprint=*/true);
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    model_ = new LoadedModel(std::move(*model));
  }
  static void TearDownTestSuite() {
    delete model_;
    model_ = nullptr;
  }
  void SetUp() override {
    if (model_ == nullptr) GTEST_SKIP() << "shared folder not found";
    config_.model.model = testing::Stories260KModel().string();
    config_.tokenizer = testing::Stories260KTokenizer().string();
    config_.cloud.endpoint = std::string(kTailA) + "," + kTailB;
    config_.cloud.timeout_ms = 100;  // the slot wait too
    config_.replan_tokens = 0;
  }

  // The service: --split kCut on tail A, or with `alternatives` auto with the scripted planner.
  void Start(std::optional<std::vector<scheduler::Candidate>> alternatives = std::nullopt) {
    auto tokenizer = Tokenizer::LoadForModel(config_.model.model, config_.tokenizer,
                                             model_->checkpoint->config().vocab_size);
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().ToString();
    EdgeDependencies dependencies{.model = *model_,
                                  .tokenizer = std::move(*tokenizer),
                                  .cloud = InProcessCloud(),
                                  .registry = std::make_shared<prometheus::Registry>()};
    if (drafts_) {
      auto drafters = config_.LoadDrafters(model_->transformer);
      ASSERT_TRUE(drafters.ok()) << drafters.status().ToString();
      dependencies.drafts = std::move(*drafters);
    }
    config_.split = alternatives ? "auto" : std::to_string(kCut);
    if (alternatives) {
      dependencies.planner = [alternatives = *alternatives](TailSet&) {
        return std::make_unique<ScriptedPlanner>(alternatives);
      };
    } else {
      dependencies.fixed = scheduler::Candidate{.tail = 0, .endpoint = kTailA, .cut = kCut};
    }
    dependencies.request_tails = [this](TailSet&) {
      return std::make_unique<ScriptedTails>(script_, model_->transformer);
    };
    service_ = std::make_unique<EdgeService>(config_, std::move(dependencies));
    routes_ = service_->Routes(api_key_);
  }

  HttpResponse Call(const std::string& method, const std::string& path, const std::string& body = "") {
    HttpRequest request{.method = method, .path = path, .body = body, .request_id = "test-1"};
    if (!api_key_.empty()) request.headers.emplace_back("authorization", "Bearer " + api_key_);
    return services::Dispatch(routes_, request);
  }
  HttpResponse Complete(const json& body) { return Call("POST", "/v1/completions", body.dump()); }

  // A streamed response's events, its producer run to the end.
  static std::vector<std::string> Events(const HttpResponse& response, RecordingStream& stream) {
    EXPECT_TRUE(response.stream) << response.status << " " << response.body;
    if (response.stream) response.stream(stream);
    std::vector<std::string> events;
    for (const std::string& write : stream.writes) {
      EXPECT_EQ(write.rfind("data: ", 0), 0u) << write;
      EXPECT_EQ(write.substr(write.size() - 2), "\n\n") << write;
      events.push_back(write.substr(6, write.size() - 8));
    }
    return events;
  }

  // The completion the golden record continues its prompt with, greedy.
  static json GoldenRequest(const json& golden) {
    return {{"prompt", golden["prompt"]},
            {"max_tokens", golden["ids"].size() - golden["prompt_ids"].size()},
            {"temperature", 0}};
  }
  static std::string GoldenContinuation(const json& golden) {
    return golden["text"].get<std::string>().substr(golden["prompt"].get<std::string>().size());
  }

  static LoadedModel* model_;
  EdgeConfig config_;
  std::string api_key_;
  TailScript script_;
  bool drafts_ = false;  // load config_.draft's drafters
  std::unique_ptr<EdgeService> service_;
  std::vector<services::Route> routes_;
};

LoadedModel* EdgeServiceInProcessTest::model_ = nullptr;

void ExpectError(const HttpResponse& response, int status, const std::string& type, const std::string& code,
                 const json& param) {
  ASSERT_EQ(response.status, status) << response.body;
  const json error = json::parse(response.body)["error"];
  EXPECT_EQ(error["type"], type) << response.body;
  EXPECT_EQ(error["code"], code) << response.body;
  EXPECT_EQ(error["param"], param) << response.body;
  EXPECT_FALSE(error["message"].get<std::string>().empty());
}

TEST_F(EdgeServiceInProcessTest, BadRequestsGetTheirOpenAiErrors) {
  api_key_ = "key-0123";
  Start();
  struct Case {
    const char* name;
    std::string body;
    int status;
    const char* code;
    json param;
  };
  const auto with = [](const char* field, json value) {
    json body = {{"prompt", "Hi"}, {"max_tokens", 4}};
    body[field] = std::move(value);
    return body.dump();
  };
  const std::vector<Case> cases = {
      {"invalid JSON", "{\"prompt\": ", 400, "invalid_json", nullptr},
      {"not an object", "[1]", 400, "invalid_json", nullptr},
      {"no prompt", json{{"max_tokens", 4}}.dump(), 400, "missing_required_parameter", "prompt"},
      {"prompt a list", with("prompt", {"a", "b"}), 400, "invalid_type", "prompt"},
      {"temperature 3", with("temperature", 3), 400, "invalid_value", "temperature"},
      {"top_p text", with("top_p", "high"), 400, "invalid_type", "top_p"},
      {"max_tokens 0", with("max_tokens", 0), 400, "invalid_value", "max_tokens"},
      {"five stops", with("stop", {"a", "b", "c", "d", "e"}), 400, "invalid_value", "stop"},
      {"n 2", with("n", 2), 400, "invalid_value", "n"},
      {"bad codec", with("tandem", {{"split", 1}, {"codec", "fp7"}}), 400, "invalid_value", "tandem.codec"},
      {"split past L", with("tandem", {{"split", 99}}), 400, "invalid_value", "tandem.split"},
      {"other model", with("model", "gpt-4"), 404, "model_not_found", "model"},
      {"context", with("max_tokens", model_->checkpoint->config().seq_len), 400, "context_length_exceeded",
       "max_tokens"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    ExpectError(Call("POST", "/v1/completions", c.body), c.status, "invalid_request_error", c.code, c.param);
  }
  api_key_ = "wrong";
  ExpectError(Call("GET", "/v1/models"), 401, "invalid_request_error", "invalid_api_key", nullptr);
  EXPECT_EQ(Call("GET", "/healthz").status, 200) << "health needs no key";
}

TEST_F(EdgeServiceInProcessTest, ModelsPlanAndAGoldenCompletion) {
  Start();
  EXPECT_EQ(json::parse(Call("GET", "/v1/models").body)["data"][0]["id"], "stories260K");
  const json plan = json::parse(Call("GET", "/v1/plan").body);
  EXPECT_EQ(plan["cut"], kCut);
  EXPECT_EQ(plan["codec"], "fp32");
  const json golden = testing::GoldenRecords().at(0);
  const HttpResponse response = Complete(GoldenRequest(golden));
  ASSERT_EQ(response.status, 200) << response.body;
  const json body = json::parse(response.body);
  EXPECT_EQ(body["id"], "cmpl-test-1");
  EXPECT_EQ(body["choices"][0]["text"], GoldenContinuation(golden));
  EXPECT_EQ(body["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(body["tandem"]["cut"], kCut);
  EXPECT_EQ(body["tandem"]["moves"], 0);
  EXPECT_EQ(script_.opened, std::vector<std::string>{kTailA});
}

TEST_F(EdgeServiceInProcessTest, AFullQueueIs503WithRetryAfterAndDrainingRefusesNewRequests) {
  config_.max_concurrent = 1;
  config_.max_queue = 0;
  Start();
  // A streamed response holds its slot until its producer has run.
  std::optional<HttpResponse> held = Complete({{"prompt", "Once"}, {"max_tokens", 4}, {"stream", true}});
  ASSERT_EQ(held->status, 200) << held->body;
  const HttpResponse shed = Complete({{"prompt", "Hi"}, {"max_tokens", 2}});
  ExpectError(shed, 503, "server_error", "queue_full", nullptr);
  EXPECT_NE(std::find(shed.headers.begin(), shed.headers.end(),
                      std::pair<std::string, std::string>{"Retry-After", "1"}),
            shed.headers.end());
  RecordingStream stream;
  const std::vector<std::string> events = Events(*held, stream);
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events.back(), "[DONE]");
  held.reset();  // as the server drops a response once its stream ended: the slot is free
  EXPECT_EQ(Complete({{"prompt", "Hi"}, {"max_tokens", 2}}).status, 200);

  service_->BeginDrain();
  EXPECT_FALSE(service_->Ready());
  ExpectError(Complete({{"prompt", "Hi"}, {"max_tokens", 2}}), 503, "server_error", "shutting_down", nullptr);
  EXPECT_EQ(Call("GET", "/readyz").status, 503);
}

TEST_F(EdgeServiceInProcessTest, StopStringsEndTheTextPlainAndStreamed) {
  Start();
  const json request = {
      {"prompt", "Once upon a time"}, {"max_tokens", 60}, {"temperature", 0}, {"stop", {"Lily", "zzz"}}};
  const HttpResponse plain = Complete(request);
  ASSERT_EQ(plain.status, 200) << plain.body;
  const json body = json::parse(plain.body);
  EXPECT_EQ(body["choices"][0]["text"], ", there was a little girl named ");
  EXPECT_EQ(body["choices"][0]["finish_reason"], "stop");

  json streamed_request = request;
  streamed_request["stream"] = true;
  RecordingStream stream;
  const std::vector<std::string> events = Events(Complete(streamed_request), stream);
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events.back(), "[DONE]");
  std::string text;
  for (size_t i = 0; i + 2 < events.size(); ++i) {
    const json chunk = json::parse(events[i]);
    EXPECT_TRUE(chunk["choices"][0]["finish_reason"].is_null());
    text += chunk["choices"][0]["text"].get<std::string>();
    EXPECT_EQ(text.find('L'), std::string::npos) << "a piece of the stop string went out: " << text;
  }
  EXPECT_EQ(text, ", there was a little girl named ");
  const json last = json::parse(events[events.size() - 2]);
  EXPECT_EQ(last["choices"][0]["text"], "");
  EXPECT_EQ(last["choices"][0]["finish_reason"], "stop");
}

TEST_F(EdgeServiceInProcessTest, AStopStringThatNeverMatchesHoldsNothingBackAtTheEnd) {
  Start();
  const json golden = testing::GoldenRecords().at(1);
  json request = GoldenRequest(golden);
  request["stop"] = "zzzzzz";
  request["stream"] = true;
  RecordingStream stream;
  const std::vector<std::string> events = Events(Complete(request), stream);
  ASSERT_GE(events.size(), 3u);
  std::string text;
  for (size_t i = 0; i + 2 < events.size(); ++i)
    text += json::parse(events[i])["choices"][0]["text"].get<std::string>();
  EXPECT_EQ(text, GoldenContinuation(golden));
  EXPECT_EQ(json::parse(events[events.size() - 2])["choices"][0]["finish_reason"], "length");
}

TEST_F(EdgeServiceInProcessTest, AStreamWhoseTailFailsEndsWithAnErrorEventThenDone) {
  script_.failing[kTailA] = {3, Unavailable("tail A went away")};
  Start();  // a fixed split, with no other tail to move to (the TailSet's never connect here)
  RecordingStream stream;
  const std::vector<std::string> events =
      Events(Complete({{"prompt", "Once upon a time"}, {"max_tokens", 8}, {"stream", true}}), stream);
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events.back(), "[DONE]");
  json error = json::parse(events[events.size() - 2])["error"];
  EXPECT_NE(error["message"].get<std::string>().find("no other tail can take over"), std::string::npos)
      << error;
  error.erase("message");
  EXPECT_EQ(error, (json{{"type", "server_error"}, {"code", "upstream_unavailable"}, {"param", nullptr}}));
}

TEST_F(EdgeServiceInProcessTest, AClientGoneMidStreamEndsTheGeneration) {
  Start();
  RecordingStream stream;
  stream.client_leaves_after = 2;
  const std::vector<std::string> events = Events(
      Complete({{"prompt", "Once upon a time"}, {"max_tokens", 60}, {"temperature", 0}, {"stream", true}}),
      stream);
  // Two pieces (the second finds the client gone), then the last chunk and [DONE] are still tried.
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events.back(), "[DONE]");
  EXPECT_LT(json::parse(events[2])["usage"]["completion_tokens"].get<int>(), 10);
}

TEST_F(EdgeServiceInProcessTest, AFailedTailHandsTheGenerationToTheNextWithTheSameText) {
  script_.failing[kTailA] = {4, Unavailable("tail A went away")};
  Start(std::vector<scheduler::Candidate>{{.tail = 0, .endpoint = kTailB, .cut = kCut}});
  const json golden = testing::GoldenRecords().at(0);
  const HttpResponse response = Complete(GoldenRequest(golden));
  ASSERT_EQ(response.status, 200) << response.body;
  const json body = json::parse(response.body);
  EXPECT_EQ(body["choices"][0]["text"], GoldenContinuation(golden))
      << "the replay on B must continue A's text";
  EXPECT_EQ(body["tandem"]["cloud"], kTailB);
  EXPECT_EQ(body["tandem"]["moves"], 1);
  ASSERT_EQ(body["tandem"]["move_log"].size(), 1u);
  EXPECT_EQ(body["tandem"]["move_log"][0]["reason"], "fallback");
  EXPECT_EQ(body["tandem"]["move_log"][0]["cut"], kCut);
  EXPECT_EQ(script_.opened, (std::vector<std::string>{kTailA, kTailB}));
  const std::string metrics = Call("GET", "/metrics").body;
  EXPECT_NE(metrics.find("tandem_edge_failovers_total{to=\"tail\"} 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("tandem_edge_split_moves_total{reason=\"fallback\"} 1"), std::string::npos);
}

// Speculative decoding with the edge's drafter gives the golden text, counts only the tokens emitted, and
// fails over with its verify steps replayed.
TEST_F(EdgeServiceInProcessTest, DraftingKeepsTheTextAndUsageThroughAFailover) {
  config_.draft = "self-int8";
  config_.draft_tokens = "4";
  drafts_ = true;
  script_.failing[kTailA] = {6, Unavailable("tail A went away")};
  Start(std::vector<scheduler::Candidate>{{.tail = 0, .endpoint = kTailB, .cut = kCut}});
  const json golden = testing::GoldenRecords().at(0);
  const HttpResponse response = Complete(GoldenRequest(golden));
  ASSERT_EQ(response.status, 200) << response.body;
  const json body = json::parse(response.body);
  EXPECT_EQ(body["choices"][0]["text"], GoldenContinuation(golden));
  EXPECT_EQ(body["usage"]["completion_tokens"], GoldenRequest(golden)["max_tokens"]);
  EXPECT_EQ(body["tandem"]["move_log"].size(), 1u) << "tail A fails its sixth step";
  const json draft = body["tandem"]["draft"];
  EXPECT_EQ(draft["drafter"], "self-int8");
  EXPECT_GT(draft["accepted_tokens"].get<int>(), draft["drafted_tokens"].get<int>() * 3 / 4);
  EXPECT_LT(draft["model_steps"].get<int>(), body["usage"]["completion_tokens"].get<int>() / 2);
  const std::string metrics = Call("GET", "/metrics").body;
  EXPECT_NE(metrics.find("tandem_edge_draft_tokens_total{outcome=\"accepted\"}"), std::string::npos);
  EXPECT_NE(metrics.find("tandem_edge_tokens_per_round_trip_count"), std::string::npos);
}

// A request's own drafter, streamed, with a stop string: nothing of the stop string goes out.
TEST_F(EdgeServiceInProcessTest, ARequestsDrafterStreamsAndHoldsStopStringsBack) {
  config_.draft = "self-int8";
  drafts_ = true;
  Start();
  json request = {{"prompt", "Once upon a time"},
                  {"max_tokens", 60},
                  {"temperature", 0},
                  {"stop", {"Lily"}},
                  {"stream", true},
                  {"tandem", {{"draft", "ngram"}, {"draft_tokens", 3}}}};
  RecordingStream stream;
  const std::vector<std::string> events = Events(Complete(request), stream);
  ASSERT_GE(events.size(), 3u);
  std::string text;
  for (size_t i = 0; i + 2 < events.size(); ++i) {
    text += json::parse(events[i])["choices"][0]["text"].get<std::string>();
    EXPECT_EQ(text.find('L'), std::string::npos) << text;
  }
  EXPECT_EQ(text, ", there was a little girl named ");
  const json last = json::parse(events[events.size() - 2]);
  EXPECT_EQ(last["tandem"]["draft"]["drafter"], "ngram");

  request["tandem"]["draft"] = "self-int4";  // not loaded by this edge
  ExpectError(Complete(request), 400, "invalid_request_error", "invalid_value", "tandem.draft");
}

TEST_F(EdgeServiceInProcessTest, WhenTheNextTailFailsTooTheGenerationFinishesLocally) {
  script_.failing[kTailA] = {2, DeadlineExceeded("tail A silent")};
  script_.failing[kTailB] = {1, Unavailable("tail B gone during the replay")};
  Start(std::vector<scheduler::Candidate>{{.tail = 0, .endpoint = kTailB, .cut = kCut},
                                          scheduler::Candidate{}});
  const json golden = testing::GoldenRecords().at(0);
  const HttpResponse response = Complete(GoldenRequest(golden));
  ASSERT_EQ(response.status, 200) << response.body;
  const json body = json::parse(response.body);
  EXPECT_EQ(body["choices"][0]["text"], GoldenContinuation(golden));
  EXPECT_EQ(body["tandem"]["cut"], model_->transformer->n_layers()) << "all-local";
  EXPECT_EQ(body["tandem"]["moves"], 1) << "the move to B never completed";
  EXPECT_NE(Call("GET", "/metrics").body.find("tandem_edge_failovers_total{to=\"local\"} 1"),
            std::string::npos);
}

TEST_F(EdgeServiceInProcessTest, WithNoChoiceLeftTheRequestFailsWith503) {
  script_.failing[kTailA] = {3, Unavailable("tail A went away")};
  Start(std::vector<scheduler::Candidate>{});
  ExpectError(Complete({{"prompt", "Once"}, {"max_tokens", 8}}), 503, "server_error", "upstream_unavailable",
              nullptr);
}

TEST_F(EdgeServiceInProcessTest, AForcedSplitDoesNotMoveAndABrokenTailIs502) {
  script_.failing[kTailA] = {2, Unavailable("tail A went away")};
  Start(std::vector<scheduler::Candidate>{{.tail = 0, .endpoint = kTailB, .cut = kCut}});
  const HttpResponse forced =
      Complete({{"prompt", "Once"}, {"max_tokens", 8}, {"tandem", {{"split", kCut}}}});
  ExpectError(forced, 503, "server_error", "upstream_unavailable", nullptr);
  EXPECT_EQ(script_.opened, std::vector<std::string>{kTailA}) << "a forced split never moves";

  script_.failing[kTailA] = {2, Internal("tail A sent garbage")};
  ExpectError(Complete({{"prompt", "Once"}, {"max_tokens", 8}}), 502, "server_error", "upstream_error",
              nullptr);
}

TEST_F(EdgeServiceInProcessTest, AnUnreachableFirstTailTurnsAutoLocalButAFixedSplitGets503) {
  script_.unreachable.insert(kTailA);
  Start(std::vector<scheduler::Candidate>{});
  const HttpResponse local = Complete({{"prompt", "Once"}, {"max_tokens", 4}});
  ASSERT_EQ(local.status, 200) << local.body;
  EXPECT_EQ(json::parse(local.body)["tandem"]["cut"], model_->transformer->n_layers());

  service_.reset();
  Start();
  ExpectError(Complete({{"prompt", "Once"}, {"max_tokens", 4}}), 503, "server_error", "upstream_unavailable",
              nullptr);
}

}  // namespace
}  // namespace tandem::edge_agent
