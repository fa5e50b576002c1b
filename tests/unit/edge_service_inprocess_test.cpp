// EdgeService in this process (edge_inprocess_harness.hpp). Checks the OpenAI errors (status, type, code,
// param), admission (queue_full with Retry-After, shutting_down), stop strings (plain and streamed, nothing
// past a match ever sent), and failover (to the next tail or all-local with the same text, and the error
// when no choice is left or the split was forced).
#include "edge_inprocess_harness.hpp"

namespace tandem::edge_agent {
namespace {

using namespace testing_harness;
using nlohmann::json;
using services::HttpRequest;
using services::HttpResponse;
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
