// openai_format: the error objects (status, type, code, param, Retry-After on every 503), how a failed
// generation's Status maps to one, the stream's error event, and the text_completion body's fields.
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

}  // namespace
}  // namespace tandem::edge_agent
