// POST /v1/chat/completions over a real split: stories260K converted to a Hugging Face directory (`tandem
// convert`), tandem-cloud on it and tandem-edge --split 2 --chat-template chatml over it. For several
// conversations, greedy, the chat answers exactly what /v1/completions answers for the prompt `tandem
// chat-template` renders, plain and streamed (the deltas concatenated), with the same finish_reason and
// completion tokens. And the edge refuses at start-up a template file it cannot parse (exit 2, naming it).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>

#include "cloud_tail_process.hpp"
#include "http_client.hpp"
#include "test_env.hpp"

namespace tandem {
namespace {

using nlohmann::json;
using testing::CloudTailProcess;
using testing::EdgeProcess;
using testing::HttpCall;
using testing::RunProgram;

constexpr int kMaxTokens = 32;

const std::vector<json> kConversations = {
    json::array({{{"role", "user"}, {"content", "Once upon a time"}}}),
    json::array({{{"role", "system"}, {"content", "You tell short stories for children."}},
                 {{"role", "user"}, {"content", "Tell me about a cat."}}}),
    json::array({{{"role", "user"}, {"content", "Lily had a ball."}},
                 {{"role", "assistant"}, {"content", "She liked to play with it."}},
                 {{"role", "user"},
                  {"content",
                   {{{"type", "text"}, {"text", "What happened"}}, {{"type", "text"}, {"text", "next?"}}}}}}),
    json::array({{{"role", "developer"}, {"content", "Be kind."}}, {{"role", "user"}, {"content", "Hi"}}}),
};

class ChatApiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (testing::SharedDir().empty()) return;
    dir_ = new testing::TempDir();
    model_ = (dir_->path() / "stories260K-hf").string();
    const testing::CommandResult convert =
        RunProgram("tandem", {"convert", "--model", testing::Stories260KModel().string(), "--tokenizer",
                              testing::Stories260KTokenizer().string(), "--out", model_});
    if (convert.exit_code != 0) {
      convert_error_ = convert.out + convert.err;
      return;
    }
    tail_ = new CloudTailProcess({"--model", model_});
    // The directory's own tokenizer (tokenizer.json): --tokenizer "" undoes EdgeProcess's tok512.bin.
    edge_ = new EdgeProcess(
        *tail_, {"--model", model_, "--tokenizer", "", "--split", "2", "--chat-template", "chatml"});
  }
  static void TearDownTestSuite() {
    delete edge_;
    delete tail_;
    delete dir_;
    edge_ = nullptr;
    tail_ = nullptr;
    dir_ = nullptr;
  }
  void SetUp() override {
    if (dir_ == nullptr) GTEST_SKIP() << "shared folder not found";
    ASSERT_TRUE(convert_error_.empty()) << convert_error_;
    ASSERT_TRUE(tail_->started()) << tail_->log();
    ASSERT_TRUE(edge_->started()) << edge_->log();
    ASSERT_TRUE(testing::AwaitReady(*edge_)) << edge_->log();
  }

  // The prompt `tandem chat-template` renders for the conversation with the edge's template.
  // The edge reads the role "developer" as "system" (as OpenAI does); tandem chat-template takes roles as
  // they are.
  static std::string Rendered(json messages) {
    for (json& message : messages) {
      if (message["role"] == "developer") message["role"] = "system";
    }
    const std::filesystem::path file = dir_->path() / "messages.json";
    std::ofstream(file) << messages.dump();
    const testing::CommandResult rendered = RunProgram(
        "tandem",
        {"chat-template", "--model", model_, "--chat-template", "chatml", "--messages", file.string()});
    EXPECT_EQ(rendered.exit_code, 0) << rendered.err;
    return rendered.out;
  }

  static json Post(const std::string& path, const json& body) {
    const testing::HttpResult result = HttpCall(edge_->address(), "POST", path, body.dump());
    EXPECT_EQ(result.status, 200) << result.body << result.error;
    return json::parse(result.body, nullptr, /*allow_exceptions=*/false);
  }

