// POST /v1/chat/completions on EdgeService in this process (edge_inprocess_harness.hpp), stories260K with
// a ChatML template written to a file: the chat answers exactly what /v1/completions answers for the
// rendered prompt, plain and streamed (role chunk, content deltas, finish chunk, usage chunk); the
// template's end-of-turn strings never show; a model without a template, a template's raise_exception, the
// context limit and a missing key get their errors; the metrics count the route.
#include <fstream>

#include "edge_inprocess_harness.hpp"

namespace tandem::edge_agent {
namespace {

using namespace testing_harness;
using nlohmann::json;
using services::HttpResponse;

// ChatML as Qwen2's tokenizer_config.json writes it, and the alternation check of Llama 2's and Mistral's.
constexpr char kChatMl[] =
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' and (loop.first or messages[loop.index0 - 1]['role'] == "
    "'assistant') %}{{ raise_exception('Conversation roles must alternate "
    "user/assistant/user/assistant/...') "
    "}}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

const json kConversation = json::array({{{"role", "system"}, {"content", "You tell stories."}},
                                        {{"role", "user"}, {"content", "Once upon a time"}}});

class EdgeChatInProcessTest : public EdgeServiceInProcessTest {
 protected:
  void SetUp() override {
    EdgeServiceInProcessTest::SetUp();
    if (model_ == nullptr) return;
    tokenizer_ = std::make_unique<Tokenizer>(*Tokenizer::LoadForModel(
        config_.model.model, config_.tokenizer, model_->checkpoint->config().vocab_size));
    template_file_ = (temp_ / "chatml.jinja").string();
    std::ofstream(template_file_) << kChatMl;
  }

  // The template file as tandem-edge --chat-template FILE loads it.
  ChatTemplate LoadTemplate() {
    auto loaded = ChatTemplate::LoadForModel(config_.model.model, template_file_, *tokenizer_);
    EXPECT_TRUE(loaded.ok()) << loaded.status().ToString();
    EXPECT_TRUE(loaded.ok() && loaded->has_value());
    return loaded.ok() && loaded->has_value() ? **loaded : *ChatTemplate::FromSource(kChatMl, "", "", "test");
  }

  // The completion of the conversation's rendered prompt, greedy: what chat must answer.
  json ExpectedCompletion(const ChatTemplate& chat_template, int max_tokens) {
    std::vector<ChatMessage> messages;
    for (const json& message : kConversation) messages.push_back({message["role"], message["content"]});
    auto prompt = chat_template.Render(messages, true);
    EXPECT_TRUE(prompt.ok()) << prompt.status().ToString();
    const HttpResponse response =
        Complete({{"prompt", prompt.ok() ? *prompt : ""}, {"max_tokens", max_tokens}, {"temperature", 0}});
    EXPECT_EQ(response.status, 200) << response.body;
    return json::parse(response.body);
  }

  static json ChatRequest(int max_tokens) {
    return {{"messages", kConversation}, {"max_completion_tokens", max_tokens}, {"temperature", 0}};
  }

  // The streamed chat's content deltas concatenated, every event checked against OpenAI's chunk shape.
  std::string StreamedContent(const json& request, json& finish, json& usage) {
    RecordingStream stream;
    const std::vector<std::string> events = Events(Chat(request), stream);
    EXPECT_GE(events.size(), 4u);
    if (events.size() < 4) return "";
    EXPECT_EQ(events.back(), "[DONE]");
    const bool with_usage = request.value("stream_options", json::object()).value("include_usage", false);
    const size_t usage_events = with_usage ? 1 : 0;
    std::string content;
    for (size_t i = 0; i + 1 < events.size(); ++i) {
      const json chunk = json::parse(events[i]);
      EXPECT_EQ(chunk["object"], "chat.completion.chunk");
      EXPECT_EQ(chunk["id"], "chatcmpl-test-1");
      EXPECT_EQ(chunk.contains("usage"), with_usage) << events[i];
      if (i + 2 + usage_events == events.size()) {
        finish = chunk;
      } else if (with_usage && i + 2 == events.size()) {
        EXPECT_EQ(chunk["choices"], json::array());
        usage = chunk["usage"];
      } else {
        const json& delta = chunk["choices"][0]["delta"];
        EXPECT_TRUE(chunk["choices"][0]["finish_reason"].is_null());
        if (i == 0) EXPECT_EQ(delta, (json{{"role", "assistant"}, {"content", ""}}));
        if (i > 0) content += delta["content"].get<std::string>();
        if (with_usage) EXPECT_TRUE(chunk["usage"].is_null());
      }
    }
    return content;
  }

