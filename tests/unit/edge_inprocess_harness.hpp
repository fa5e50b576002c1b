// The in-process harness of EdgeService's tests: the service without sockets or child processes. Its
// routes are called with HttpRequests (services::Dispatch), its tails are LocalTails behind a scripted
// RequestTails (a tail can be made unreachable or fail at a given step), and with auto a scripted planner
// names the tails. Shared by edge_service_inprocess_test and edge_chat_inprocess_test.
#pragma once

#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <nlohmann/json.hpp>

#include <map>
#include <mutex>
#include <set>

#include "tandem/edge_agent/edge_service.hpp"
#include "tandem/engine/transformer.hpp"
#include "test_env.hpp"

namespace tandem::edge_agent::testing_harness {

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
inline CloudOptions InProcessCloud() {
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
                                  .registry = std::make_shared<prometheus::Registry>(),
                                  .chat_template = chat_template_};
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
  HttpResponse Chat(const json& body) { return Call("POST", "/v1/chat/completions", body.dump()); }

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

  inline static LoadedModel* model_ = nullptr;
  EdgeConfig config_;
  std::string api_key_;
  TailScript script_;
  bool drafts_ = false;                        // load config_.draft's drafters
  std::optional<ChatTemplate> chat_template_;  // the service's chat template
  std::unique_ptr<EdgeService> service_;
  std::vector<services::Route> routes_;
};

inline void ExpectError(const HttpResponse& response, int status, const std::string& type,
                        const std::string& code, const json& param) {
  ASSERT_EQ(response.status, status) << response.body;
  const json error = json::parse(response.body)["error"];
  EXPECT_EQ(error["type"], type) << response.body;
  EXPECT_EQ(error["code"], code) << response.body;
  EXPECT_EQ(error["param"], param) << response.body;
  EXPECT_FALSE(error["message"].get<std::string>().empty());
}

}  // namespace tandem::edge_agent::testing_harness
