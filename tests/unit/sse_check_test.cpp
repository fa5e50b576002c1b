// tandem loadgen's stream check on hand-written event streams: what passes, and the label of each way a
// stream can go wrong, whatever the pieces the body arrives in.
#include "sse_check.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace tandem::cli {
namespace {

const std::string kText = R"(data: {"choices":[{"text":"Once","finish_reason":null}]})"
                          "\n\n";
const std::string kFinal =
    R"(data: {"choices":[{"text":"","finish_reason":"length"}],"usage":{"completion_tokens":7}})"
    "\n\n";
const std::string kDone = "data: [DONE]\n\n";

SseCheck Fed(const std::string& body, size_t piece_size) {
  SseCheck check;
  for (size_t at = 0; at < body.size(); at += piece_size)
    check.Feed(std::string_view(body).substr(at, piece_size));
  return check;
}

TEST(SseCheckTest, CompleteStreamPassesInPiecesOfAnySize) {
  const std::string body = ": keep-alive comment\n\n" + kText + kFinal + kDone;
  for (size_t piece_size : {size_t{1}, size_t{2}, size_t{7}, body.size()}) {
    const SseCheck check = Fed(body, piece_size);
    EXPECT_EQ(check.Problem(), "") << piece_size;
    EXPECT_EQ(check.tokens(), 7);
    EXPECT_TRUE(check.first_content().has_value());
  }
}

TEST(SseCheckTest, CarriageReturnsAndNoSpaceAfterTheColonAreAccepted) {
  const SseCheck check =
      Fed("data:" + kText.substr(6, kText.size() - 8) + "\r\n\n" + kFinal + "data:[DONE]\n\n", 3);
  EXPECT_EQ(check.Problem(), "");
}

TEST(SseCheckTest, LabelsEachProblem) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {kText + kFinal, "stream:no_done"},
      {kText + kDone, "stream:no_finish_reason"},
      {kText + kFinal + kDone + kText, "stream:data_after_done"},
      {kText + "data: {not json\n\n" + kFinal + kDone, "stream:bad_json"},
      {R"(data: {"choices":"many"})"
       "\n\n" +
           kDone,
       "stream:no_choices"},
      {R"(data: {"error":{"code":"tail_unavailable"}})"
       "\n\n" +
           kDone,
       "stream:tail_unavailable"},
      {R"(data: {"error":{}})"
       "\n\n",
       "stream:error"},
      {kText + kFinal + kDone + "data: [DO", "stream:truncated"},
  };
  for (const auto& [body, label] : cases) EXPECT_EQ(Fed(body, 5).Problem(), label) << body;
}

TEST(SseCheckTest, NoContentMeansNoFirstContentTime) {
  const SseCheck check = Fed(kFinal + kDone, 4);
  EXPECT_EQ(check.Problem(), "");
  EXPECT_FALSE(check.first_content().has_value());
}

}  // namespace
}  // namespace tandem::cli
