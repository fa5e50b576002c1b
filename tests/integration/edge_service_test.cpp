// tandem-edge and tandem-cloud as real processes on loopback: the OpenAI-compatible API gives the golden
// continuations (plain and streamed), reports usage, lists the model, exposes metrics, refuses every bad
// input with the right status and error, and starts, sheds load, cancels and drains as it should.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <future>
#include <regex>
#include <thread>

#include "cloud_tail_process.hpp"
#include "http_client.hpp"
#include "tandem/engine/linear.hpp"
#include "test_env.hpp"

namespace tandem {
namespace {

using nlohmann::json;
using testing::CloudTailProcess;
using testing::EdgeProcess;
using testing::HttpCall;
using testing::HttpResult;
using testing::WaitUntil;

constexpr const char* kApiKey = "test-key-0123456789";
const testing::Headers kAuth = {{"Authorization", std::string("Bearer ") + kApiKey}};

HttpResult Complete(const std::string& address, const json& body, const testing::Headers& headers = kAuth) {
  return HttpCall(address, "POST", "/v1/completions", body.dump(), headers);
}

// The value of an unlabelled sample in Prometheus text (-1 when absent).
double Sample(const std::string& metrics, const std::string& name) {
  const std::regex line("(^|\n)" + name + " ([-+0-9.eE]+)");
  std::smatch match;
  return std::regex_search(metrics, match, line) ? std::stod(match[2]) : -1;
}

// One tail and one edge (cut 2, API key on) shared by the tests that do not stop them.
// The request that reproduces a golden record: its prompt, greedy, as many tokens as it continues.
json GoldenRequest(const json& golden) {
  const auto tokens = golden["ids"].size() - golden["prompt_ids"].size();
  return {{"model", "stories260K"}, {"prompt", golden["prompt"]}, {"max_tokens", tokens}, {"temperature", 0}};
}
std::string GoldenContinuation(const json& golden) {
  const std::string text = golden["text"], prompt = golden["prompt"];
  EXPECT_EQ(text.substr(0, prompt.size()), prompt);
  return text.substr(prompt.size());
}

class EdgeServiceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (testing::SharedDir().empty()) return;
    tail_ = new CloudTailProcess();
    edge_ = new EdgeProcess(*tail_, {"--split", "2", "--api-key", kApiKey, "--max-concurrent", "2"});
  }
  static void TearDownTestSuite() {
    delete edge_;
    delete tail_;
    edge_ = nullptr;
    tail_ = nullptr;
  }
  void SetUp() override {
    if (tail_ == nullptr) GTEST_SKIP() << "shared folder not found";
    ASSERT_TRUE(tail_->started()) << tail_->log();
    ASSERT_TRUE(edge_->started()) << edge_->log();
    ASSERT_TRUE(testing::AwaitReady(*edge_)) << edge_->log();
  }

  static CloudTailProcess* tail_;
  static EdgeProcess* edge_;
};

CloudTailProcess* EdgeServiceTest::tail_ = nullptr;
EdgeProcess* EdgeServiceTest::edge_ = nullptr;

TEST_F(EdgeServiceTest, CompletionsEqualTheGoldenContinuations) {
  for (const json& golden : testing::GoldenRecords()) {
    SCOPED_TRACE(golden["prompt"].get<std::string>());
    const HttpResult result = Complete(edge_->address(), GoldenRequest(golden));
    ASSERT_EQ(result.status, 200) << result.body;
    const json body = json::parse(result.body);
    EXPECT_EQ(body["object"], "text_completion");
    EXPECT_EQ(body["choices"][0]["text"], GoldenContinuation(golden));
    EXPECT_EQ(body["choices"][0]["finish_reason"], "length");
    const int prompt_tokens = static_cast<int>(golden["prompt_ids"].size());
    const int completion_tokens = static_cast<int>(golden["ids"].size()) - prompt_tokens;
    EXPECT_EQ(body["usage"]["prompt_tokens"], prompt_tokens);
    EXPECT_EQ(body["usage"]["completion_tokens"], completion_tokens);
    EXPECT_EQ(body["usage"]["total_tokens"], prompt_tokens + completion_tokens);
    EXPECT_EQ(body["tandem"]["cut"], 2);
    EXPECT_EQ(body["tandem"]["codec"], "fp32");
    EXPECT_EQ(body["tandem"]["activation_bytes_float32"], (prompt_tokens + completion_tokens - 1) * 64 * 4);
    EXPECT_GT(body["tandem"]["ttft_ms"].get<double>(), 0);
  }
}