  static testing::TempDir* dir_;
  static std::string model_;
  static std::string convert_error_;
  static CloudTailProcess* tail_;
  static EdgeProcess* edge_;
};

testing::TempDir* ChatApiTest::dir_ = nullptr;
std::string ChatApiTest::model_;
std::string ChatApiTest::convert_error_;
CloudTailProcess* ChatApiTest::tail_ = nullptr;
EdgeProcess* ChatApiTest::edge_ = nullptr;

TEST_F(ChatApiTest, ChatAnswersTheCompletionOfTheRenderedPromptPlainAndStreamed) {
  for (const json& messages : kConversations) {
    SCOPED_TRACE(messages.dump());
    const std::string prompt = Rendered(messages);
    ASSERT_NE(prompt.find("<|im_start|>assistant\n"), std::string::npos) << prompt;
    const json completion =
        Post("/v1/completions", {{"prompt", prompt}, {"max_tokens", kMaxTokens}, {"temperature", 0}});
    const json& expected = completion["choices"][0];
    ASSERT_TRUE(expected["text"].is_string()) << completion;

    const json request = {{"messages", messages}, {"max_tokens", kMaxTokens}, {"temperature", 0}};
    const json chat = Post("/v1/chat/completions", request);
    EXPECT_EQ(chat["object"], "chat.completion");
    EXPECT_EQ(chat["choices"][0]["message"]["content"], expected["text"]);
    EXPECT_EQ(chat["choices"][0]["finish_reason"], expected["finish_reason"]);
    EXPECT_EQ(chat["usage"], completion["usage"]) << "the same prompt tokens (one BOS) and completion tokens";
    EXPECT_EQ(chat["tandem"]["cut"], 2);

    json streamed_request = request;
    streamed_request["stream"] = true;
    streamed_request["stream_options"] = {{"include_usage", true}};
    const testing::HttpResult streamed =
        HttpCall(edge_->address(), "POST", "/v1/chat/completions", streamed_request.dump());
    ASSERT_EQ(streamed.status, 200) << streamed.body;
    const std::vector<std::string> events = testing::SseEvents(streamed.body);
    ASSERT_GE(events.size(), 4u) << streamed.body;
    EXPECT_EQ(events.back(), "[DONE]");
    EXPECT_EQ(json::parse(events[0])["choices"][0]["delta"]["role"], "assistant");
    std::string content;
    json finish_reason;
    for (size_t i = 0; i + 2 < events.size(); ++i) {
      const json choice = json::parse(events[i])["choices"][0];
      content += choice["delta"].value("content", "");
      if (!choice["finish_reason"].is_null()) finish_reason = choice["finish_reason"];
    }
    EXPECT_EQ(content, expected["text"]);
    EXPECT_EQ(finish_reason, expected["finish_reason"]);
    const json usage = json::parse(events[events.size() - 2]);
    EXPECT_EQ(usage["choices"], json::array());
    EXPECT_EQ(usage["usage"]["completion_tokens"], completion["usage"]["completion_tokens"]);
  }
}

TEST_F(ChatApiTest, TheEdgeRefusesATemplateFileItCannotParse) {
  const std::filesystem::path bad = dir_->path() / "broken.jinja";
  std::ofstream(bad) << "{% for message in messages %}{{ message['content'] }";
  const testing::CommandResult refused = RunProgram(
      "tandem-edge",
      {"--model", testing::Stories260KModel().string(), "--tokenizer",
       testing::Stories260KTokenizer().string(), "--listen", "127.0.0.1:0", "--chat-template", bad.string()},
      60);
  EXPECT_EQ(refused.exit_code, 2) << refused.err;
  EXPECT_NE(refused.err.find(bad.string()), std::string::npos) << refused.err;
}

}  // namespace
}  // namespace tandem