  std::unique_ptr<Tokenizer> tokenizer_;
  testing::TempDir temp_;
  std::string template_file_;
};

TEST_F(EdgeChatInProcessTest, ChatAnswersTheCompletionOfTheRenderedPromptPlainAndStreamed) {
  chat_template_ = LoadTemplate();
  Start();
  const json expected = ExpectedCompletion(*chat_template_, 24);
  const std::string text = expected["choices"][0]["text"];
  ASSERT_FALSE(text.empty());

  const HttpResponse plain = Chat(ChatRequest(24));
  ASSERT_EQ(plain.status, 200) << plain.body;
  const json body = json::parse(plain.body);
  EXPECT_EQ(body["id"], "chatcmpl-test-1");
  EXPECT_EQ(body["object"], "chat.completion");
  EXPECT_EQ(body["model"], "stories260K");
  EXPECT_EQ(body["choices"][0]["message"], (json{{"role", "assistant"}, {"content", text}}));
  EXPECT_TRUE(body["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(body["choices"][0]["finish_reason"], expected["choices"][0]["finish_reason"]);
  EXPECT_EQ(body["usage"], expected["usage"]);
  EXPECT_EQ(body["tandem"]["cut"], kCut);

  json request = ChatRequest(24);
  request["stream"] = true;
  request["stream_options"] = {{"include_usage", true}};
  json finish, usage;
  EXPECT_EQ(StreamedContent(request, finish, usage), text);
  EXPECT_EQ(finish["choices"][0]["delta"], json::object());
  EXPECT_EQ(finish["choices"][0]["finish_reason"], expected["choices"][0]["finish_reason"]);
  EXPECT_EQ(finish["tandem"]["cut"], kCut);
  EXPECT_EQ(usage, expected["usage"]);

  request.erase("stream_options");  // no usage chunk, no "usage" fields
  EXPECT_EQ(StreamedContent(request, finish, usage), text);
  EXPECT_EQ(finish["choices"][0]["finish_reason"], expected["choices"][0]["finish_reason"]);
}

// A template whose end-of-turn string (its eos_token) is a word the model writes: the text ends before it,
// plain and streamed, and the turn finished with "stop".
TEST_F(EdgeChatInProcessTest, TheEndOfTurnStringEndsTheTextAndNeverShows) {
  chat_template_ = LoadTemplate();
  Start();
  const std::string text = ExpectedCompletion(*chat_template_, 40)["choices"][0]["text"];
  const size_t word_start = text.find(' ', text.size() / 2);
  ASSERT_NE(word_start, std::string::npos) << text;
  const std::string marker = text.substr(word_start + 1, text.find(' ', word_start + 1) - word_start - 1);
  ASSERT_FALSE(marker.empty()) << text;
  const std::string before = text.substr(0, text.find(marker));

  auto ending = ChatTemplate::FromSource(kChatMl, tokenizer_->piece(tokenizer_->bos()), marker, "test");
  ASSERT_TRUE(ending.ok()) << ending.status().ToString();
  ASSERT_NE(std::find(ending->end_of_turn().begin(), ending->end_of_turn().end(), marker),
            ending->end_of_turn().end());
  chat_template_ = *ending;
  service_.reset();
  Start();
  const HttpResponse plain = Chat(ChatRequest(40));
  ASSERT_EQ(plain.status, 200) << plain.body;
  const json body = json::parse(plain.body);
  EXPECT_EQ(body["choices"][0]["message"]["content"], before) << "end of turn: " << marker;
  EXPECT_EQ(body["choices"][0]["finish_reason"], "stop");

  json request = ChatRequest(40);
  request["stream"] = true;
  json finish, usage;
  EXPECT_EQ(StreamedContent(request, finish, usage), before);
  EXPECT_EQ(finish["choices"][0]["finish_reason"], "stop");
}

TEST_F(EdgeChatInProcessTest, ChatErrorsAndMetrics) {
  Start();  // stories260K is a llama2.c model: no template
  const HttpResponse missing = Chat(ChatRequest(8));
  ExpectError(missing, 400, "invalid_request_error", "chat_template_missing", "messages");
  EXPECT_NE(missing.body.find("--chat-template"), std::string::npos) << missing.body;

  api_key_ = "key-0123";
  chat_template_ = LoadTemplate();
  service_.reset();
  Start();
  const json alternating = {{"messages",
                             {{{"role", "user"}, {"content", "Hi"}},
                              {{"role", "assistant"}, {"content", "Hello"}},
                              {{"role", "assistant"}, {"content", "Again"}}}}};
  const HttpResponse raised = Chat(alternating);
  ExpectError(raised, 400, "invalid_request_error", "invalid_value", "messages");
  EXPECT_NE(raised.body.find("alternate"), std::string::npos)
      << "the template's own message: " << raised.body;
  ExpectError(Chat({{"messages", json::array()}}), 400, "invalid_request_error", "invalid_value", "messages");
  json too_long = ChatRequest(model_->checkpoint->config().seq_len);
  ExpectError(Chat(too_long), 400, "invalid_request_error", "context_length_exceeded", "max_tokens");
  ExpectError(Chat({{"model", "gpt-4o"}, {"messages", kConversation}}), 404, "invalid_request_error",
              "model_not_found", "model");
  EXPECT_EQ(Chat(ChatRequest(4)).status, 200);

  api_key_ = "wrong";
  ExpectError(Chat(ChatRequest(4)), 401, "invalid_request_error", "invalid_api_key", nullptr);
  api_key_ = "key-0123";
  const std::string metrics = Call("GET", "/metrics").body;
  EXPECT_NE(metrics.find(R"(route="/v1/chat/completions",status="200")"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find(R"(route="/v1/chat/completions",status="401")"), std::string::npos);
}

}  // namespace
}  // namespace tandem::edge_agent