TEST_F(EdgeServiceTest, AStreamedCompletionEqualsTheGoldenContinuation) {
  const json golden = testing::GoldenRecords().at(1);
  json request = GoldenRequest(golden);
  request["stream"] = true;
  int pieces = 0;
  const HttpResult result = testing::HttpStream(edge_->address(), "POST", "/v1/completions", request.dump(),
                                                kAuth, [&](std::string_view) { return ++pieces > 0; });
  ASSERT_EQ(result.status, 200) << result.body;
  EXPECT_EQ(result.Header("content-type"), "text/event-stream");
  const auto events = testing::SseEvents(result.body);
  ASSERT_GE(events.size(), 3u) << result.body;
  EXPECT_EQ(events.back(), "[DONE]");
  std::string text;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    const json chunk = json::parse(events[i]);
    EXPECT_EQ(chunk["object"], "text_completion");
    text += chunk["choices"][0]["text"].get<std::string>();
  }
  EXPECT_EQ(text, GoldenContinuation(golden));
  EXPECT_GT(pieces, 1) << "the body arrived in one piece: not streamed";
  const json last = json::parse(events[events.size() - 2]);
  EXPECT_EQ(last["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(last["usage"]["completion_tokens"], golden["ids"].size() - golden["prompt_ids"].size());
}

TEST_F(EdgeServiceTest, StopStringsEndTheText) {
  const HttpResult result = Complete(
      edge_->address(),
      {{"prompt", "Once upon a time"}, {"max_tokens", 60}, {"temperature", 0}, {"stop", {"Lily", "zzz"}}});
  ASSERT_EQ(result.status, 200) << result.body;
  const json body = json::parse(result.body);
  EXPECT_EQ(body["choices"][0]["text"], ", there was a little girl named ");
  EXPECT_EQ(body["choices"][0]["finish_reason"], "stop");
}

TEST_F(EdgeServiceTest, ModelsAndPlan) {
  const HttpResult models = HttpCall(edge_->address(), "GET", "/v1/models", "", kAuth);
  ASSERT_EQ(models.status, 200);
  EXPECT_EQ(json::parse(models.body)["data"][0]["id"], "stories260K");
  const HttpResult plan = HttpCall(edge_->address(), "GET", "/v1/plan", "", kAuth);
  ASSERT_EQ(plan.status, 200);
  const json body = json::parse(plan.body);
  EXPECT_EQ(body["cloud"], tail_->endpoint());
  EXPECT_EQ(body["cut"], 2);
  EXPECT_EQ(body["codec"], "fp32");
}

TEST_F(EdgeServiceTest, MetricsParseAsPrometheusTextAndMove) {
  const auto scrape = [] {
    const HttpResult result = HttpCall(edge_->address(), "GET", "/metrics", "", kAuth);
    EXPECT_EQ(result.status, 200);
    return result.body;
  };
  const std::string before = scrape();
  ASSERT_EQ(Complete(edge_->address(), {{"prompt", "Hello"}, {"max_tokens", 8}, {"temperature", 0}}).status,
            200);
  const std::string after = scrape();
  const std::regex sample(R"(^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? ([-+]?[0-9.eE+-]+|NaN|[+-]Inf)$)");
  std::istringstream lines(after);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#') continue;
    EXPECT_TRUE(std::regex_match(line, sample)) << line;
  }
  const auto completion_tokens = [](const std::string& text) {
    return Sample(text, R"(tandem_edge_tokens_total\{direction="out"\})");
  };
  EXPECT_GE(completion_tokens(after) - std::max(0.0, completion_tokens(before)), 8);
  EXPECT_GT(Sample(after, "tandem_edge_ttft_seconds_count"),
            Sample(before, "tandem_edge_ttft_seconds_count"));
  EXPECT_EQ(Sample(after, "tandem_edge_cut"), 2);
  // Both services say which kernel table runs: the one this process would choose (same CPU, same
  // TANDEM_KERNELS).
  const std::string kernels = std::string("kernels=\"") + ActiveKernels().name + "\"";
  for (const std::string& metrics : {after, HttpCall(tail_->http_address(), "GET", "/metrics").body}) {
    const auto line = metrics.find("tandem_build_info{");
    ASSERT_NE(line, std::string::npos) << metrics.substr(0, 2000);
    const std::string sample = metrics.substr(line, metrics.find('\n', line) - line);
    EXPECT_NE(sample.find(kernels), std::string::npos) << sample;
    EXPECT_EQ(sample.substr(sample.size() - 2), " 1") << sample;
  }
}

