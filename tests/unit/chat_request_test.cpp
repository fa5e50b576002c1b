// ParseChatRequest: the fields a chat request shares with a completion (read by the same readers), the
// messages (string or text-part content, roles), max_completion_tokens over max_tokens, and every refusal
// with its status, type, code and param. RenderedPromptNeedsBos on stories260K's tokenizer; ChatTurnStops
// on a byte-level tokenizer with an added <|im_end|>.
#include "tandem/edge_agent/chat_request.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <string_view>

#include "hf_fixtures.hpp"
#include "test_env.hpp"

namespace tandem::edge_agent {
namespace {

using nlohmann::json;

const CompletionLimits kLimits{.max_tokens_cap = 256, .max_prompt_bytes = 1024};

json UserSays(const std::string& text) {
  return {{"messages", {{{"role", "user"}, {"content", text}}}}};
}

ChatRequest Parse(const json& body) {
  ApiResult<ChatRequest> parsed = ParseChatRequest(body.dump(), kLimits);
  EXPECT_TRUE(parsed.ok()) << (parsed.ok() ? "" : parsed.error().message);
  return parsed.ok() ? std::move(*parsed) : ChatRequest{};
}

TEST(ChatRequestTest, ReadsMessagesAndTheSharedFields) {
  json body = {{"model", "stories260K"},
               {"messages",
                {{{"role", "developer"}, {"content", "Be brief."}},
                 {{"role", "user"},
                  {"content", {{{"type", "text"}, {"text", "Hi"}}, {{"type", "text"}, {"text", "there"}}}}},
                 {{"role", "assistant"}, {"content", nullptr}},
                 {{"role", "user"}, {"content", "Again"}, {"name", "ann"}}}},
               {"max_tokens", 30},
               {"temperature", 0.5},
               {"top_p", 0.9},
               {"seed", 7},
               {"stop", "\n"},
               {"stream", true},
               {"stream_options", {{"include_usage", true}}},
               {"n", 1},
               {"logprobs", false},
               {"tools", json::array()},
               {"response_format", {{"type", "text"}}},
               {"user", "ignored"},
               {"tandem", {{"split", 2}}}};
  const ChatRequest chat = Parse(body);
  ASSERT_EQ(chat.messages.size(), 4u);
  EXPECT_EQ(chat.messages[0].role, "system") << "developer is OpenAI's newer name for system";
  EXPECT_EQ(chat.messages[0].content, "Be brief.");
  EXPECT_EQ(chat.messages[1].content, "Hi\nthere") << "text parts joined with a newline";
  EXPECT_EQ(chat.messages[2].role, "assistant");
  EXPECT_EQ(chat.messages[2].content, "");
  const CompletionRequest& request = chat.completion;
  EXPECT_EQ(request.model, "stories260K");
  EXPECT_TRUE(request.prompt.empty()) << "the template renders it";
  EXPECT_EQ(request.max_tokens, 30);
  EXPECT_FLOAT_EQ(request.temperature, 0.5f);
  EXPECT_FLOAT_EQ(request.top_p, 0.9f);
  EXPECT_EQ(request.seed, 7u);
  EXPECT_EQ(request.stop, std::vector<std::string>{"\n"});
  EXPECT_TRUE(request.stream);
  EXPECT_TRUE(request.include_usage);
  ASSERT_TRUE(request.split.has_value());
  EXPECT_EQ(request.split->cut, 2);

  body["max_completion_tokens"] = 12;
  EXPECT_EQ(Parse(body).completion.max_tokens, 12) << "max_completion_tokens wins over max_tokens";
  EXPECT_EQ(Parse(UserSays("Hi")).completion.max_tokens, 16) << "OpenAI's default";
  EXPECT_FALSE(Parse(UserSays("Hi")).completion.include_usage);
}

struct Refusal {
  const char* name;
  json body;
  const char* code;
  json param;
};

json With(json body, const std::string& field, json value) {
  body[field] = std::move(value);
  return body;
}

json WithMessage(json message) {
  return {{"messages", {{{"role", "user"}, {"content", "Hi"}}, std::move(message)}}};
}

TEST(ChatRequestTest, EveryBadInputGetsItsErrorObject) {
  const json ok = UserSays("Hi");
  const json image = {{"type", "image_url"}, {"image_url", {{"url", "https://example.com/a.png"}}}};
  const json with_image =
      WithMessage({{"role", "user"}, {"content", {{{"type", "text"}, {"text", "a"}}, image}}});
  const std::vector<Refusal> cases = {
      {"no messages", {{"max_tokens", 4}}, "missing_required_parameter", "messages"},
      {"messages null", {{"messages", nullptr}}, "missing_required_parameter", "messages"},
      {"messages a string", {{"messages", "Hi"}}, "invalid_type", "messages"},
      {"messages empty", {{"messages", json::array()}}, "invalid_value", "messages"},
      {"message not an object", {{"messages", {"Hi"}}}, "invalid_type", "messages[0]"},
      {"no role", WithMessage({{"content", "x"}}), "missing_required_parameter", "messages[1].role"},
      {"role a number", WithMessage({{"role", 1}, {"content", "x"}}), "invalid_type", "messages[1].role"},
      {"wrong role", WithMessage({{"role", "robot"}, {"content", "x"}}), "invalid_value", "messages[1].role"},
      {"tool role", WithMessage({{"role", "tool"}, {"content", "x"}}), "invalid_value", "messages[1].role"},
      {"user without content", WithMessage({{"role", "user"}}), "missing_required_parameter",
       "messages[1].content"},
      {"system without content", WithMessage({{"role", "system"}}), "missing_required_parameter",
       "messages[1].content"},
      {"content a number", WithMessage({{"role", "user"}, {"content", 5}}), "invalid_type",
       "messages[1].content"},
      {"content an object", WithMessage({{"role", "user"}, {"content", {{"text", "x"}}}}), "invalid_type",
       "messages[1].content"},
      {"part a string", WithMessage({{"role", "user"}, {"content", {"x"}}}), "invalid_type",
       "messages[1].content[0]"},
      {"image part", with_image, "invalid_value", "messages[1].content[1].type"},
      {"part text a number", WithMessage({{"role", "user"}, {"content", {{{"type", "text"}, {"text", 3}}}}}),
       "invalid_type", "messages[1].content[0].text"},
      {"tool calls", WithMessage({{"role", "assistant"}, {"tool_calls", {{{"id", "1"}}}}}), "invalid_value",
       "messages[1].tool_calls"},
      {"too long", UserSays(std::string(2000, 'a')), "invalid_value", "messages"},
      {"n 2", With(ok, "n", 2), "invalid_value", "n"},
      {"logprobs", With(ok, "logprobs", true), "invalid_value", "logprobs"},
      {"top_logprobs", With(ok, "top_logprobs", 2), "invalid_value", "top_logprobs"},
      {"tools", With(ok, "tools", {{{"type", "function"}, {"function", {{"name", "f"}}}}}), "invalid_value",
       "tools"},
      {"functions", With(ok, "functions", {{{"name", "f"}}}), "invalid_value", "functions"},
      {"tool_choice", With(ok, "tool_choice", "auto"), "invalid_value", "tool_choice"},
      {"json mode", With(ok, "response_format", {{"type", "json_object"}}), "invalid_value",
       "response_format"},
      {"max_tokens 0", With(ok, "max_tokens", 0), "invalid_value", "max_tokens"},
      {"max_completion_tokens past the cap", With(ok, "max_completion_tokens", 1000), "invalid_value",
       "max_completion_tokens"},
      {"temperature 3", With(ok, "temperature", 3), "invalid_value", "temperature"},
      {"five stops", With(ok, "stop", {"a", "b", "c", "d", "e"}), "invalid_value", "stop"},
      {"stream text", With(ok, "stream", "yes"), "invalid_type", "stream"},
      {"stream_options a list", With(ok, "stream_options", {1}), "invalid_type", "stream_options"},
      {"include_usage text", With(ok, "stream_options", {{"include_usage", "yes"}}), "invalid_type",
       "stream_options.include_usage"},
      {"bad codec", With(ok, "tandem", {{"split", 1}, {"codec", "fp7"}}), "invalid_value", "tandem.codec"},
  };
  for (const Refusal& c : cases) {
    SCOPED_TRACE(c.name);
    ApiResult<ChatRequest> parsed = ParseChatRequest(c.body.dump(), kLimits);
    ASSERT_FALSE(parsed.ok());
    const ApiError& error = parsed.error();
    EXPECT_EQ(error.status, 400);
    EXPECT_EQ(error.type, "invalid_request_error");
    EXPECT_EQ(error.code, c.code) << error.message;
    EXPECT_EQ(c.param.is_null() ? std::string() : c.param.get<std::string>(), error.param) << error.message;
    EXPECT_FALSE(error.message.empty());
  }
  ApiResult<ChatRequest> image_refused = ParseChatRequest(with_image.dump(), kLimits);
  ASSERT_FALSE(image_refused.ok());
  EXPECT_NE(image_refused.error().message.find("only text parts are supported"), std::string::npos);
  ApiResult<ChatRequest> not_json = ParseChatRequest("{\"messages\": ", kLimits);
  ASSERT_FALSE(not_json.ok());
  EXPECT_EQ(not_json.error().code, "invalid_json");
}

TEST(ChatRequestTest, WithoutATemplateChatIsRefusedNamingTheFlag) {
  if (testing::SharedDir().empty()) GTEST_SKIP() << "shared folder not found";
  auto tokenizer = Tokenizer::Load(testing::Stories260KTokenizer().string(), 512);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().ToString();
  ApiResult<PreparedRequest> refused = PrepareChat(Parse(UserSays("Hi")), nullptr, *tokenizer);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().status, 400);
  EXPECT_EQ(refused.error().code, "chat_template_missing");
  EXPECT_EQ(refused.error().param, "messages");
  EXPECT_NE(refused.error().message.find("--chat-template"), std::string::npos) << refused.error().message;
}

TEST(ChatRequestTest, ABosIsPrependedUnlessTheTemplateWroteIt) {
  if (testing::SharedDir().empty()) GTEST_SKIP() << "shared folder not found";
  auto tokenizer = Tokenizer::Load(testing::Stories260KTokenizer().string(), 512);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().ToString();
  const std::string bos = tokenizer->piece(tokenizer->bos());
  EXPECT_TRUE(RenderedPromptNeedsBos("<|im_start|>user\nHi", *tokenizer));
  EXPECT_FALSE(RenderedPromptNeedsBos(bos + "[INST] Hi [/INST]", *tokenizer));
}

// A byte-level tokenizer.json (every byte its own token, byte b id b) with the special token 256 <|im_end|>.
Tokenizer ByteLevelWithImEnd(const testing::TempDir& dir) {
  testing::WriteBytes(dir / "tokenizer.json", testing::ByteLevelTokenizerJson({"<|im_end|>"}));
  auto tokenizer = Tokenizer::LoadFile((dir / "tokenizer.json").string(), 300);
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status().ToString();
  return std::move(tokenizer).value();
}

TEST(ChatRequestTest, EndOfTurnStringsOfOneTokenStopAtTheTokenTheOthersAreStopStrings) {
  const testing::TempDir dir;
  const Tokenizer tokenizer = ByteLevelWithImEnd(dir);
  const std::string source = "{% for m in messages %}{{ m['content'] + '<|im_end|>' }}{% endfor %}";
  for (const auto& [eos, eos_is_a_token] : {std::pair<std::string, bool>{"</s>", false}, {"!", true}}) {
    SCOPED_TRACE(eos);
    auto chat_template = ChatTemplate::FromSource(source, "", eos, "test");
    ASSERT_TRUE(chat_template.ok()) << chat_template.status().ToString();
    const TurnStops stops = ChatTurnStops(*chat_template, tokenizer);
    std::vector<int> expected_ids = {256};
    if (eos_is_a_token) expected_ids.push_back('!');
    std::sort(expected_ids.begin(), expected_ids.end());
    std::vector<int> ids = stops.token_ids;
    std::sort(ids.begin(), ids.end());
    EXPECT_EQ(ids, expected_ids);
    EXPECT_EQ(stops.strings, eos_is_a_token ? std::vector<std::string>{} : std::vector<std::string>{"</s>"});
  }
}

}  // namespace
}  // namespace tandem::edge_agent
