#include "sse_check.hpp"

#include <nlohmann/json.hpp>

namespace tandem::cli {

using nlohmann::json;

void SseCheck::Feed(std::string_view piece) {
  pending_.append(piece);
  for (size_t end; (end = pending_.find("\n\n")) != std::string::npos;) {
    Event(std::string_view(pending_).substr(0, end));
    pending_.erase(0, end + 2);
  }
}

std::string SseCheck::Problem() const {
  if (!problem_.empty()) return problem_;
  if (pending_.find_first_not_of("\r\n") != std::string::npos) return "stream:truncated";
  if (!done_) return "stream:no_done";
  if (!finished_) return "stream:no_finish_reason";
  return "";
}

void SseCheck::Event(std::string_view event) {
  for (size_t start = 0; start < event.size();) {
    size_t end = event.find('\n', start);
    if (end == std::string_view::npos) end = event.size();
    std::string_view line = event.substr(start, end - start);
    start = end + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!line.starts_with("data:")) continue;  // comments and other fields carry nothing to check
    line.remove_prefix(5);
    if (line.starts_with(' ')) line.remove_prefix(1);
    Data(line);
  }
}

void SseCheck::Data(std::string_view data) {
  if (!problem_.empty()) return;
  if (done_) {
    problem_ = "stream:data_after_done";
  } else if (data == "[DONE]") {
    done_ = true;
  } else {
    try {
      Chunk(json::parse(data));
    } catch (const json::exception&) {  // not JSON, or a field of the wrong type
      problem_ = "stream:bad_json";
    }
  }
}

void SseCheck::Chunk(const json& chunk) {
  if (chunk.contains("error")) {
    problem_ = "stream:" + chunk["error"].value("code", std::string("error"));
  } else if (!chunk.contains("choices") || !chunk["choices"].is_array() || chunk["choices"].empty()) {
    problem_ = "stream:no_choices";
  } else {
    const json& choice = chunk["choices"][0];
    if (!first_content_ && !choice.value("text", std::string()).empty()) first_content_ = Clock::now();
    if (choice.contains("finish_reason") && !choice["finish_reason"].is_null()) finished_ = true;
    if (chunk.contains("usage")) tokens_ = chunk["usage"].value("completion_tokens", int64_t{0});
  }
}

}  // namespace tandem::cli