// Every bad input: the exact status and OpenAI error type/code/param, never a 5xx.
TEST_F(EdgeServiceTest, BadInputsGetTheirStatusAndError) {
  struct Case {
    const char* what;
    std::string method, path, body;
    testing::Headers headers;
    int status;
    const char* type;
    const char* code;
    const char* param;  // nullptr: null
  };
  const json ok = {{"prompt", "Hi"}, {"max_tokens", 4}};
  const auto with = [&](const char* key, json value) {
    json body = ok;
    body[key] = std::move(value);
    return body.dump();
  };
  const std::vector<Case> cases = {
      {"invalid JSON", "POST", "/v1/completions", "{\"prompt\": ", kAuth, 400, "invalid_request_error",
       "invalid_json", nullptr},
      {"missing prompt", "POST", "/v1/completions", json{{"max_tokens", 4}}.dump(), kAuth, 400,
       "invalid_request_error", "missing_required_parameter", "prompt"},
      {"prompt not a string", "POST", "/v1/completions", with("prompt", 7), kAuth, 400,
       "invalid_request_error", "invalid_type", "prompt"},
      {"temperature < 0", "POST", "/v1/completions", with("temperature", -0.5), kAuth, 400,
       "invalid_request_error", "invalid_value", "temperature"},
      {"temperature not a number", "POST", "/v1/completions", with("temperature", "hot"), kAuth, 400,
       "invalid_request_error", "invalid_type", "temperature"},
      {"top_p 0", "POST", "/v1/completions", with("top_p", 0), kAuth, 400, "invalid_request_error",
       "invalid_value", "top_p"},
      {"top_p over 1", "POST", "/v1/completions", with("top_p", 1.5), kAuth, 400, "invalid_request_error",
       "invalid_value", "top_p"},
      {"max_tokens 0", "POST", "/v1/completions", with("max_tokens", 0), kAuth, 400, "invalid_request_error",
       "invalid_value", "max_tokens"},
      {"max_tokens over the cap", "POST", "/v1/completions", with("max_tokens", 100000), kAuth, 400,
       "invalid_request_error", "invalid_value", "max_tokens"},
      {"prompt + max_tokens over the context", "POST", "/v1/completions", with("max_tokens", 512), kAuth, 400,
       "invalid_request_error", "context_length_exceeded", "max_tokens"},
      {"five stop strings", "POST", "/v1/completions", with("stop", {"a", "b", "c", "d", "e"}), kAuth, 400,
       "invalid_request_error", "invalid_value", "stop"},
      {"negative seed", "POST", "/v1/completions", with("seed", -1), kAuth, 400, "invalid_request_error",
       "invalid_type", "seed"},
      {"another model", "POST", "/v1/completions", with("model", "gpt-4"), kAuth, 404,
       "invalid_request_error", "model_not_found", "model"},
      {"body over the limit", "POST", "/v1/completions", with("prompt", std::string(300 * 1024, 'a')), kAuth,
       413, "invalid_request_error", "body_too_large", nullptr},
      {"unknown route", "GET", "/v1/nothing", "", kAuth, 404, "invalid_request_error", "not_found", nullptr},
      {"wrong method", "GET", "/v1/completions", "", kAuth, 405, "invalid_request_error",
       "method_not_allowed", nullptr},
      {"missing API key",
       "POST",
       "/v1/completions",
       ok.dump(),
       {},
       401,
       "invalid_request_error",
       "invalid_api_key",
       nullptr},
      {"wrong API key",
       "POST",
       "/v1/completions",
       ok.dump(),
       {{"Authorization", "Bearer nope"}},
       401,
       "invalid_request_error",
       "invalid_api_key",
       nullptr},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const HttpResult result = HttpCall(edge_->address(), c.method, c.path, c.body, c.headers);
    ASSERT_EQ(result.status, c.status) << result.body << result.error;
    const json error = json::parse(result.body)["error"];
    EXPECT_EQ(error["type"], c.type);
    EXPECT_EQ(error["code"], c.code);
    EXPECT_EQ(error["param"], c.param ? json(c.param) : json(nullptr));
    EXPECT_FALSE(error["message"].get<std::string>().empty());
  }
  // Health needs no key.
  EXPECT_EQ(HttpCall(edge_->address(), "GET", "/healthz").status, 200);
}

