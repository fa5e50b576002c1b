// openai_format: the error objects (status, type, code, param, Retry-After on every 503), how a failed
// generation's Status maps to one, the stream's error event, the text_completion body's fields, and the
// chat.completion body and chunks (role chunk, content deltas, finish chunk, include_usage's usage chunk).
#include "tandem/edge_agent/openai_format.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>

namespace tandem::edge_agent {
namespace {

using nlohmann::json;

bool HasRetryAfter(const services::HttpResponse& response) {
  return std::find(response.headers.begin(), response.headers.end(),
                   std::pair<std::string, std::string>{"Retry-After", "1"}) != response.headers.end();
}

TEST(OpenAiFormatTest, AnErrorReplyIsTheOpenAiObjectWithItsStatus) {
  const services::HttpResponse reply = ErrorReply(InvalidValue("top_p", "'top_p' must be in (0, 1]"));
  EXPECT_EQ(reply.status, 400);
  EXPECT_FALSE(HasRetryAfter(reply));
  const json error = json::parse(reply.body)["error"];
  EXPECT_EQ(error, (json{{"message", "'top_p' must be in (0, 1]"},
                         {"type", "invalid_request_error"},
                         {"code", "invalid_value"},
                         {"param", "top_p"}}));
}

TEST(OpenAiFormatTest, Every503SaysWhenToRetryAndHasANullParam) {
  const services::HttpResponse reply = ErrorReply(ServiceUnavailable("queue_full", "full"));
  EXPECT_EQ(reply.status, 503);
  EXPECT_TRUE(HasRetryAfter(reply));
  const json error = json::parse(reply.body)["error"];
  EXPECT_EQ(error["type"], "server_error");
  EXPECT_EQ(error["code"], "queue_full");
  EXPECT_TRUE(error["param"].is_null());
}

TEST(OpenAiFormatTest, AFailedGenerationIs503WhenWorthRetryingElse502) {
  struct Case {
    Status status;
    int http_status;
    const char* code;
  };
  for (const Case& c : {Case{ResourceExhausted("tail busy"), 503, "upstream_overloaded"},
                        Case{Unavailable("tail gone"), 503, "upstream_unavailable"},
                        Case{DeadlineExceeded("tail silent"), 503, "upstream_unavailable"},
                        Case{Internal("replay diverged"), 502, "upstream_error"},
                        Case{InvalidArgument("bad rows"), 502, "upstream_error"}}) {
    SCOPED_TRACE(c.status.ToString());
    const ApiError error = UpstreamError(c.status);
    EXPECT_EQ(error.status, c.http_status);
    EXPECT_EQ(error.type, "server_error");
    EXPECT_EQ(error.code, c.code);
    EXPECT_EQ(error.message, c.status.message());
    EXPECT_TRUE(error.param.empty());
  }
}

TEST(OpenAiFormatTest, AStreamErrorEventAndTheSseFraming) {
  const json event = StreamErrorEvent(InvalidValue("stop", "bad"));
  EXPECT_EQ(event, (json{{"error",
                          {{"message", "bad"},
                           {"type", "invalid_request_error"},
                           {"code", "invalid_value"},
                           {"param", nullptr}}}}));
  EXPECT_EQ(SseEvent(json{{"a", 1}}), "data: {\"a\":1}\n\n");
  EXPECT_STREQ(kSseDone, "data: [DONE]\n\n");
}

TEST(OpenAiFormatTest, TheCompletionBodyCarriesUsageAndWhereItRan) {
  Completion completion{.text = "once", .finish_reason = "stop", .prompt_tokens = 3, .completion_tokens = 2};
  completion.plan = {.tail = 0, .endpoint = "tcp://tail:1", .cut = 2};
  completion.choice = scheduler::Candidate{};  // moved all-local
  completion.moves = 1;
  completion.move_log = {{.at_ms = 12.5, .to = "local", .cut = 5, .reason = "fallback"}};
  completion.wire.raw_bytes = 256;
  const CompletionFormat format("stories260K", 5);
  const json body = format.Body("cmpl-1", completion);
  EXPECT_EQ(body["id"], "cmpl-1");
  EXPECT_EQ(body["object"], "text_completion");
  EXPECT_EQ(body["model"], "stories260K");
  EXPECT_EQ(body["choices"][0]["text"], "once");
  EXPECT_EQ(body["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(body["usage"], (json{{"prompt_tokens", 3}, {"completion_tokens", 2}, {"total_tokens", 5}}));
  EXPECT_EQ(body["tandem"]["cut"], 5) << "all-local reads L";
  EXPECT_EQ(body["tandem"]["codec"], "");
  EXPECT_EQ(body["tandem"]["plan"]["cut"], 2);
  EXPECT_EQ(body["tandem"]["plan"]["codec"], "fp32");
  EXPECT_EQ(body["tandem"]["move_log"],
            (json::array({{{"at_ms", 12.5}, {"to", "local"}, {"cut", 5}, {"reason", "fallback"}}})));
  EXPECT_EQ(body["tandem"]["activation_bytes_float32"], 256);
  const json chunk = format.Chunk("cmpl-1", "piece", nullptr);
  EXPECT_TRUE(chunk["choices"][0]["finish_reason"].is_null());
  EXPECT_FALSE(chunk.contains("usage"));
  const json last = format.LastChunk("cmpl-1", completion);
  EXPECT_EQ(last["choices"][0]["text"], "");
  EXPECT_EQ(last["usage"]["total_tokens"], 5);
}

Completion AStoppedCompletion() {
  Completion completion{.text = "Hello", .finish_reason = "stop", .prompt_tokens = 7, .completion_tokens = 3};
  completion.plan = completion.choice = {.tail = 0, .endpoint = "tcp://tail:1", .cut = 2};
  return completion;
}

TEST(OpenAiFormatTest, TheChatBodyIsAChatCompletionWithUsageAndTheTandemObject) {
  const ChatFormat format("stories260K", 5);
  EXPECT_EQ(format.Id("r1"), "chatcmpl-r1");
  const json body = format.Body("chatcmpl-r1", AStoppedCompletion());
  EXPECT_EQ(body["id"], "chatcmpl-r1");
  EXPECT_EQ(body["object"], "chat.completion");
  EXPECT_EQ(body["model"], "stories260K");
  EXPECT_TRUE(body["created"].is_number_integer());
  ASSERT_EQ(body["choices"].size(), 1u);
  EXPECT_EQ(body["choices"][0], (json{{"index", 0},
                                      {"message", {{"role", "assistant"}, {"content", "Hello"}}},
                                      {"logprobs", nullptr},
                                      {"finish_reason", "stop"}}));
  EXPECT_EQ(body["usage"], (json{{"prompt_tokens", 7}, {"completion_tokens", 3}, {"total_tokens", 10}}));
  EXPECT_EQ(body["tandem"]["cut"], 2);
  EXPECT_EQ(body["tandem"]["cloud"], "tcp://tail:1");
}

TEST(OpenAiFormatTest, ChatChunksStartWithTheRoleAndEndWithTheFinishReason) {
  const ChatFormat format("stories260K", 5);
  const std::vector<json> opening = format.Opening("chatcmpl-r1");
  ASSERT_EQ(opening.size(), 1u);
  EXPECT_EQ(opening[0]["object"], "chat.completion.chunk");
  EXPECT_EQ(opening[0]["choices"][0]["delta"], (json{{"role", "assistant"}, {"content", ""}}));
  EXPECT_TRUE(opening[0]["choices"][0]["finish_reason"].is_null());
  EXPECT_FALSE(opening[0].contains("usage")) << "only with stream_options.include_usage";
  const json piece = format.Piece("chatcmpl-r1", "Hel");
  EXPECT_EQ(piece["id"], "chatcmpl-r1");
  EXPECT_EQ(piece["choices"][0]["delta"], (json{{"content", "Hel"}}));
  EXPECT_TRUE(piece["choices"][0]["finish_reason"].is_null());
  const std::vector<json> closing = format.Closing("chatcmpl-r1", AStoppedCompletion());
  ASSERT_EQ(closing.size(), 1u);
  EXPECT_EQ(closing[0]["choices"][0]["delta"], json::object());
  EXPECT_EQ(closing[0]["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(closing[0]["tandem"]["cut"], 2);
  EXPECT_FALSE(closing[0].contains("usage"));
}

TEST(OpenAiFormatTest, WithIncludeUsageEveryChatChunkHasANullUsageAndALastOneHasIt) {
  const ChatFormat format("stories260K", 5, /*include_usage=*/true);
  EXPECT_TRUE(format.Opening("chatcmpl-r1")[0]["usage"].is_null());
  const json piece = format.Piece("chatcmpl-r1", "Hel");
  ASSERT_TRUE(piece.contains("usage"));
  EXPECT_TRUE(piece["usage"].is_null());
  const std::vector<json> closing = format.Closing("chatcmpl-r1", AStoppedCompletion());
  ASSERT_EQ(closing.size(), 2u);
  EXPECT_TRUE(closing[0]["usage"].is_null());
  EXPECT_EQ(closing[0]["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(closing[1]["object"], "chat.completion.chunk");
  EXPECT_EQ(closing[1]["choices"], json::array());
  EXPECT_EQ(closing[1]["usage"],
            (json{{"prompt_tokens", 7}, {"completion_tokens", 3}, {"total_tokens", 10}}));
}

TEST(OpenAiFormatTest, ACompletionStreamHasNoOpeningAndEndsWithTheLastChunk) {
  const CompletionFormat format("stories260K", 5);
  EXPECT_EQ(format.Id("r1"), "cmpl-r1");
  EXPECT_TRUE(format.Opening("cmpl-r1").empty());
  EXPECT_EQ(format.Piece("cmpl-r1", "Hel")["choices"][0]["text"], "Hel");
  const std::vector<json> closing = format.Closing("cmpl-r1", AStoppedCompletion());
  ASSERT_EQ(closing.size(), 1u);
  EXPECT_EQ(closing[0]["choices"][0]["text"], "");
  EXPECT_EQ(closing[0]["usage"]["total_tokens"], 10);
}

}  // namespace
}  // namespace tandem::edge_agent
