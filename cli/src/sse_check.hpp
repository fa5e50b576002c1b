// tandem loadgen's check of a streamed completion: the server-sent events of tandem-edge's
// /v1/completions with stream: true, checked event by event as the body arrives. Its own unit so the
// checks can be driven with hand-written streams, without a server.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

namespace tandem::cli {

// Every `data:` event must parse as JSON (text chunks, one final chunk with finish_reason and usage), an
// error event is a failure, and `data: [DONE]` ends the stream. Not thread-safe: one per response.
class SseCheck {
 public:
  using Clock = std::chrono::steady_clock;

  // The next piece of the body, cut anywhere.
  void Feed(std::string_view piece);
  // Empty when the stream was complete and well-formed; else a label: "stream:no_done",
  // "stream:bad_json", "stream:<error code>", ...
  std::string Problem() const;
  // When the first chunk with text arrived.
  std::optional<Clock::time_point> first_content() const { return first_content_; }
  // The completion tokens the final chunk's usage reported.
  int64_t tokens() const { return tokens_; }

 private:
  void Event(std::string_view event);
  void Data(std::string_view data);
  void Chunk(const nlohmann::json& chunk);

  std::string pending_;
  std::string problem_;
  bool done_ = false;
  bool finished_ = false;
  std::optional<Clock::time_point> first_content_;
  int64_t tokens_ = 0;
};

}  // namespace tandem::cli