// ---- Start-up, load shedding, cancellation and drain: each with its own processes. ----------------------

class EdgeLifecycleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (testing::SharedDir().empty()) GTEST_SKIP() << "shared folder not found";
  }
};

// Without --cloud the edge serves its model alone: ready once loaded, every request all-local, the golden
// text; keys are not needed, and a split it cannot make is refused.
TEST_F(EdgeLifecycleTest, WithoutACloudTheEdgeServesEveryRequestItself) {
  EdgeProcess edge(std::vector<std::string>{"--draft", "ngram"});
  ASSERT_TRUE(edge.started()) << edge.log();
  EXPECT_EQ(HttpCall(edge.address(), "GET", "/readyz").status, 200);
  const json plan = json::parse(HttpCall(edge.address(), "GET", "/v1/plan").body);
  EXPECT_EQ(plan["split"], "local");
  EXPECT_EQ(plan["cut"], 5);
  for (const json& golden : testing::GoldenRecords()) {
    SCOPED_TRACE(golden["prompt"].get<std::string>());
    const HttpResult result = Complete(edge.address(), GoldenRequest(golden));
    ASSERT_EQ(result.status, 200) << result.body;
    const json body = json::parse(result.body);
    EXPECT_EQ(body["choices"][0]["text"], GoldenContinuation(golden));
    EXPECT_EQ(body["tandem"]["cut"], 5);
    EXPECT_EQ(body["tandem"]["bytes_sent"], 0);
  }
  const HttpResult split =
      Complete(edge.address(), {{"prompt", "Hi"}, {"max_tokens", 2}, {"tandem", {{"split", 2}}}});
  EXPECT_EQ(split.status, 400);
  EXPECT_EQ(json::parse(split.body)["error"]["param"], "tandem.split");
  const auto refused =
      testing::RunProgram("tandem-edge", {"--model", testing::Stories260KModel().string(), "--tokenizer",
                                          testing::Stories260KTokenizer().string(), "--split", "2"});
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find("--split 2 needs --cloud"), std::string::npos) << refused.err;
}

TEST_F(EdgeLifecycleTest, ReadyzIs503UntilTheTailAnswers) {
  const std::string endpoint = "tcp://127.0.0.1:" + std::to_string(testing::FreePort());
  CloudTailProcess tail({}, /*start=*/false, endpoint);
  EdgeProcess edge(tail, {"--split", "1"});
  ASSERT_TRUE(edge.started()) << edge.log();
  const HttpResult before = HttpCall(edge.address(), "GET", "/readyz");
  EXPECT_EQ(before.status, 503) << before.error;
  EXPECT_EQ(json::parse(before.body)["error"]["code"], "not_ready");
  const HttpResult refused = Complete(edge.address(), {{"prompt", "Hi"}, {"max_tokens", 2}}, {});
  EXPECT_EQ(refused.status, 503);
  EXPECT_EQ(json::parse(refused.body)["error"]["code"], "upstream_unavailable");
  tail.Start();
  ASSERT_TRUE(tail.started()) << tail.log();
  EXPECT_TRUE(testing::AwaitReady(edge)) << edge.log();
  EXPECT_EQ(Complete(edge.address(), {{"prompt", "Hi"}, {"max_tokens", 2}}, {}).status, 200);
}

TEST_F(EdgeLifecycleTest, AFullQueueIs503WithRetryAfter) {
  CloudTailProcess tail;
  EdgeProcess edge(tail, {"--split", "1", "--max-concurrent", "1", "--max-queue", "0"});
  ASSERT_TRUE(edge.started()) << edge.log();
  ASSERT_TRUE(testing::AwaitReady(edge));
  // A paused tail holds the one slot's request in flight.
  tail.process().Signal(SIGSTOP);
  auto first = std::async(std::launch::async, [&] {
    return Complete(edge.address(), {{"prompt", "Hi"}, {"max_tokens", 4}}, {});
  });
  ASSERT_TRUE(WaitUntil(
      [&] {
        return Sample(HttpCall(edge.address(), "GET", "/metrics").body, "tandem_edge_active_generations") ==
               1;
      },
      std::chrono::seconds(5)));
  const HttpResult shed = Complete(edge.address(), {{"prompt", "Hi"}, {"max_tokens", 4}}, {});
  tail.process().Signal(SIGCONT);
  EXPECT_EQ(shed.status, 503);
  EXPECT_EQ(shed.Header("retry-after"), "1");
  EXPECT_EQ(json::parse(shed.body)["error"]["code"], "queue_full");
  EXPECT_EQ(first.get().status, 200);
}

TEST_F(EdgeLifecycleTest, AClientGoneMidStreamFreesTheTailSession) {
  CloudTailProcess tail;
  EdgeProcess edge(tail, {"--split", "1"});
  ASSERT_TRUE(testing::AwaitReady(edge));
  const json request = {
      {"prompt", "Once upon a time"}, {"max_tokens", 480}, {"temperature", 1}, {"seed", 3}, {"stream", true}};
  int events = 0;
  testing::HttpStream(edge.address(), "POST", "/v1/completions", request.dump(), {},
                      [&](std::string_view data) {
                        return (events += static_cast<int>(testing::SseEvents(std::string(data)).size())) < 2;
                      });
  const auto hung_up = std::chrono::steady_clock::now();
  const auto sessions = [&] {
    return Sample(HttpCall(tail.http_address(), "GET", "/metrics").body, "tandem_cloud_sessions");
  };
  ASSERT_TRUE(WaitUntil([&] { return sessions() == 0; }, std::chrono::seconds(1)))
      << "tail sessions: " << sessions();
  EXPECT_LT(std::chrono::steady_clock::now() - hung_up, std::chrono::seconds(1));
  EXPECT_FALSE(edge.process().WaitForLine("client gone", 2000).empty()) << edge.log();
  // The tail sampled far fewer than the 480 tokens asked for.
  EXPECT_LT(Sample(HttpCall(tail.http_address(), "GET", "/metrics").body, "tandem_cloud_tokens_total"), 400);
}

TEST_F(EdgeLifecycleTest, SigtermLetsFourRequestsInFlightFinishAndRefusesNewOnes) {
  CloudTailProcess tail;
  EdgeProcess edge(tail, {"--split", "1", "--max-concurrent", "4"});
  // All four tail connections up before the tail pauses (a paused tail completes no handshake).
  ASSERT_TRUE(WaitUntil(
      [&] {
        const HttpResult plan = HttpCall(edge.address(), "GET", "/v1/plan");
        return plan.status == 200 && json::parse(plan.body)["connections"]["ready"] == 4;
      },
      std::chrono::seconds(10)));
  tail.process().Signal(SIGSTOP);
  std::vector<std::future<HttpResult>> in_flight;
  for (int i = 0; i < 4; ++i) {
    in_flight.push_back(std::async(std::launch::async, [&] {
      return Complete(edge.address(),
                      {{"prompt", "Once upon a time"}, {"max_tokens", 20}, {"temperature", 0}}, {});
    }));
  }
  ASSERT_TRUE(WaitUntil(
      [&] {
        return Sample(HttpCall(edge.address(), "GET", "/metrics").body, "tandem_edge_active_generations") ==
               4;
      },
      std::chrono::seconds(5)));
  edge.process().Signal(SIGTERM);
  ASSERT_FALSE(edge.process().WaitForLine("msg=draining", 5000).empty()) << edge.log();
  const HttpResult refused = Complete(edge.address(), {{"prompt", "Hi"}, {"max_tokens", 2}}, {});
  EXPECT_NE(refused.status, 200) << "a new request was served while draining";
  tail.process().Signal(SIGCONT);
  for (auto& request : in_flight) {
    const HttpResult result = request.get();
    EXPECT_EQ(result.status, 200) << result.body << result.error;
    EXPECT_EQ(json::parse(result.body)["usage"]["completion_tokens"], 20);
  }
  EXPECT_TRUE(WaitUntil([&] { return !edge.process().Running(); }, std::chrono::seconds(5)));
  EXPECT_EQ(edge.process().Stop(), 0);
}

}  // namespace
}  // namespace tandem
